"""The API baselines against loopback fakes (``tests/fake_api_servers.py``): Kling 2.6 Pro (``kling-2.6-pro``) and the
ElevenLabs TTS part (``elevenlabs``), with retries, failures, malformed answers and a killed run resumed.

No test waits on a real clock: methods and parts get a fake clock whose ``sleep`` only records (and advances) the
time, or tiny intervals when a subprocess or the runner drives them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import REPO_ROOT, TESTS_DIR
from fake_api_servers import FakeElevenLabs, FakeKling, make_mp4_bytes
from synthetic import write_clip

from baselines.kling.client import (
    ACCESS_KEY_ENV, SECRET_KEY_ENV, KlingApiError, KlingAuthError, KlingKeyError, KlingOutputError,
    KlingResponseError, KlingTaskFailed, KlingTimeout, RateLimiter, make_token, parse_retry_after,
)
from baselines.kling.jobs import DB_NAME, TaskStore
from baselines.kling.method import Kling26Pro, encode_first_frame
from baselines.kling.prompts import adapt_prompt, quote_speech
from baselines.parts import VIDEO_PARTS, SpeechRequest, VideoPart
from baselines.tts.elevenlabs import (
    API_KEY_ENV, VOICES_FILE, ElevenLabs, ElevenLabsApiError, ElevenLabsAuthError, ElevenLabsKeyError,
    ElevenLabsResponseError, v3_audio_tags, v3_text,
)
from idlora_bench import runner
from idlora_bench.core.errors import ValidationError
from idlora_bench.core.types import Pair
from idlora_bench.data.media import decode
from idlora_bench.data.splits import ResolvedPair, load_split
from idlora_bench.methods import METHODS, build_method
from idlora_bench.store.run_files import read_generation_record

AK, SK = "ak-" + "a" * 32, "sk-" + "s" * 32  # 32+ bytes: PyJWT warns on shorter HMAC keys
EL_KEY = "el-" + "k" * 32
KLING_ENV = {ACCESS_KEY_ENV: AK, SECRET_KEY_ENV: SK}


class FakeClock:
    """Monotonic seconds that move only when someone sleeps; ``sleeps`` lists every wait asked for."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# ------------------------------------------------------------------------------------------ fixtures
def _pair_dict(pair_id: str, reference: str, target: str, transcript: str = "Hello there, nice to meet you.",
               style: str = "calm, slow voice", sounds: str = "quiet office hum") -> dict[str, Any]:
    clip = {"sha256": "0" * 64, "source_video": "v", "start_s": 0, "duration_s": 0.4, "fps": 25}
    return {"pair_id": pair_id, "speaker_id": "s", "kind": "same-video",
            "reference": {**clip, "clip_id": f"{pair_id}-r", "path": reference},
            "target": {**clip, "clip_id": f"{pair_id}-t", "path": target},
            "prompt": f"[VISUAL]: A woman in a red coat faces the camera. [SPEECH]: {transcript} [SOUNDS]: {style}, "
                      f"{sounds}.",
            "transcript": transcript, "speaking_style": style, "environment_sounds": sounds}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    for name, seed, tone in (("ref-a", 1, 200.0), ("ref-b", 3, 320.0), ("target", 2, 200.0)):
        write_clip(folder / f"{name}.mp4", seed=seed, tone_hz=tone)
    return folder


def _item(media: Path, pair_id: str = "p1", reference: str = "ref-a.mp4", **texts: str) -> ResolvedPair:
    pair = Pair.model_validate(_pair_dict(pair_id, reference, "target.mp4", **texts))
    return ResolvedPair(pair, "test", media / reference, media / "target.mp4")


@pytest.fixture
def kling() -> Any:
    with FakeKling(AK, SK) as server:
        yield server


@pytest.fixture
def eleven() -> Any:
    with FakeElevenLabs(EL_KEY) as server:
        yield server


