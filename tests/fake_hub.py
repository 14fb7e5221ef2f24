"""A stand-in for the Hugging Face hub on loopback: serves a folder as one model repo.

It speaks the part of the hub's HTTP interface that `hf_hub_download` uses: HEAD and GET on
`/<repo>/resolve/<revision>/<file>`, with the commit, ETag and size headers, and the hub's 404 codes.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo: str, folder: Path):
        self.repo = repo
        self.folder = folder
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub._answer(self, send_body=False)

            def do_GET(self) -> None:
                hub._answer(self, send_body=True)

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def file_requests(self) -> list[tuple[str, str]]:
        """(method, file name) of each request for a repo file; the client also asks for other things."""
        prefix = f"/{self.repo}/resolve/"
        return [
            (method, path.rsplit("/", 1)[-1]) for method, path in self.requests if path.startswith(prefix)
        ]

    def downloads(self) -> list[str]:
        return [name for method, name in self.file_requests() if method == "GET"]

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, send_body: bool) -> None:
        self.requests.append((handler.command, handler.path))
        prefix = f"/{self.repo}/resolve/"
        if not handler.path.startswith(prefix):
            return self._not_found(handler, "RepoNotFound")
        _revision, _, name = handler.path[len(prefix) :].partition("/")
        file = self.folder / name
        if not file.is_file():
            return self._not_found(handler, "EntryNotFound")
        data = file.read_bytes()
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if send_body:
            handler.wfile.write(data)

    def _not_found(self, handler: BaseHTTPRequestHandler, code: str) -> None:
        handler.send_response(404)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
