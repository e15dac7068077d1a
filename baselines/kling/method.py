"""``kling-2.6-pro``: Kling 2.6 Pro image-to-video with sound (paper Tables 1-2), through Kling's HTTP API.

For each pair: the target's first frame (upscaled to Kling's 300 px minimum side when smaller) and the pair's prompt
rewritten for Kling's audio prompting (:mod:`baselines.kling.prompts`) are submitted to ``POST
/v1/videos/image2video`` with ``model_name`` ``kling-v2-6``, ``mode`` ``pro``, ``duration`` ``"5"`` and ``sound``
``"on"`` (:mod:`baselines.kling.client` lists the API facts and their sources); the task is polled until it
succeeds or fails, the mp4 is downloaded into the run folder (``kling-downloads/``), checked (a decodable video
*and* audio stream) and re-muxed (streams copied, no re-encoding) atomically to the output path.

Resumable: the task id is stored in ``<run>/kling-tasks.sqlite`` before any poll (:mod:`baselines.kling.jobs`); a
killed run started again polls the same task and never submits (pays) twice. The API takes no seed: the seed only
keys the job (a new seed is a new task). Keys: ``KLING_ACCESS_KEY`` and ``KLING_SECRET_KEY`` (``prepare`` stops
before any work when one is missing). Licence: Kling's terms of service (commercial API; outputs per its terms).

The generation record holds the task id, external task id, request id, status history, retries, the exact prompt
sent and the original, the first frame's facts, the cost (``final_unit_deduction`` when the API reports it, else
Kling's documented price, stated as an assumption) and the output's stream facts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import av
import numpy as np
from pydantic import Field

from baselines.kling.client import (
    DEFAULT_BASE_URL, IMAGE2VIDEO_PATH, IMAGE_MAX_ASPECT, IMAGE_MAX_BYTES, IMAGE_MIN_SIDE_PX, KlingApiError,
    KlingClient, KlingOutputError, KlingTaskFailed, KlingTimeout, RetryPolicy, TaskState, image2video_body,
    keys_from_env,
)
from baselines.kling.jobs import DB_NAME, TaskRow, TaskStore, job_key
from baselines.kling.prompts import TEMPLATE_VERSION, KlingPrompt, adapt_prompt
from idlora_bench.core.errors import BenchError, MediaError
from idlora_bench.core.io import atomic_output, file_sha256
from idlora_bench.data.media import probe
from idlora_bench.data.splits import ResolvedPair, Split
from idlora_bench.methods.base import Method, MethodOptions

DOWNLOADS_DIR = "kling-downloads"
# Kling's price list (inference-sh/grid api/klingai/pricing.md, "V2.x Models"): kling-v2-6 pro with audio, no voice
# control: 5 units per 5 s clip, 10 per 10 s; 1 unit = 0.14 USD (prepaid packs). Failed tasks are not billed.
DOCUMENTED_UNITS_PER_5S = 5.0
DOCUMENTED_USD_PER_UNIT = 0.14


class KlingOptions(MethodOptions):
    """What is sent: ``model_name`` (``kling-v2-6``), ``mode`` (``pro``), ``duration`` (``"5"`` or ``"10"`` s),
    ``negative_prompt`` (empty: not sent), ``min_image_side`` (px; smaller first frames are upscaled, Lanczos).

    How it is sent (not part of the config: they do not change the output): ``base_url``, ``timeout_s`` (per HTTP
    request, s), ``max_retries``, ``backoff_s`` / ``max_backoff_s`` (exponential backoff, s), ``requests_per_s``
    (client-side rate limit), ``poll_interval_s`` (s between polls), ``max_wait_s`` (s of polling per call before
    giving up; a later run resumes), ``resubmit_failed`` (submit a new task for a job whose task failed),
    ``units_per_5s_clip`` / ``usd_per_unit`` (the price assumed when the API reports no cost)."""

    model_name: str = "kling-v2-6"
    mode: Literal["std", "pro"] = "pro"
    duration: Literal["5", "10"] = "5"
    negative_prompt: str = ""
    min_image_side: int = Field(IMAGE_MIN_SIDE_PX, ge=IMAGE_MIN_SIDE_PX)
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(2.0, ge=0)
    max_backoff_s: float = Field(120.0, ge=0)
    requests_per_s: float = Field(1.0, ge=0)
    poll_interval_s: float = Field(10.0, gt=0)
    max_wait_s: float = Field(3600.0, gt=0)
    resubmit_failed: bool = False
    units_per_5s_clip: float = Field(DOCUMENTED_UNITS_PER_5S, ge=0)
    usd_per_unit: float = Field(DOCUMENTED_USD_PER_UNIT, ge=0)


OPERATIONAL_OPTIONS = frozenset({"base_url", "timeout_s", "max_retries", "backoff_s", "max_backoff_s",
                                 "requests_per_s", "poll_interval_s", "max_wait_s", "resubmit_failed",
                                 "units_per_5s_clip", "usd_per_unit"})


# ------------------------------------------------------------------------------------------ media helpers
def first_frame_rgb(path: Path) -> np.ndarray:
    """The first decoded frame ``(H, W, 3)`` uint8 RGB of ``path`` (only that frame is decoded)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "has no video stream", code="no_video")
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"cannot be decoded ({exc})") from None
    raise MediaError(path, "video stream holds no decodable frames", code="no_video")


