"""Wire formats shared by the SDK, the service and the sandboxed worker.

This layer imports only the standard library, numpy and ``cleanroom.errors``.
"""

from cleanroom.wire.formats import ModelFormat

__all__ = ["ModelFormat"]
