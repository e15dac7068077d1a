"""A small HTTP client for Kling's public API (image-to-video with sound), with retries, backoff and a rate limit.

API facts this client relies on (from public material; Kling's own pages at https://kling.ai/document-api are the
authority, and every field name sent or read is defined in this file only, in :data:`IMAGE2VIDEO_PATH`,
:func:`image2video_body` and :func:`parse_task`, so a change on Kling's side is a one-place fix):

- base URL ``https://api-singapore.klingai.com`` (option ``base_url``);
- authentication: a JWT (HS256) with ``iss`` = access key, ``exp`` = now + 1800 s, ``nbf`` = now - 5 s, signed with
  the secret key, sent as ``Authorization: Bearer <jwt>`` (inference-sh/grid ``api/klingai/docs/00-general.md``
  "Authentication"; the same recipe in ``api/klingai/kling_helper.py`` ``KlingClient._generate_token``);
- ``POST /v1/videos/image2video`` with ``model_name`` (``kling-v2-6``; the older field ``model`` is kept by Kling for
  compatibility and means ``kling-v1``), ``mode`` (``std``/``pro``), ``image`` (URL or raw base64, *no* ``data:``
  prefix; jpg/png, at most 10 MB, sides >= 300 px, aspect 1:2.5 to 2.5:1), ``prompt`` (at most 2,500 characters),
  ``negative_prompt``, ``duration`` (``"5"``/``"10"``), ``sound`` (``"on"``/``"off"``, kling-v2-6 and later) and
  ``external_task_id`` (caller's id, unique per account) (``api/klingai/docs/04-video-image2video.md`` "Request
  Parameters"; QuincyMillerDev/cooliomusic ``docs/KLINGAI_IMAGE_TO_VIDEO_API.md`` on ``model_name``);
- the response envelope ``{code, message, request_id, data: {task_id, task_status, task_status_msg, task_info:
  {external_task_id}, final_unit_deduction, task_result: {videos: [{id, url, duration}]}}}``, ``code`` 0 for success;
  ``GET /v1/videos/image2video/{id}`` with either the task id or the external task id; statuses ``submitted``,
  ``processing``, ``succeed``, ``failed`` (04-video-image2video.md "Response", 00-general.md "Task Statuses");
- error codes: HTTP 401 / 1000-1004 authentication; 429 with 1302 (rate) / 1303 (concurrency) transient, 1100-1102
  and 1304 account problems (not retried); 400 / 12xx-13xx request or content errors; 5xx / 5000-5002 server errors
  (00-general.md "Error Codes"); Kling advises exponential backoff from >= 1 s for 1303.

Unsure: whether the query path accepts the external task id on every region (the submission is protected either way:
Kling refuses a second task with the same ``external_task_id``), and whether ``final_unit_deduction`` is filled for
every account type (the method falls back to the documented price, stated as an assumption).

Only ``base_url`` ever receives the ``Authorization`` header; result downloads (CDN links) are fetched without it.
Keys never appear in messages, logs or records.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from idlora_bench.core.errors import BenchError
from idlora_bench.core.io import atomic_output

ACCESS_KEY_ENV = "KLING_ACCESS_KEY"
SECRET_KEY_ENV = "KLING_SECRET_KEY"
DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
IMAGE2VIDEO_PATH = "/v1/videos/image2video"
TOKEN_LIFETIME_S = 1800
TOKEN_NOT_BEFORE_S = 5
TOKEN_REFRESH_MARGIN_S = 300
PROMPT_MAX_CHARS = 2500
IMAGE_MAX_BYTES = 10 * 1024 * 1024
IMAGE_MIN_SIDE_PX = 300
IMAGE_MAX_ASPECT = 2.5
RESULT_RETENTION_DAYS = 30

RETRYABLE_CODES = {1302, 1303, 5000, 5001, 5002}  # rate / concurrency limits and server errors
ACCOUNT_CODES = {1100: "account exception", 1101: "account in arrears (recharge it)",
                 1102: "resource pack depleted or expired (buy more units)", 1304: "IP whitelist policy"}
NOT_FOUND_CODES = {1202, 1203}
KNOWN_STATUSES = ("submitted", "processing", "succeed", "failed")


class KlingError(BenchError):
    """Any failure of the Kling baseline; ``details`` (set by the method) go to the generation record."""

    details: dict[str, Any] | None = None


class KlingKeyError(KlingError):
    """The access or secret key is not set."""


class KlingAuthError(KlingError):
    """Kling refused the credentials (HTTP 401)."""


class KlingApiError(KlingError):
    """Kling answered with an error: ``http_status``, Kling's ``code``, ``message`` and ``request_id``."""

    def __init__(self, text: str, *, http_status: int | None = None, code: int | None = None,
                 message: str = "", request_id: str | None = None) -> None:
        super().__init__(text)
        self.http_status, self.code, self.message, self.request_id = http_status, code, message, request_id