def encode_first_frame(frame: np.ndarray, min_side: int = IMAGE_MIN_SIDE_PX) -> tuple[str, dict[str, Any]]:
    """``(raw base64, facts)`` of the image Kling gets: PNG (JPEG quality 95 when the PNG exceeds 10 MB), upscaled
    (Lanczos) so the short side is at least ``min_side`` px. Raises ValueError for an aspect ratio outside Kling's
    1:2.5 to 2.5:1."""
    from PIL import Image

    height, width = frame.shape[:2]
    if max(height, width) / max(1, min(height, width)) > IMAGE_MAX_ASPECT:
        raise ValueError(f"first frame is {width}x{height}: Kling accepts aspect ratios 1:2.5 to 2.5:1 only")
    image = Image.fromarray(np.ascontiguousarray(frame))
    scale = max(1.0, min_side / min(height, width))
    if scale > 1.0:
        image = image.resize((int(np.ceil(width * scale)), int(np.ceil(height * scale))), Image.Resampling.LANCZOS)
    encoded = io.BytesIO()
    image.save(encoded, format="PNG")
    fmt = "png"
    if encoded.tell() > IMAGE_MAX_BYTES:
        encoded = io.BytesIO()
        image.save(encoded, format="JPEG", quality=95)
        fmt = "jpeg"
    data = encoded.getvalue()
    if len(data) > IMAGE_MAX_BYTES:
        raise ValueError(f"first frame is {len(data)} bytes as JPEG; Kling accepts at most {IMAGE_MAX_BYTES}")
    facts = {"format": fmt, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "width": image.width,
             "height": image.height, "source_size": [width, height], "upscaled": scale > 1.0}
    return base64.b64encode(data).decode("ascii"), facts


