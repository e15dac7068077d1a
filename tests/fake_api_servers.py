"""Loopback stand-ins for the Kling and ElevenLabs HTTP APIs (stdlib ``http.server`` in a thread, 127.0.0.1, port 0).

Both speak the documented request/response shapes (see ``baselines/kling/client.py`` and
``baselines/tts/elevenlabs.py``), check credentials (Kling: the JWT's signature, ``iss``, ``exp`` and ``nbf``;
ElevenLabs: ``xi-api-key``), count what matters (submissions, polls, clones) and return real media made with PyAV
(a small H.264 + AAC mp4; an mp3). Failures are scripted per route with :meth:`FakeServer.script`: an HTTP status
with a JSON or raw body and headers (500, 429 + Retry-After, 401 ...), ``"drop"`` (close the connection without an
answer) or ``"accept_then_drop"`` (Kling: create the task, then lose the answer).
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from idlora_bench.data.media import write_mp4


# ------------------------------------------------------------------------------------------ media
def make_mp4_bytes(seconds: float = 1.0, width: int = 64, height: int = 48, fps: int = 24, rate: int = 24_000,
                   with_audio: bool = True) -> bytes:
    """A small real mp4 (H.264 noise frames + an AAC sine, or video only)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (int(seconds * fps), height, width, 3), dtype=np.uint8)
    audio = (0.2 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        write_mp4(path, frames, fps, audio if with_audio else None, rate if with_audio else None)
        return path.read_bytes()


def make_mp3_bytes(seconds: float = 1.0, rate: int = 44_100) -> bytes:
    """A real mp3 (mono sine at 330 Hz) encoded with PyAV."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        samples = (0.3 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        size = stream.codec_context.frame_size or 1152
        for start in range(0, samples.size, size):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + size].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ common server
@dataclass
class Scripted:
    """A canned answer for the next ``times`` requests whose method matches and whose path starts with ``path``."""

    method: str
    path: str
    status: int = 500
    body: Any = None  # dict -> JSON; str/bytes -> raw
    headers: dict[str, str] | None = None
    action: str = "respond"  # respond | drop | accept_then_drop
    times: int = 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake.handle(self, method, body)

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")


class FakeServer:
    """Base: a threaded HTTP server on 127.0.0.1 (port 0), scripted failures, a request log."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.log: list[dict[str, Any]] = []
        self.scripted: list[Scripted] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def script(self, method: str, path: str, status: int = 500, body: Any = None, headers: dict[str, str] | None = None,
               action: str = "respond", times: int = 1) -> None:
        with self.lock:
            self.scripted.append(Scripted(method, path, status, body, headers, action, times))

    def _take_script(self, method: str, path: str) -> Scripted | None:
        with self.lock:
            for entry in self.scripted:
                if entry.method == method and path.startswith(entry.path) and entry.times > 0:
                    entry.times -= 1
                    return entry
        return None

    def handle(self, handler: _Handler, method: str, body: bytes) -> None:
        parts = urlsplit(handler.path)
        with self.lock:
            self.log.append({"method": method, "path": parts.path, "headers": dict(handler.headers.items())})
        scripted = self._take_script(method, parts.path)
        if scripted is not None and scripted.action == "drop":
            handler.close_connection = True
            return
        if scripted is not None and scripted.action == "respond":
            self.send(handler, scripted.status, scripted.body, scripted.headers)
            return
        status, payload, headers = self.route(handler, method, parts.path, parse_qs(parts.query), body)
        if scripted is not None and scripted.action == "accept_then_drop":
            handler.close_connection = True
            return
        self.send(handler, status, payload, headers)

    def route(self, handler: _Handler, method: str, path: str, query: dict[str, list[str]],
              body: bytes) -> tuple[int, Any, dict[str, str] | None]:
        raise NotImplementedError

    @staticmethod
    def send(handler: _Handler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, (bytes, bytearray)):
            data, kind = bytes(payload), "application/octet-stream"
        elif isinstance(payload, str):
            data, kind = payload.encode(), "text/plain"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        handler.send_response(status)
        handler.send_header("Content-Type", (headers or {}).get("Content-Type", kind))
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            if name != "Content-Type":
                handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


# ------------------------------------------------------------------------------------------ Kling
class FakeKling(FakeServer):
    """``/v1/videos/image2video`` (POST, GET by task id or external task id) and ``/files/<task>.mp4``.

    A task answers ``processing`` for ``polls_before_done`` polls, then ``outcome`` (``succeed`` with the mp4 and
    ``units`` as ``final_unit_deduction``, or ``failed``). With ``hold`` set, tasks stay ``processing`` until
    :meth:`release`. ``submissions`` counts created tasks, ``polls`` GETs of tasks; ``polled`` is set once ``polls``
    reaches ``polled_after``."""

    def __init__(self, access_key: str = "ak-test", secret_key: str = "sk-test", *, polls_before_done: int = 2,
                 outcome: str = "succeed", units: str | None = "5", video: bytes | None = None) -> None:
        super().__init__()
        self.access_key, self.secret_key = access_key, secret_key
        self.polls_before_done, self.outcome, self.units = polls_before_done, outcome, units
        self.video = video if video is not None else make_mp4_bytes()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.submissions = 0
        self.polls = 0
        self.hold = False
        self.polled_after = 1 << 30
        self.polled = threading.Event()
        self._ids = itertools.count(880_000_001)

    def release(self) -> None:
        with self.lock:
            self.hold = False

    def _auth_error(self, handler: _Handler) -> dict[str, Any] | None:
        import jwt

        header = handler.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return {"code": 1001, "message": "Authorization is empty", "request_id": str(uuid.uuid4())}
        try:
            claims = jwt.decode(header[7:], self.secret_key, algorithms=["HS256"], options={"require": ["exp", "nbf"]})
        except jwt.PyJWTError as exc:
            return {"code": 1002, "message": f"Authorization is invalid: {exc}", "request_id": str(uuid.uuid4())}
        if claims.get("iss") != self.access_key or claims["exp"] - claims["nbf"] != 1805:
            return {"code": 1000, "message": "Authentication failed", "request_id": str(uuid.uuid4())}
        return None

    def _find(self, ident: str) -> dict[str, Any] | None:
        return self.tasks.get(ident) or next((t for t in self.tasks.values() if t["external_task_id"] == ident), None)

    def _envelope(self, task: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"task_id": task["task_id"], "task_status": task["status"],
                                "task_status_msg": task.get("msg", ""),
                                "task_info": {"external_task_id": task["external_task_id"]},
                                "created_at": task["created_at"], "updated_at": int(time.time() * 1000)}
        if task["status"] == "succeed":
            data["task_result"] = {"videos": [{"id": f"v{task['task_id']}", "duration": "5.1",
                                               "url": f"{self.url}/files/{task['task_id']}.mp4?sig=secret-cdn-token"}]}
            if self.units is not None:
                data["final_unit_deduction"] = self.units
        return {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}

    def route(self, handler: _Handler, method: str, path: str, query: dict[str, list[str]],
              body: bytes) -> tuple[int, Any, dict[str, str] | None]:
        if path.startswith("/files/"):
            return 200, self.video, {"Content-Type": "video/mp4"}
        if not path.startswith("/v1/videos/image2video"):
            return 404, {"code": 1202, "message": "invalid method"}, None
        if (error := self._auth_error(handler)) is not None:
            return 401, error, None
        with self.lock:
            if method == "POST":
                return self._create(body)
            task = self._find(path.rsplit("/", 1)[-1])
            if task is None:
                return 404, {"code": 1203, "message": "task not found", "request_id": str(uuid.uuid4())}, None
            self.polls += 1
            if self.polls >= self.polled_after:
                self.polled.set()
            task["polls"] += 1
            if task["status"] in ("submitted", "processing"):
                done = not self.hold and task["polls"] > self.polls_before_done
                task["status"] = (self.outcome if done else "processing")
                if done and self.outcome == "failed":
                    task["msg"] = "Failure to pass the risk control system"
            return 200, self._envelope(task), None

    def _create(self, raw: bytes) -> tuple[int, Any, dict[str, str] | None]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"code": 1200, "message": "invalid request body"}, None
        problems = [f for f in ("model_name", "image", "prompt") if not body.get(f)]
        if body.get("duration") not in ("5", "10") or body.get("mode") not in ("std", "pro"):
            problems.append("duration/mode")
        if str(body.get("image", "")).startswith("data:") or len(body.get("prompt", "")) > 2500:
            problems.append("image/prompt format")
        if problems:
            return 400, {"code": 1201, "message": f"invalid parameters: {problems}"}, None
        external = body.get("external_task_id") or ""
        if external and self._find(external) is not None:
            return 400, {"code": 1201, "message": "external_task_id already exists"}, None
        task_id = str(next(self._ids))
        self.tasks[task_id] = {"task_id": task_id, "external_task_id": external, "status": "submitted", "polls": 0,
                               "created_at": int(time.time() * 1000)}
        self.submissions += 1
        self.bodies.append({**body, "image": f"<{len(body['image'])} base64 chars>", "image_b64": body["image"]})
        return 200, self._envelope(self.tasks[task_id]), None