def _kling_method(server: FakeKling, run_dir: Path, clock: FakeClock | None = None, **options: Any) -> Kling26Pro:
    defaults: dict[str, Any] = {"base_url": server.url, "requests_per_s": 0, "poll_interval_s": 10.0,
                                "backoff_s": 1.0, "max_retries": 4}
    method = Kling26Pro(**{**defaults, **options})
    method.environ = dict(KLING_ENV)
    clock = clock or FakeClock()
    method.sleep, method.clock = clock.sleep, clock
    method.attach_run(run_dir)
    method.prepare(None)
    return method


def _el_part(server: FakeElevenLabs, clock: FakeClock | None = None, key: str = EL_KEY, **options: Any) -> ElevenLabs:
    part = ElevenLabs(**{"base_url": server.url, "backoff_s": 1.0, **options})
    part.environ = {API_KEY_ENV: key}
    part.sleep = (clock or FakeClock()).sleep
    return part


# ------------------------------------------------------------------------------------------ Kling: pure parts
def test_prompt_is_adapted_to_kling_audio_prompting() -> None:
    original = '[VISUAL]: A man at a desk.  [SPEECH]: I said "no"  twice. [SOUNDS]: angry, loud voice, rain outside.'
    adapted = adapt_prompt(original, 'I said "no"  twice.', "angry, loud voice", "rain outside.")
    assert adapted.prompt == ('A man at a desk. The person on screen speaks, saying: "I said \'no\' twice." '
                              "Voice: angry, loud voice. Ambient sound: rain outside.")
    assert adapted.original == original and adapted.record()["template"] == "kling-audio-prompt-v1"
    assert quote_speech("\u201cquoted\u201d words") == "\"'quoted' words\""
    bare = adapt_prompt("no tags here", "hi", "", "")
    assert bare.prompt == 'No tags here. The person on screen speaks, saying: "hi"'
    with pytest.raises(ValueError, match="2500"):
        adapt_prompt("[VISUAL]: " + "x" * 2600 + " [SPEECH]: hi [SOUNDS]: s", "hi", "s", "e")
    with pytest.raises(ValueError, match="no transcript"):
        adapt_prompt("v", "  ", "s", "e")


def test_token_retry_after_rate_limit_and_image_rules() -> None:
    import jwt

    token, expires = make_token(AK, SK, now=1_700_000_000.5)
    claims = jwt.decode(token, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": AK, "exp": 1_700_001_800, "nbf": 1_699_999_995} and expires == 1_700_001_800
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert parse_retry_after("7", 0.0) == 7.0 and parse_retry_after(None, 0.0) is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", 10.0) == 20.0
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.wait()
    assert clock.sleeps == [0.5, 0.5]
    b64, facts = encode_first_frame(np.zeros((32, 48, 3), np.uint8))
    assert (facts["width"], facts["height"], facts["upscaled"], facts["format"]) == (450, 300, True, "png")
    assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="aspect"):
        encode_first_frame(np.zeros((20, 100, 3), np.uint8))


def test_missing_keys_stop_prepare_before_any_work(synth_split: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, kling: FakeKling) -> None:
    method = Kling26Pro()
    method.environ = {ACCESS_KEY_ENV: AK}
    with pytest.raises(KlingKeyError, match=SECRET_KEY_ENV):
        method.prepare(None)
    for name in (ACCESS_KEY_ENV, SECRET_KEY_ENV):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(KlingKeyError, match=f"{ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"):
        runner.run("kling-2.6-pro", "synth", profile="fake", out_dir=tmp_path / "run",
                   method_options={"base_url": kling.url})
    assert kling.log == [] and not list((tmp_path / "run" / "videos").iterdir())