def validate_and_remux(source: Path, out_path: Path) -> dict[str, Any]:
    """Check that ``source`` decodes (every packet of its first video and first audio stream, frames not kept) and
    copy those two streams, unchanged, into a fresh mp4 at ``out_path`` (atomically). Returns stream facts; raises
    :class:`KlingOutputError` naming ``source`` (kept for inspection) otherwise."""
    keep = f"(the downloaded file is kept at {source})"
    try:
        with av.open(str(source)) as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is None or audio is None:
                missing = "video" if video is None else "audio"
                raise KlingOutputError(f"{source}: Kling's result has no {missing} stream {keep}; was it generated "
                                       f"with sound on?")
            frames = samples = 0
            for packet in container.demux(video, audio):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        frames += 1
                    else:
                        samples += frame.samples
            facts = {"video_codec": video.codec_context.name, "width": video.codec_context.width,
                     "height": video.codec_context.height, "fps": float(video.average_rate or 0.0),
                     "video_frames": frames, "audio_codec": audio.codec_context.name,
                     "sample_rate": audio.codec_context.sample_rate, "audio_samples": samples,
                     "audio_channels": audio.codec_context.channels}
        if frames == 0 or samples == 0:
            raise KlingOutputError(f"{source}: no decodable {'video frames' if frames == 0 else 'audio samples'} "
                                   f"{keep}")
        with atomic_output(out_path, suffix=".mp4.part") as tmp, av.open(str(source)) as src, \
                av.open(str(tmp), mode="w", format="mp4") as dst:
            streams = {src.streams.video[0].index: dst.add_stream_from_template(src.streams.video[0]),
                       src.streams.audio[0].index: dst.add_stream_from_template(src.streams.audio[0])}
            for packet in src.demux(src.streams.video[0], src.streams.audio[0]):
                if packet.dts is None:  # demuxer flush packets carry nothing
                    continue
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    except av.error.FFmpegError as exc:
        raise KlingOutputError(f"{source}: Kling's result cannot be decoded or re-muxed ({exc}) {keep}") from None
    info = probe(out_path)
    return {**facts, "video_duration_s": info.video_duration_s, "audio_duration_s": info.audio_duration_s}