class KlingResponseError(KlingError):
    """A response that is not what the API documents (not JSON, missing fields, unknown status)."""


class KlingTaskFailed(KlingError):
    """The task ended with ``task_status`` ``failed``."""


class KlingTimeout(KlingError):
    """The task did not finish within ``max_wait_s``; a later run resumes polling it."""


class KlingOutputError(KlingError):
    """The downloaded video is unusable (not decodable, or no audio)."""


def keys_from_env(environ: dict[str, str]) -> tuple[str, str]:
    """``(access key, secret key)`` from ``environ``; raises :class:`KlingKeyError` naming the missing variables."""
    missing = [name for name in (ACCESS_KEY_ENV, SECRET_KEY_ENV) if not environ.get(name, "").strip()]
    if missing:
        raise KlingKeyError(f"Kling API keys missing: set {' and '.join(missing)} (both {ACCESS_KEY_ENV} and "
                            f"{SECRET_KEY_ENV} come from the Kling developer console, API keys page)")
    return environ[ACCESS_KEY_ENV].strip(), environ[SECRET_KEY_ENV].strip()


def make_token(access_key: str, secret_key: str, now: float) -> tuple[str, float]:
    """A Kling API token (JWT HS256: ``iss`` access key, ``exp`` now + 1800 s, ``nbf`` now - 5 s) and its expiry
    (Unix seconds). ``now``: Unix time in seconds."""
    import jwt  # PyJWT

    expires = int(now) + TOKEN_LIFETIME_S
    payload = {"iss": access_key, "exp": expires, "nbf": int(now) - TOKEN_NOT_BEFORE_S}
    return jwt.encode(payload, secret_key, algorithm="HS256", headers={"alg": "HS256", "typ": "JWT"}), float(expires)


# ------------------------------------------------------------------------------------------ field names (one place)
def image2video_body(*, model_name: str, mode: str, image_b64: str, prompt: str, negative_prompt: str,
                     duration: str, sound: str, external_task_id: str) -> dict[str, Any]:
    """The JSON body of ``POST /v1/videos/image2video`` (``image_b64``: raw base64, no ``data:`` prefix;
    ``duration`` in seconds as a string). An empty ``negative_prompt`` is not sent."""
    body: dict[str, Any] = {"model_name": model_name, "mode": mode, "image": image_b64, "prompt": prompt,
                            "duration": duration, "sound": sound, "external_task_id": external_task_id}
    if negative_prompt:
        body["negative_prompt"] = negative_prompt
    return body


@dataclass(frozen=True)
class TaskVideo:
    """One result video: ``url`` (kept by Kling for 30 days) and ``duration_s`` as reported (seconds)."""

    url: str
    duration_s: float | None
    video_id: str | None = None


@dataclass(frozen=True)
class TaskState:
    """A task as one response describes it."""

    task_id: str
    status: str
    status_msg: str
    request_id: str | None
    external_task_id: str | None = None
    units: float | None = None  # final_unit_deduction, when reported
    videos: tuple[TaskVideo, ...] = ()
    created_at_ms: int | None = None
    updated_at_ms: int | None = None


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def parse_task(payload: Any) -> TaskState:
    """The task in a (successful, ``code`` 0) response envelope; :class:`KlingResponseError` naming the missing or
    wrong field otherwise."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise KlingResponseError(f"Kling response has no 'data' object: {_excerpt(payload)}")
    task_id, status = data.get("task_id"), data.get("task_status")
    if not isinstance(task_id, (str, int)) or str(task_id) == "":
        raise KlingResponseError(f"Kling response has no 'data.task_id': {_excerpt(payload)}")
    if status not in KNOWN_STATUSES:
        raise KlingResponseError(f"Kling task {task_id}: unknown 'data.task_status' {status!r} "
                                 f"(expected one of {', '.join(KNOWN_STATUSES)})")
    videos: list[TaskVideo] = []
    result = data.get("task_result") or {}
    for video in (result.get("videos") or []) if isinstance(result, dict) else []:
        if isinstance(video, dict) and isinstance(video.get("url"), str) and video["url"]:
            videos.append(TaskVideo(video["url"], _float_or_none(video.get("duration")), video.get("id")))
    if status == "succeed" and not videos:
        raise KlingResponseError(f"Kling task {task_id} succeeded but 'data.task_result.videos[0].url' is missing: "
                                 f"{_excerpt(payload)}")
    info = data.get("task_info") if isinstance(data.get("task_info"), dict) else {}
    return TaskState(str(task_id), status, str(data.get("task_status_msg") or ""), payload.get("request_id"),
                     info.get("external_task_id"), _float_or_none(data.get("final_unit_deduction")), tuple(videos),
                     data.get("created_at"), data.get("updated_at"))


def _excerpt(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------------------ retries and rate
@dataclass
class RetryPolicy:
    """Exponential backoff: attempt ``n`` (0-based) waits ``min(backoff_s * 2**n, max_backoff_s)`` seconds, or the
    server's ``Retry-After`` (capped at ``max_backoff_s``); at most ``max_retries`` retries after the first try."""

    max_retries: int = 5
    backoff_s: float = 2.0
    max_backoff_s: float = 120.0

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        if retry_after_s is not None:
            return max(0.0, min(retry_after_s, self.max_backoff_s))
        return min(self.backoff_s * (2.0 ** attempt), self.max_backoff_s)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date; ``now``: Unix seconds), else None."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - now)