# ------------------------------------------------------------------------------------------ Kling: happy path
def test_kling_through_the_runner_writes_mp4_with_audio_and_records_provenance(
        synth_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kling: FakeKling) -> None:
    for name, value in KLING_ENV.items():
        monkeypatch.setenv(name, value)
    options = {"base_url": kling.url, "poll_interval_s": 0.001, "requests_per_s": 0}
    outcome = runner.run("kling-2.6-pro", "synth", profile="fake", out_dir=tmp_path / "run", method_options=options)
    split = load_split("synth")
    assert kling.submissions == len(split.pairs)
    for pair in split.pairs:
        record = read_generation_record(outcome.run_dir / "videos" / f"{pair.pair_id}.json")
        assert record is not None and record.status == "ok", record
        media = decode(outcome.run_dir / "videos" / f"{pair.pair_id}.mp4")
        assert media.num_frames == 24 and media.audio_duration_s > 0.9
        d = record.details
        assert d["task_id"] and d["external_task_id"].startswith("idlora-") and d["request_id"]
        assert [h["status"] for h in d["status_history"]] == ["submitting", "submitted", "processing", "succeed"]
        assert d["prompt_original"] == pair.prompt and f'saying: "{pair.transcript}"' in d["prompt_sent"]
        assert d["cost"] == {"units": 5.0, "source": "reported by the API (final_unit_deduction)",
                             "usd_estimate": 0.7, "usd_per_unit_assumed": 0.14}
        assert "?" not in d["result"]["videos"][0]["url"] and d["seed"]["sent_to_api"] is False
        assert d["output"]["audio_codec"] == "aac" and d["image"]["height"] == 300
    body = kling.bodies[0]
    assert {k: body[k] for k in ("model_name", "mode", "duration", "sound")} == {
        "model_name": "kling-v2-6", "mode": "pro", "duration": "5", "sound": "on"}
    assert base64.b64decode(body["image_b64"])[:4] == b"\x89PNG" and "negative_prompt" not in body
    downloads = [r for r in kling.log if r["path"].startswith("/files/")]
    assert downloads and not any("Authorization" in r["headers"] for r in downloads)
    recorded = "".join(p.read_text() for p in (outcome.run_dir / "videos").glob("*.json"))
    assert AK not in recorded and SK not in recorded and "secret-cdn-token" not in recorded
    # A second run reuses the outputs; transport options are not part of the config.
    again = runner.run("kling-2.6-pro", "synth", profile="fake", out_dir=tmp_path / "run",
                       method_options={**options, "poll_interval_s": 5, "max_retries": 1})
    assert again.counts["reused"] == len(split.pairs) and kling.submissions == len(split.pairs)
    assert Kling26Pro(**options).config_sha256() == Kling26Pro(base_url="http://elsewhere").config_sha256()
    assert Kling26Pro(duration="10").config_sha256() != Kling26Pro().config_sha256()


def test_cost_falls_back_to_the_documented_price_as_a_stated_assumption(tmp_path: Path, media: Path,
                                                                        kling: FakeKling) -> None:
    kling.units = None
    details = _kling_method(kling, tmp_path / "run").generate(_item(media), tmp_path / "out.mp4", 0)
    assert details["cost"]["units"] == 5.0 and details["cost"]["source"].startswith("assumption:")
    assert details["cost"]["usd_estimate"] == 0.7


# ------------------------------------------------------------------------------------------ Kling: failures
def test_retries_back_off_exponentially_and_honour_retry_after(tmp_path: Path, media: Path, kling: FakeKling) -> None:
    clock = FakeClock()
    method = _kling_method(kling, tmp_path / "run", clock)
    kling.script("POST", "/v1/videos/image2video", 500, {"code": 5000, "message": "server error"}, times=2)
    kling.script("POST", "/v1/videos/image2video", 503, "Service Unavailable")  # not JSON: still retried
    details = method.generate(_item(media), tmp_path / "out.mp4", 0)
    # before each retry the submission is looked up by external id (404: none), so it is never paid twice
    assert clock.sleeps == [1.0, 2.0, 4.0, 10.0, 10.0] and kling.submissions == 1
    assert [e["delay_s"] for e in details["retries"]] == [1.0, 2.0, 4.0]
    kling.script("GET", "/v1/videos/image2video/", 429, {"code": 1302, "message": "rate limit"},
                 headers={"Retry-After": "7"})
    kling.script("GET", "/v1/videos/image2video/", 502, {"code": 5000})
    clock.sleeps.clear()
    second = method.generate(_item(media, "p2"), tmp_path / "out2.mp4", 0)
    assert clock.sleeps == [7.0, 2.0, 10.0, 10.0] and kling.submissions == 2  # 2nd retry of one call: 1 s * 2
    assert "HTTP 429" in second["retries"][0]["reason"] and (tmp_path / "out2.mp4").is_file()


