"""A private package index for tests: a PEP 503 "simple" index on 127.0.0.1 behind HTTP
basic auth, serving wheels the test builds (pure-Python, written as zip files)."""

from __future__ import annotations

import base64
import hashlib
import html
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name


def build_wheel(directory: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A ``py3-none-any`` wheel of ``files`` (path in the wheel → text)."""
    dist = f"{name.replace('-', '_')}-{version}"
    info = f"{dist}.dist-info"
    members = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: modelbus-tests\n"
                         "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in members.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    wheel = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in members.items():
            zf.writestr(path, text)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


@dataclass
class PrivateIndex:
    """Where the index listens and what it saw."""

    port: int
    user: str
    password: str
    requests: list[tuple[str, int]] = field(default_factory=list)  # (path, status)

    def url(self, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"http://{self.user}:{secret}@127.0.0.1:{self.port}/simple"


@contextmanager
def private_index(wheels: list[Path], user: str, password: str) -> Iterator[PrivateIndex]:
    """Serve ``wheels`` as a simple index until the block ends."""
    by_project: dict[str, list[Path]] = {}
    for wheel in wheels:
        by_project.setdefault(canonicalize_name(wheel.name.split("-")[0]), []).append(wheel)
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = self._serve()
            index.requests.append((self.path, status))

        def do_HEAD(self) -> None:
            # As an index without HEAD answers (http.server's default 501 is a server error
            # to uv, which retries it and gives up).
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self) -> int:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="inhouse"')
                self.end_headers()
                return 401
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[0] == "simple" and parts[1] in by_project:
                links = "".join(
                    f'<a href="/files/{html.escape(w.name)}#sha256='
                    f'{hashlib.sha256(w.read_bytes()).hexdigest()}">{html.escape(w.name)}</a>\n'
                    for w in by_project[parts[1]]
                )
                return self._send(200, f"<html><body>\n{links}</body></html>".encode(),
                                  "text/html")
            if len(parts) == 2 and parts[0] == "files":
                found = [w for ws in by_project.values() for w in ws if w.name == parts[1]]
                if found:
                    return self._send(200, found[0].read_bytes(), "application/octet-stream")
            return self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> int:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return status

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test reads ``requests``

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    index = PrivateIndex(server.server_address[1], user, password)
    thread = threading.Thread(target=server.serve_forever, name="private-index", daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