@dataclass
class RateLimiter:
    """At most ``per_s`` requests per second: waits (``sleep``) until ``1 / per_s`` s have passed since the last
    request (``clock``: monotonic seconds). ``per_s`` <= 0 disables it."""

    per_s: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _last: float | None = field(default=None, init=False)

    def wait(self) -> None:
        if self.per_s > 0 and self._last is not None:
            remaining = self._last + 1.0 / self.per_s - self.clock()
            if remaining > 0:
                self.sleep(remaining)
        self._last = self.clock()


class Retryable(Exception):
    """Internal: one attempt failed in a way worth retrying (``reason``; ``retry_after_s`` from the server)."""

    def __init__(self, reason: str, retry_after_s: float | None = None, error: KlingError | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after_s, self.error = reason, retry_after_s, error


T = TypeVar("T")


def call_with_retries(attempt: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None], what: str,
                      before_retry: Callable[[], T | None] | None = None,
                      on_retry: Callable[[str, float], None] | None = None) -> T:
    """Run ``attempt`` until it returns; :class:`Retryable` failures are retried after :meth:`RetryPolicy.delay_s`
    (``on_retry(reason, delay)`` is told each time). ``before_retry`` runs before each retry and may return the
    answer instead (used to find a submission that reached the server although its response was lost). Any other
    exception propagates at once."""
    retries = 0
    while True:
        try:
            return attempt()
        except Retryable as failure:
            if retries >= policy.max_retries:
                if failure.error is not None:
                    raise failure.error from None
                raise KlingApiError(f"{what}: gave up after {retries + 1} attempts; last: {failure.reason}") from None
            delay = policy.delay_s(retries, failure.retry_after_s)
            if on_retry is not None:
                on_retry(failure.reason, delay)
            sleep(delay)
            retries += 1
            if before_retry is not None and (found := before_retry()) is not None:
                return found