def _strip_query(url: str) -> str:
    """The URL without its query and fragment (signed links expire; their tokens stay out of records)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# ------------------------------------------------------------------------------------------ the method
class Kling26Pro(Method):
    """Kling 2.6 Pro (``kling-v2-6``, ``pro``, sound on) through its HTTP API; resumable by stored task id."""

    name: ClassVar[str] = "kling-2.6-pro"
    description: ClassVar[str] = ("Kling 2.6 Pro image-to-video with sound through Kling's API "
                                  "(KLING_ACCESS_KEY, KLING_SECRET_KEY)")
    options_model: ClassVar[type[MethodOptions]] = KlingOptions
    options: KlingOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.environ: Mapping[str, str] = os.environ
        self.sleep: Callable[[float], None] = time.sleep  # injectable: tests never wait
        self.clock: Callable[[], float] = time.monotonic
        self._keys: tuple[str, str] | None = None
        self._client: KlingClient | None = None
        self._store: TaskStore | None = None

    def config(self) -> dict[str, Any]:
        """What changes the output: the request's fields and the prompt template (transport options excluded)."""
        options = {k: v for k, v in self.options.model_dump(mode="json").items() if k not in OPERATIONAL_OPTIONS}
        return {"method": self.name, "api": IMAGE2VIDEO_PATH, "sound": "on", "prompt_template": TEMPLATE_VERSION,
                **options}

    def prepare(self, split: Split | None) -> None:
        """Check the keys (``KLING_ACCESS_KEY``, ``KLING_SECRET_KEY``) before any work; no request is made."""
        self._keys = keys_from_env(dict(self.environ))

    def client(self) -> KlingClient:
        if self._client is None:
            if self._keys is None:
                self.prepare(None)
            assert self._keys is not None
            o = self.options
            self._client = KlingClient(*self._keys, base_url=o.base_url, timeout_s=o.timeout_s,
                                       retry=RetryPolicy(o.max_retries, o.backoff_s, o.max_backoff_s),
                                       requests_per_s=o.requests_per_s, sleep=self.sleep, clock=self.clock)
        return self._client

    def tasks(self) -> TaskStore:
        if self._store is None:
            if self.run_dir is None:
                raise RuntimeError(f"method {self.name!r}: no run folder attached (the runner calls attach_run; a "
                                   "library user calls method.attach_run(folder) first): task ids are stored there")
            self._store = TaskStore(self.run_dir / DB_NAME)
        return self._store

    def generate(self, item: ResolvedPair, out_path: Path, seed: int) -> dict[str, Any]:
        store, pair = self.tasks(), item.pair
        key = job_key(item.pair_id, seed, self.config_sha256())
        trace: dict[str, Any] = {"job_key": key, "resumed": False, "submitted_now": False}
        prompt: KlingPrompt | None = None
        try:
            prompt = adapt_prompt(pair.prompt, pair.transcript, pair.speaking_style, pair.environment_sounds,
                                  self.options.negative_prompt)
            row = self._ensure_task(store, key, item, seed, prompt, trace)
            row = self._wait(store, row)
            source = self._ensure_download(store, row)
            trace["output"] = validate_and_remux(source, out_path)
        except (BenchError, OSError, ValueError, RuntimeError) as exc:
            exc.details = self._details(store.get(key), prompt, trace, seed, error=f"{type(exc).__name__}: {exc}")
            raise
        return self._details(store.get(key), prompt, trace, seed)

    # ---------------------------------------------------------------------------------- steps
    def _ensure_task(self, store: TaskStore, key: str, item: ResolvedPair, seed: int, prompt: KlingPrompt,
                     trace: dict[str, Any]) -> TaskRow:
        """The job's row with a task id: the stored one, one found by external id, or a new submission."""
        row = store.get(key)
        if row is not None and row.status == "failed":
            if not self.options.resubmit_failed:
                raise KlingTaskFailed(f"Kling task {row.task_id} for pair {item.pair_id} failed earlier: "
                                      f"{row.status_msg or 'no message'}; pass --option resubmit_failed=true to submit "
                                      "a new task (Kling does not bill failed tasks)")
            row = None
        if row is not None and row.task_id:
            trace["resumed"] = True
            return row
        if row is not None:  # a submission may have reached Kling before the last run stopped: look it up first
            trace["resumed"] = True
            found = self.client().find_image2video(row.external_task_id)
            if found is not None:
                store.set_task(key, found.task_id, found.request_id, found.status, found.status_msg)
                trace["found_by_external_id"] = True
                return self._row(store, key)
        image_b64, image = encode_first_frame(first_frame_rgb(item.target_path), self.options.min_image_side)
        if row is None:
            request = {"prompt": prompt.prompt, "negative_prompt": prompt.negative_prompt, "image": image}
            row = store.begin(key, item.pair_id, seed, self.config_sha256(), request)
        o = self.options
        body = image2video_body(model_name=o.model_name, mode=o.mode, image_b64=image_b64, prompt=prompt.prompt,
                                negative_prompt=prompt.negative_prompt, duration=o.duration, sound="on",
                                external_task_id=row.external_task_id)
        try:
            state = self.client().submit_image2video(body)
        except KlingApiError as exc:
            store.record_status(key, "submit_error", str(exc))
            if trace["resumed"] and exc.http_status == 400:
                raise KlingApiError(f"{exc}; a task with external_task_id {row.external_task_id} may exist already "
                                    "(a submission whose answer was lost): look for it in the Kling console; this "
                                    "run does not submit it twice", http_status=400, code=exc.code,
                                    message=exc.message, request_id=exc.request_id) from None
            raise
        trace["submitted_now"] = True
        store.set_task(key, state.task_id, state.request_id, state.status, state.status_msg)
        return self._row(store, key)

    @staticmethod
    def _row(store: TaskStore, key: str) -> TaskRow:
        row = store.get(key)
        assert row is not None
        return row

    def _wait(self, store: TaskStore, row: TaskRow) -> TaskRow:
        """Poll until ``succeed`` (result stored) or ``failed``, at most ``max_wait_s`` seconds."""
        if row.status == "succeed" and row.result:
            return row
        assert row.task_id is not None
        started = self.clock()
        while True:
            state = self.client().get_image2video(row.task_id)
            store.record_status(row.job_key, state.status, state.status_msg)
            if state.status == "succeed":
                store.set_result(row.job_key, _result_record(state))
                return self._row(store, row.job_key)
            if state.status == "failed":
                raise KlingTaskFailed(f"Kling task {row.task_id} failed: {state.status_msg or 'no message'}")
            waited = self.clock() - started
            if waited >= self.options.max_wait_s:
                raise KlingTimeout(f"Kling task {row.task_id} is still {state.status} after {waited:.0f} s; run again "
                                   f"to resume polling it (stored in {store.path})")
            self.sleep(self.options.poll_interval_s)

    def _ensure_download(self, store: TaskStore, row: TaskRow) -> Path:
        """The downloaded result (fetched once; a stored file whose sha256 still matches is reused)."""
        stored = row.download
        if stored and Path(stored["path"]).is_file() and file_sha256(stored["path"]) == stored["sha256"]:
            return Path(stored["path"])
        assert self.run_dir is not None and row.result is not None
        destination = self.run_dir / DOWNLOADS_DIR / f"{row.pair_id}-seed{row.seed}-{row.task_id}.mp4"
        size = self.client().download(row.result["videos"][0]["url"], destination)
        store.set_download(row.job_key, {"path": str(destination), "sha256": file_sha256(destination), "bytes": size})
        return destination

    # ---------------------------------------------------------------------------------- the record
    def _cost(self, row: TaskRow | None) -> dict[str, Any] | None:
        if row is None or row.status != "succeed" or not row.result:
            return None if row is None or row.status != "failed" else {
                "units": 0.0, "source": "failed tasks are not billed (Kling's price list)"}
        units = row.result.get("units")
        if units is not None:
            return {"units": units, "source": "reported by the API (final_unit_deduction)",
                    "usd_estimate": round(units * self.options.usd_per_unit, 4),
                    "usd_per_unit_assumed": self.options.usd_per_unit}
        units = self.options.units_per_5s_clip * int(self.options.duration) / 5
        o = self.options
        return {"units": units, "usd_estimate": round(units * o.usd_per_unit, 4),
                "source": (f"assumption: the API reported no cost; Kling's documented price for {o.model_name} "
                           f"{o.mode} with sound, {o.units_per_5s_clip:g} units per 5 s clip at "
                           f"{o.usd_per_unit:g} USD per unit")}

    def _details(self, row: TaskRow | None, prompt: KlingPrompt | None, trace: dict[str, Any], seed: int,
                 error: str | None = None) -> dict[str, Any]:
        o = self.options
        details: dict[str, Any] = {
            "system": "Kling 2.6 Pro",
            "api": {"base_url": o.base_url, "endpoint": IMAGE2VIDEO_PATH, "model_name": o.model_name, "mode": o.mode,
                    "duration_s": int(o.duration), "sound": "on"},
            **{k: v for k, v in trace.items() if k != "output"},
            "seed": {"value": seed, "sent_to_api": False,
                     "note": "the API takes no seed; the seed only keys the job (a new seed is a new task)"},
            "prompt_sent": prompt.prompt if prompt else None,
            "negative_prompt_sent": prompt.negative_prompt if prompt else None,
            "prompt_original": prompt.original if prompt else None,
            "prompt_adaptation": prompt.record() if prompt else None,
            "retries": list(self._client.events) if self._client else [],
            "cost": self._cost(row),
            "output": trace.get("output"),
        }
        if row is not None:
            details.update({"task_id": row.task_id, "external_task_id": row.external_task_id,
                            "request_id": row.request_id, "status": row.status, "status_history": row.history,
                            "attempt": row.attempt, "earlier_attempts": row.attempts, "image": row.request.get("image"),
                            "result": public_result(row.result), "download": row.download,
                            "tasks_db": str(self.tasks().path)})
        if error is not None:
            details["error"] = error
        if self._client is not None:
            self._client.events.clear()
        return details


def _result_record(state: TaskState) -> dict[str, Any]:
    """What a finished task reported, for the tasks database (the download URL in full: it is needed to fetch)."""
    return {"task_id": state.task_id, "request_id": state.request_id, "units": state.units,
            "created_at_ms": state.created_at_ms, "updated_at_ms": state.updated_at_ms,
            "videos": [{"url": v.url, "duration_s": v.duration_s, "id": v.video_id} for v in state.videos]}


def public_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """``result`` with the download URLs' query strings removed (for records shared beyond the run folder)."""
    if not result:
        return result
    return {**result, "videos": [{**v, "url": _strip_query(v["url"])} for v in result.get("videos", [])]}