# ------------------------------------------------------------------------------------------ ElevenLabs
class FakeElevenLabs(FakeServer):
    """``POST /v1/voices/add`` (multipart), ``POST /v1/text-to-speech/<voice_id>`` and ``DELETE /v1/voices/<id>``.

    ``clones`` counts voices made, ``tts`` logs each speech request (voice, text, model, seed, format)."""

    def __init__(self, api_key: str = "el-test", speech: bytes | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.speech = speech if speech is not None else make_mp3_bytes()
        self.voices: dict[str, dict[str, Any]] = {}
        self.clones = 0
        self.deleted: list[str] = []
        self.tts: list[dict[str, Any]] = []
        self.uploads: list[bytes] = []

    def route(self, handler: _Handler, method: str, path: str, query: dict[str, list[str]],
              body: bytes) -> tuple[int, Any, dict[str, str] | None]:
        if handler.headers.get("xi-api-key") != self.api_key:
            return 401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, None
        with self.lock:
            if method == "POST" and path == "/v1/voices/add":
                if b'name="files"' not in body or b'name="name"' not in body:
                    return 422, {"detail": [{"msg": "files and name are required"}]}, None
                self.clones += 1
                self.uploads.append(body)
                voice_id = f"voice{self.clones:03d}"
                self.voices[voice_id] = {"name": re.search(rb'name="name"\r\n\r\n([^\r]*)', body)}
                return 200, {"voice_id": voice_id, "requires_verification": False}, None
            if method == "DELETE" and path.startswith("/v1/voices/"):
                voice_id = path.rsplit("/", 1)[-1]
                self.voices.pop(voice_id, None)
                self.deleted.append(voice_id)
                return 200, {"status": "ok"}, None
            if method == "POST" and path.startswith("/v1/text-to-speech/"):
                voice_id = path.rsplit("/", 1)[-1]
                request = json.loads(body)
                fmt = query.get("output_format", ["mp3_44100_128"])[0]
                self.tts.append({"voice_id": voice_id, "output_format": fmt, **request})
                if voice_id not in self.voices:
                    return 404, {"detail": {"status": "voice_not_found",
                                            "message": f"A voice with voice_id {voice_id} was not found."}}, None
                if fmt.startswith("pcm_"):
                    rate = int(fmt.split("_")[1])
                    tone = 0.3 * np.sin(2 * np.pi * 330 * np.arange(rate) / rate)
                    return 200, (tone * 32767).astype("<i2").tobytes(), {"Content-Type": "audio/pcm",
                                                                         "request-id": "req-pcm"}
                return 200, self.speech, {"Content-Type": "audio/mpeg", "request-id": f"req-{len(self.tts)}"}
        return 404, {"detail": {"status": "not_found", "message": path}}, None