def test_a_lost_submission_answer_is_found_by_external_id_not_resubmitted(tmp_path: Path, media: Path,
                                                                          kling: FakeKling) -> None:
    kling.script("POST", "/v1/videos/image2video", action="accept_then_drop")
    details = _kling_method(kling, tmp_path / "run").generate(_item(media), tmp_path / "out.mp4", 0)
    assert kling.submissions == 1 and details["status"] == "succeed"
    assert details["retries"][0]["reason"].startswith("RemoteProtocolError")


def test_retries_are_bounded_and_auth_and_account_errors_fail_fast(tmp_path: Path, media: Path,
                                                                  kling: FakeKling) -> None:
    clock = FakeClock()
    method = _kling_method(kling, tmp_path / "a", clock, max_retries=2)
    kling.script("POST", "/v1/videos/image2video", 500, {"code": 5000, "message": "boom"}, times=3)
    with pytest.raises(KlingApiError, match="HTTP 500, code 5000: boom") as failed:
        method.generate(_item(media), tmp_path / "out.mp4", 0)
    assert clock.sleeps == [1.0, 2.0] and kling.submissions == 0 and not (tmp_path / "out.mp4").exists()
    assert failed.value.details["status"] == "submit_error" and failed.value.details["prompt_sent"]
    wrong = _kling_method(kling, tmp_path / "b", FakeClock())
    wrong.environ = {ACCESS_KEY_ENV: AK, SECRET_KEY_ENV: "s" * 40}
    wrong.prepare(None)
    before = len(kling.log)
    with pytest.raises(KlingAuthError, match=f"HTTP 401.*{ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"):
        wrong.generate(_item(media), tmp_path / "out.mp4", 0)
    assert len(kling.log) == before + 1  # one request, no retry
    kling.script("POST", "/v1/videos/image2video", 429, {"code": 1102, "message": "resource pack exhausted"})
    clock = FakeClock()
    with pytest.raises(KlingApiError, match="resource pack depleted"):
        _kling_method(kling, tmp_path / "c", clock).generate(_item(media), tmp_path / "out.mp4", 0)
    assert clock.sleeps == []


@pytest.mark.parametrize(("route", "answer", "message"), [
    ("POST", "<html>gateway</html>", "body is not JSON"),
    ("POST", {"code": 0, "message": "ok", "data": {"task_status": "submitted"}}, "no 'data.task_id'"),
    ("GET", {"code": 0, "data": {"task_id": "1", "task_status": "succeed", "task_result": {}}}, "videos\\[0\\].url"),
    ("GET", {"code": 0, "data": {"task_id": "1", "task_status": "queued?"}}, "unknown 'data.task_status'"),
    ("GET", {"code": 0}, "no 'data' object"),
])
def test_malformed_answers_give_a_clear_recorded_error(tmp_path: Path, media: Path, kling: FakeKling, route: str,
                                                       answer: Any, message: str) -> None:
    kling.script(route, "/v1/videos/image2video", 200, answer)
    method = _kling_method(kling, tmp_path / "run")
    with pytest.raises(KlingResponseError, match=message) as failed:
        method.generate(_item(media), tmp_path / "out.mp4", 0)
    assert failed.value.details["error"].startswith("KlingResponseError") and failed.value.details["prompt_sent"]
    # The next run goes on from what is stored: never a second paid task.
    method.generate(_item(media), tmp_path / "out.mp4", 0)
    assert kling.submissions == 1 and decode(tmp_path / "out.mp4").audio is not None


