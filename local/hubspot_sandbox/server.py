"""Run the sandbox on a local port: from tests, the local stack, or `python -m local.hubspot_sandbox`."""

from __future__ import annotations

from ..wsgi import LocalWsgiServer
from .app import SandboxApp
from .state import SandboxConfig, SandboxState


class SandboxServer(LocalWsgiServer):
    def __init__(self, state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or SandboxState(config=SandboxConfig())
        self.app = SandboxApp(self.state)
        super().__init__(self.app, host, port)
