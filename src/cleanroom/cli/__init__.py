"""The ``cleanroom`` command."""