# ------------------------------------------------------------------------------------------ the client
class KlingClient:
    """Kling API calls with authentication, a per-request timeout (``timeout_s``, seconds), retries on 5xx / 429
    (rate and concurrency codes) / connection errors, and a client-side rate limit (``requests_per_s``).

    ``sleep`` / ``clock`` (monotonic seconds) are injectable so tests never wait; ``wall_clock`` (Unix seconds)
    dates the tokens. ``events`` lists retries as ``{"what", "reason", "delay_s"}`` (for the generation record).
    """

    def __init__(self, access_key: str, secret_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 timeout_s: float = 60.0, retry: RetryPolicy | None = None, requests_per_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, transport: httpx.BaseTransport | None = None) -> None:
        self._access_key, self._secret_key = access_key, secret_key
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.sleep, self.wall_clock = sleep, wall_clock
        self.limiter = RateLimiter(requests_per_s, clock=clock, sleep=sleep)
        self._http = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=True)
        self._token: tuple[str, float] | None = None
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:  # never the keys
        return f"KlingClient(base_url={self.base_url!r})"

    def _auth_header(self) -> dict[str, str]:
        now = self.wall_clock()
        if self._token is None or self._token[1] - now < TOKEN_REFRESH_MARGIN_S:
            self._token = make_token(self._access_key, self._secret_key, now)
        return {"Authorization": f"Bearer {self._token[0]}"}

    def _note_retry(self, what: str) -> Callable[[str, float], None]:
        return lambda reason, delay: self.events.append({"what": what, "reason": reason, "delay_s": delay})

    def _attempt_json(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One request to the API; the parsed envelope when ``code`` is 0. Raises :class:`Retryable` or a
        :class:`KlingError` subclass."""
        self.limiter.wait()
        what = f"{method} {path}"
        try:
            response = self._http.request(method, self.base_url + path, json=body,
                                          headers={**self._auth_header(), "Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        envelope = payload if isinstance(payload, dict) else {}
        code, message = envelope.get("code"), str(envelope.get("message") or "")
        request_id = envelope.get("request_id")
        status = response.status_code
        detail = f"HTTP {status}" + (f", code {code}" if code is not None else "") + (f": {message}" if message else "")
        if status == 401:
            raise KlingAuthError(f"{what}: Kling refused the credentials ({detail}); check {ACCESS_KEY_ENV} and "
                                 f"{SECRET_KEY_ENV} (a pair from the same API key, not expired)")
        error = KlingApiError(f"{what}: {detail}" + (f" (request {request_id})" if request_id else ""),
                              http_status=status, code=code if isinstance(code, int) else None, message=message,
                              request_id=request_id)
        if status == 429 and code in ACCOUNT_CODES:
            raise KlingApiError(f"{what}: {ACCOUNT_CODES[code]} ({detail}); fix the account, then run again",
                                http_status=status, code=code, message=message, request_id=request_id)
        if status == 429 or status >= 500 or (status == 200 and code in RETRYABLE_CODES):
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.wall_clock())
            raise Retryable(detail, retry_after, error)
        if status >= 400:
            raise error
        if payload is None:
            raise KlingResponseError(f"{what}: HTTP {status} but the body is not JSON: {_excerpt(response.text)}")
        if code != 0:
            raise error if code is not None else KlingResponseError(f"{what}: response has no 'code': "
                                                                    f"{_excerpt(payload)}")
        return envelope

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                before_retry: Callable[[], dict[str, Any] | None] | None = None) -> dict[str, Any]:
        """The envelope of ``method path`` after retries (see :func:`call_with_retries`)."""
        return call_with_retries(lambda: self._attempt_json(method, path, body), self.retry, self.sleep,
                                 f"{method} {path}", before_retry, self._note_retry(f"{method} {path}"))

    def submit_image2video(self, body: dict[str, Any]) -> TaskState:
        """Create the task; before retrying a failed submission, look it up by ``external_task_id`` so a submission
        whose answer was lost is found instead of being paid twice."""
        external = body.get("external_task_id")

        def find() -> dict[str, Any] | None:
            found = self.find_image2video(external) if external else None
            return None if found is None else {"code": 0, "request_id": found.request_id,
                                               "data": {"task_id": found.task_id, "task_status": found.status}}

        return parse_task(self.request("POST", IMAGE2VIDEO_PATH, body, before_retry=find))

    def get_image2video(self, task_or_external_id: str) -> TaskState:
        """The task's current state."""
        return parse_task(self.request("GET", f"{IMAGE2VIDEO_PATH}/{task_or_external_id}"))

    def find_image2video(self, external_task_id: str) -> TaskState | None:
        """The task with this external id, or None when Kling knows none (HTTP 404 / 400, codes 1202-1203)."""
        try:
            return self.get_image2video(external_task_id)
        except KlingApiError as exc:
            if exc.http_status in (400, 404) or exc.code in NOT_FOUND_CODES:
                return None
            raise

    def download(self, url: str, destination: Path) -> int:
        """Stream ``url`` (no ``Authorization`` header: result links are on a CDN) to ``destination`` atomically;
        returns the byte count. Retries like API calls; a 4xx names the 30-day retention."""

        def attempt() -> int:
            try:
                with atomic_output(destination) as tmp, self._http.stream("GET", url) as response:
                    if response.status_code == 429 or response.status_code >= 500:
                        raise Retryable(f"HTTP {response.status_code}")
                    if response.status_code >= 400:
                        raise KlingApiError(f"download of the result failed (HTTP {response.status_code}); Kling "
                                            f"keeps results {RESULT_RETENTION_DAYS} days",
                                            http_status=response.status_code)
                    size = 0
                    with open(tmp, "wb") as handle:
                        for chunk in response.iter_bytes(1 << 20):
                            handle.write(chunk)
                            size += len(chunk)
                    if size == 0:
                        raise Retryable("empty body")
                    return size
            except httpx.TransportError as exc:
                raise Retryable(f"{type(exc).__name__}: {exc}") from None

        return call_with_retries(attempt, self.retry, self.sleep, "download of the result", None,
                                 self._note_retry("download"))
