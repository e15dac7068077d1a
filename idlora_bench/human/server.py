"""``bench human serve``: serve a study's ``site/`` folder and store the answers (stdlib ``http.server``).

Only ``STUDY/site/`` is served (``study.json``, which holds the controls' answers, and the SQLite file are not).
Media support HTTP byte ranges (browsers need them to seek). API, JSON in and out:

- ``POST api/session`` ``{annotator_id, slot, study_id}`` -> 201 ``{session_id, answered}``; 409 when the worker
  is bound to another slot, 400 on a malformed request.
- ``POST api/answer`` ``{session_id, item_id, answer, watched, elapsed_ms}`` -> 201 ``{response_id}``; 409 for a
  repeated answer (the first answer stands), 400 / 404 otherwise.
- ``POST api/complete`` ``{session_id}`` -> 200 ``{code}`` once every card of the slot is answered, else 409.
- ``GET api/health`` -> 200 ``{study_id, responses}``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from idlora_bench.core.errors import ValidationError
from idlora_bench.human.model import default_db_path, load_study, site_dir
from idlora_bench.human.responses import Refused, ResponseStore

MAX_BODY_BYTES = 64 * 1024
RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")


class StudyHandler(http.server.SimpleHTTPRequestHandler):
    """Static files of the site (with byte ranges) plus the JSON API of :mod:`idlora_bench.human.server`."""

    store: ResponseStore
    quiet: bool = True
    _range_left: int | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    # ------------------------------------------------------------------------------------------ API
    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise Refused(400, "Content-Length is not an integer") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise Refused(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            raise Refused(400, f"request body is not JSON ({exc.msg})") from None
        if not isinstance(body, dict):
            raise Refused(400, "request body must be a JSON object")
        return body

    def do_POST(self) -> None:  # noqa: N802
        route = urlsplit(self.path).path
        try:
            body = self._body()
            if route.endswith("/api/session"):
                if body.get("study_id") not in (None, self.store.study.study_id):
                    raise Refused(409, f"this server runs study {self.store.study.study_id}, not {body.get('study_id')}")
                session_id, answered = self.store.start_session(body.get("annotator_id"), body.get("slot"),
                                                                self.headers.get("User-Agent", ""))
                self._send_json(201, {"session_id": session_id, "answered": answered})
            elif route.endswith("/api/answer"):
                response_id = self.store.record_answer(body.get("session_id"), body.get("item_id"),
                                                       body.get("answer"), body.get("watched"),
                                                       body.get("elapsed_ms"))
                self._send_json(201, {"response_id": response_id})
            elif route.endswith("/api/complete"):
                self._send_json(200, {"code": self.store.complete(body.get("session_id"))})
            else:
                self._send_json(404, {"error": f"no API route {route}"})
        except Refused as exc:
            self._send_json(exc.status, {"error": exc.message})

    def do_GET(self) -> None:  # noqa: N802
        route = urlsplit(self.path).path
        if route.endswith("/api/health"):
            self._send_json(200, {"study_id": self.store.study.study_id, "responses": len(self.store.responses())})
            return
        super().do_GET()

    # ------------------------------------------------------------------------------------------ byte ranges
    def send_head(self) -> BinaryIO | None:  # type: ignore[override]
        self._range_left = None
        path = self.translate_path(self.path)
        match = RANGE_PATTERN.match(self.headers.get("Range", "").strip())
        if match is None or not os.path.isfile(path):
            return super().send_head()  # type: ignore[return-value]
        size = os.path.getsize(path)
        first, last = match.groups()
        if first == "" and last == "":
            return super().send_head()  # type: ignore[return-value]
        start, end = (max(0, size - int(last)), size - 1) if first == "" else (int(first), min(int(last or size - 1),
                                                                                                size - 1))
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        handle = open(path, "rb")  # noqa: SIM115 (closed by the base class after copyfile)
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._range_left = end - start + 1
        return handle  # type: ignore[return-value]

    def copyfile(self, source: Any, outputfile: Any) -> None:
        left = self._range_left
        if left is None:
            super().copyfile(source, outputfile)
            return
        while left > 0:
            chunk = source.read(min(256 * 1024, left))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)
        self._range_left = None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # a browser dropped a media download it no longer needs
        super().handle_error(request, client_address)


def make_server(study_dir: Path, host: str = "127.0.0.1", port: int = 8000, db_path: Path | None = None,
                quiet: bool = True) -> http.server.ThreadingHTTPServer:
    """A server (not yet serving) for the study in ``study_dir``; answers go to ``db_path`` (default
    ``STUDY/responses.sqlite``). ``port`` 0 picks a free port."""
    study = load_study(study_dir)
    site = site_dir(study_dir)
    if not (site / "index.html").is_file():
        raise ValidationError(f"{site}: no index.html (was the study built with bench human ab / mos?)")
    store = ResponseStore(study, db_path or default_db_path(study_dir))
    handler = type("BoundStudyHandler", (StudyHandler,), {"store": store, "quiet": quiet})
    return _Server((host, port), functools.partial(handler, directory=str(site)))


@contextmanager
def running(study_dir: Path, db_path: Path | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the study on a free port in a background thread; yields the base URL (``http://host:port``)."""
    server = make_server(study_dir, host, 0, db_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