def test_a_malformed_answer_through_the_runner_is_a_recorded_generation_error(
        synth_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kling: FakeKling) -> None:
    for name, value in KLING_ENV.items():
        monkeypatch.setenv(name, value)
    kling.script("POST", "/v1/videos/image2video", 200, "not json at all")
    outcome = runner.run("kling-2.6-pro", "synth", profile="fake", out_dir=tmp_path / "run",
                         method_options={"base_url": kling.url, "poll_interval_s": 0.001, "requests_per_s": 0})
    first = load_split("synth").pairs[0].pair_id
    record = read_generation_record(outcome.run_dir / "videos" / f"{first}.json")
    assert record is not None and record.status == "failed"
    assert "KlingResponseError" in str(record.reason) and "not JSON" in str(record.reason)
    assert record.details["external_task_id"] and record.details["prompt_original"]


def test_unusable_result_video_is_a_clear_error_naming_the_kept_file(tmp_path: Path, media: Path,
                                                                     kling: FakeKling) -> None:
    kling.video = make_mp4_bytes(with_audio=False)
    with pytest.raises(KlingOutputError, match="no audio stream.*kept at") as failed:
        _kling_method(kling, tmp_path / "run").generate(_item(media), tmp_path / "out.mp4", 0)
    assert not (tmp_path / "out.mp4").exists() and Path(failed.value.details["download"]["path"]).is_file()
    kling.video = b"\x00\x00\x00\x18ftypmp42 truncated"
    with pytest.raises(KlingOutputError, match="cannot be decoded"):
        _kling_method(kling, tmp_path / "run2").generate(_item(media), tmp_path / "out.mp4", 0)


def test_failed_task_is_recorded_and_resubmitted_only_when_asked(tmp_path: Path, media: Path,
                                                                 kling: FakeKling) -> None:
    kling.outcome = "failed"
    with pytest.raises(KlingTaskFailed, match="risk control") as failed:
        _kling_method(kling, tmp_path / "run").generate(_item(media), tmp_path / "out.mp4", 0)
    assert failed.value.details["cost"]["units"] == 0.0 and failed.value.details["status"] == "failed"
    with pytest.raises(KlingTaskFailed, match="resubmit_failed=true"):
        _kling_method(kling, tmp_path / "run").generate(_item(media), tmp_path / "out.mp4", 0)
    assert kling.submissions == 1
    kling.outcome = "succeed"
    details = _kling_method(kling, tmp_path / "run", resubmit_failed=True).generate(_item(media),
                                                                                    tmp_path / "out.mp4", 0)
    assert kling.submissions == 2 and details["attempt"] == 2 and details["external_task_id"].endswith("-2")
    assert details["earlier_attempts"][0]["status"] == "failed"


# ------------------------------------------------------------------------------------------ Kling: resume
def test_poll_timeout_leaves_the_task_for_the_next_run(tmp_path: Path, media: Path, kling: FakeKling) -> None:
    kling.hold = True
    with pytest.raises(KlingTimeout, match="run again to resume"):
        _kling_method(kling, tmp_path / "run", max_wait_s=25).generate(_item(media), tmp_path / "out.mp4", 0)
    kling.release()
    details = _kling_method(kling, tmp_path / "run").generate(_item(media), tmp_path / "out.mp4", 0)
    assert kling.submissions == 1 and details["resumed"] and not details["submitted_now"]


KILLED_RUN = """
import json, sys
from pathlib import Path
sys.path[:0] = [{repo!r}, {tests!r}]
from idlora_bench.core.types import Pair
from idlora_bench.data.splits import ResolvedPair
from baselines.kling.method import Kling26Pro
args = json.loads(sys.argv[1])
item = ResolvedPair(Pair.model_validate(args["pair"]), "test", Path(args["reference"]), Path(args["target"]))
method = Kling26Pro(base_url=args["url"], poll_interval_s=0.01, requests_per_s=0)
method.attach_run(Path(args["run"]))
method.prepare(None)
method.generate(item, Path(args["out"]), 0)
"""


