"""A werkzeug request handler without per-request access logs (they would drown the demo output)."""

from __future__ import annotations

from typing import Any

from werkzeug.serving import WSGIRequestHandler


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None
