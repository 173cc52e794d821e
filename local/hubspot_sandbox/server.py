"""Run the sandbox on a local port: from tests, the local stack, or `python -m local.hubspot_sandbox`."""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, make_server

from ..quiet import QuietRequestHandler
from .app import SandboxApp
from .state import SandboxConfig, SandboxState


class SandboxServer:
    def __init__(self, state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or SandboxState(config=SandboxConfig())
        self.app = SandboxApp(self.state)
        self._server: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=QuietRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