def test_a_run_killed_mid_poll_resumes_the_same_task_without_resubmitting(tmp_path: Path, media: Path,
                                                                         kling: FakeKling) -> None:
    kling.hold, kling.polled_after = True, 3
    item = _item(media)
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN.format(repo=str(REPO_ROOT), tests=str(TESTS_DIR))))
    args = {"pair": item.pair.model_dump(mode="json"), "reference": str(item.reference_path),
            "target": str(item.target_path), "url": kling.url, "run": str(tmp_path / "run"),
            "out": str(tmp_path / "out.mp4")}
    process = subprocess.Popen([sys.executable, str(script), json.dumps(args)], cwd=REPO_ROOT,
                               env={**os.environ, **KLING_ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if not kling.polled.wait(timeout=60):
            pytest.fail("the subprocess never polled: " + process.communicate(timeout=5)[0].decode())
    finally:
        process.kill()  # SIGKILL, mid-poll: no cleanup runs
        process.wait(timeout=30)
    (row,) = TaskStore(tmp_path / "run" / DB_NAME).rows()
    assert row.task_id and row.status == "processing" and not (tmp_path / "out.mp4").exists()
    kling.release()
    details = _kling_method(kling, tmp_path / "run").generate(item, tmp_path / "out.mp4", 0)
    assert kling.submissions == 1 and details["task_id"] == row.task_id
    assert details["resumed"] is True and details["submitted_now"] is False
    assert decode(tmp_path / "out.mp4").audio is not None


# ------------------------------------------------------------------------------------------ ElevenLabs
def test_v3_text_derives_audio_tags_from_the_style() -> None:
    assert v3_audio_tags("Soft-spoken, slow and a little nervous") == ["calm", "slowly", "nervous"]
    assert v3_audio_tags("excited, fast, laughing, happy", max_tags=2) == ["excited", "rushed"]
    assert v3_audio_tags("an intense breakfast monologue") == []  # word starts only
    assert v3_text("Say  [this]\n now", "whispering") == ("[whispers] Say (this) now", ["whispers"])
    assert v3_text("plain words", "neutral") == ("plain words", [])
    with pytest.raises(ValidationError, match="read aloud.*eleven_multilingual_v2"):
        ElevenLabs(model_id="eleven_multilingual_v2")
    assert ElevenLabs(model_id="eleven_multilingual_v2", audio_tags=False).options.model_id == "eleven_multilingual_v2"


def test_elevenlabs_without_key_stops_in_prepare_and_fake_mode_makes_no_call(tmp_path: Path, media: Path,
                                                                             eleven: FakeElevenLabs) -> None:
    part = ElevenLabs(base_url=eleven.url)
    part.environ = {}
    with pytest.raises(ElevenLabsKeyError, match=API_KEY_ENV):
        part.prepare()
    fake = ElevenLabs(fake=True, base_url=eleven.url)
    fake.environ = {}
    fake.prepare()
    result = fake.synthesize(SpeechRequest.from_item(_item(media)), tmp_path / "s.wav", 0)
    assert eleven.log == [] and result.details["sent"] is False and result.details["text_sent"] is None
    assert result.details["text_prepared"].startswith("[calm] [slowly] ") and decode(result.wav_path,
                                                                                   need_video=False).audio is not None


def test_elevenlabs_records_the_text_sent_and_clones_once_per_reference_clip(tmp_path: Path, media: Path,
                                                                             eleven: FakeElevenLabs) -> None:
    folder = tmp_path / "speech"
    part = _el_part(eleven)
    results = [part.synthesize(SpeechRequest.from_item(_item(media, pid, ref)), folder / f"{pid}-seed0.wav", 7)
               for pid, ref in (("p1", "ref-a.mp4"), ("p2", "ref-a.mp4"), ("p3", "ref-b.mp4"))]
    assert eleven.clones == 2 and [r.details["voice_cloned_now"] for r in results] == [True, False, True]
    assert [t["text"] for t in eleven.tts] == [r.details["text_sent"] for r in results]
    assert results[0].details["text_sent"] == "[calm] [slowly] Hello there, nice to meet you."
    assert {t["model_id"] for t in eleven.tts} == {"eleven_v3"} and eleven.tts[0]["seed"] == 7
    assert results[0].details["request_id"] == "req-1" and results[0].details["sample_rate"] == 44_100
    audio = decode(results[0].wav_path, need_video=False)
    assert audio.sample_rate == 44_100 and abs(audio.audio_duration_s - 1.0) < 0.05
    assert b"RIFF" in eleven.uploads[0]  # the reference's audio, uploaded as WAV
    cache = json.loads((folder / VOICES_FILE).read_text())
    assert len(cache) == 2 and EL_KEY not in (folder / VOICES_FILE).read_text()
    again = _el_part(eleven).synthesize(SpeechRequest.from_item(_item(media, "p4")), folder / "p4-seed0.wav", 0)
    assert eleven.clones == 2 and again.details["voice_cloned_now"] is False  # a new process reuses the cache


def test_elevenlabs_retries_429_and_5xx_and_fails_fast_on_401(tmp_path: Path, media: Path,
                                                              eleven: FakeElevenLabs) -> None:
    clock = FakeClock()
    eleven.script("POST", "/v1/text-to-speech/", 429, {"detail": {"status": "too_many_concurrent_requests"}},
                  headers={"Retry-After": "3"})
    eleven.script("POST", "/v1/text-to-speech/", 500, {"detail": {"status": "internal", "message": "oops"}})
    eleven.script("POST", "/v1/voices/add", action="drop")
    result = _el_part(eleven, clock).synthesize(SpeechRequest.from_item(_item(media)), tmp_path / "s.wav", 0)
    speech_requests = [r for r in eleven.log if r["path"].startswith("/v1/text-to-speech/")]
    assert clock.sleeps == [1.0, 3.0, 2.0] and len(speech_requests) == 3 and eleven.clones == 1
    assert [r["what"] for r in result.details["retries"]] == ["voice clone", "text-to-speech", "text-to-speech"]
    before = len(eleven.log)
    with pytest.raises(ElevenLabsAuthError, match=f"HTTP 401.*{API_KEY_ENV}") as failed:
        _el_part(eleven, key="el-wrong").synthesize(SpeechRequest.from_item(_item(media, "p9", "ref-b.mp4")),
                                                    tmp_path / "other" / "s.wav", 0)
    assert len(eleven.log) == before + 1 and failed.value.details["text_prepared"]
    eleven.script("POST", "/v1/text-to-speech/", 400, {"detail": {"status": "invalid", "message": "bad text"}})
    with pytest.raises(ElevenLabsApiError, match="HTTP 400: bad text"):
        _el_part(eleven).synthesize(SpeechRequest.from_item(_item(media)), tmp_path / "s2.wav", 0)


def test_elevenlabs_malformed_answers_are_clear_errors(tmp_path: Path, media: Path, eleven: FakeElevenLabs) -> None:
    eleven.script("POST", "/v1/voices/add", 200, {"requires_verification": False})
    with pytest.raises(ElevenLabsResponseError, match="without a voice_id"):
        _el_part(eleven).synthesize(SpeechRequest.from_item(_item(media)), tmp_path / "a" / "s.wav", 0)
    eleven.script("POST", "/v1/voices/add", 200, "<html>")
    with pytest.raises(ElevenLabsResponseError, match="not the documented JSON"):
        _el_part(eleven).synthesize(SpeechRequest.from_item(_item(media)), tmp_path / "b" / "s.wav", 0)
    eleven.speech = b"definitely not an mp3"
    with pytest.raises(ElevenLabsResponseError, match="unusable.*kept at") as failed:
        _el_part(eleven).synthesize(SpeechRequest.from_item(_item(media)), tmp_path / "c" / "s.wav", 0)
    assert (tmp_path / "c" / "s.bad-response.bin").read_bytes() == b"definitely not an mp3"
    assert failed.value.details["text_sent"] and not (tmp_path / "c" / "s.wav").exists()


def test_elevenlabs_stale_voice_is_recloned_and_delete_policy_keeps_nothing(tmp_path: Path, media: Path,
                                                                            eleven: FakeElevenLabs) -> None:
    folder = tmp_path / "speech"
    request = SpeechRequest.from_item(_item(media))
    _el_part(eleven).synthesize(request, folder / "p1-seed0.wav", 0)
    eleven.voices.clear()  # e.g. another account's key
    result = _el_part(eleven).synthesize(request, folder / "p1-seed1.wav", 1)
    assert eleven.clones == 2 and result.details["voice_id"] == "voice002" and result.details["voice_cloned_now"]
    assert "HTTP 404: A voice with voice_id voice001 was not found" in result.details["voice_recloned_after"]
    deleting = _el_part(eleven, voice_policy="delete", output_format="pcm_16000")
    result = deleting.synthesize(request, tmp_path / "del" / "s.wav", 0)
    assert eleven.deleted == ["voice003"] and result.details["voice_deleted"] is True
    assert not (tmp_path / "del" / VOICES_FILE).exists() and result.details["sample_rate"] == 16_000
    assert deleting.config_sha256() == _el_part(eleven, output_format="pcm_16000").config_sha256()
    eleven.speech = b"not audio"
    with pytest.raises(ElevenLabsResponseError) as failed:
        _el_part(eleven, voice_policy="delete").synthesize(request, tmp_path / "del2" / "s.wav", 0)
    assert eleven.deleted == ["voice003", "voice004"] and failed.value.details["voice_deleted"] is True


class _StillVideo(VideoPart):
    """Test video part: the first frame held for the speech (no model)."""

    name: ClassVar[str] = "apistill"

    def animate(self, item, speech_wav, out_path, seed):  # type: ignore[no-untyped-def]
        from baselines.video.still import write_still_video

        return write_still_video(item.target_path, speech_wav, out_path, long_side=32)


def test_elevenlabs_through_a_cascade_and_the_runner(synth_split: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, eleven: FakeElevenLabs) -> None:
    from baselines.cascade import cascade_method

    if "apistill" not in VIDEO_PARTS:
        VIDEO_PARTS.register("apistill", _StillVideo)
    if "elevenlabs+apistill" not in METHODS:
        METHODS.register("elevenlabs+apistill", cascade_method("elevenlabs", "apistill"))
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ElevenLabsKeyError, match=API_KEY_ENV):
        build_method("elevenlabs+apistill").prepare(load_split("synth"))
    monkeypatch.setenv(API_KEY_ENV, EL_KEY)
    options = {"tts.base_url": eleven.url, "tts.backoff_s": 0}
    runs = tmp_path / "runs" / "synth"
    outcome = runner.run("elevenlabs+apistill", "synth", profile="fake", out_dir=runs / "a", method_options=options)
    split = load_split("synth")
    references = {pair.reference.path for pair in split.pairs}
    assert eleven.clones == len(references) and len(eleven.tts) == len(split.pairs)
    for pair in split.pairs:
        record = read_generation_record(outcome.run_dir / "videos" / f"{pair.pair_id}.json")
        assert record is not None and record.status == "ok", record
        sent = record.details["speech"]["tts"]["text_sent"]
        assert sent == f"[calm] {pair.transcript}" and sent in [t["text"] for t in eleven.tts]
    runner.run("elevenlabs+apistill", "synth", profile="fake", out_dir=runs / "b", method_options=options)
    assert len(eleven.tts) == len(split.pairs)  # the speech is shared, not made again


@pytest.mark.parametrize(("video", "needs", "options"), [
    ("ltx", ("torch", "diffusers", "baselines.video.ltx_a2v"), {"video.steps": "2"}),
    ("wan2.2", ("baselines.video.wan22",), {}),
])
def test_elevenlabs_paper_cascades_smoke_needs_no_key(synth_split: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, video: str,
                                                      needs: tuple[str, ...], options: dict[str, str]) -> None:
    for module in needs:  # video parts are written separately: test what exists
        pytest.importorskip(module)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    method = build_method(f"elevenlabs+{video}", model="tiny-random", **options)
    assert method.smoke and method.tts.fake
    method.prepare(load_split("synth"))  # fake TTS: no key needed; tiny LTX-2 on CPU
    method.attach_run(tmp_path / "runs" / "synth" / "run")
    split = load_split("synth")
    details = method.generate(split.resolve(split.pairs[0]), tmp_path / "out.mp4", 0)
    assert details["speech"]["tts"]["sent"] is False and decode(tmp_path / "out.mp4").audio is not None

