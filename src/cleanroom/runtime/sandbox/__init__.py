"""Sandboxed model workers: isolated processes, a supervisor that restarts them."""

from cleanroom.runtime.sandbox.supervisor import SandboxedRunner, SandboxReport, Supervisor

__all__ = ["SandboxReport", "SandboxedRunner", "Supervisor"]
