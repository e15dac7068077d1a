"""The selftest's checks: one function per metric-family property that real weights have and random or wrong
weights lack. Each check reads the metric only through its interface (``extract`` -> ``compare``), so every
backend of a family (offline, standard, paper variants) is checked the same way.

A check function takes ``(metric, context, evidence)``, fills ``evidence.numbers`` / ``evidence.thresholds`` as it
goes (so a check that stops half way still reports what it measured) and returns ``(passed, reason)``. An exception
(a :class:`~idlora_bench.core.errors.SampleFailure` included) is turned into a FAILED check by the runner in
``idlora_bench/selftest/__init__.py``; it never stops the selftest.

Thresholds, and why (measured values: offline profile on this repository's demo split and the shipped ARCTIC
recordings, CPU; see ``tests/test_selftest.py``):

- ``SELF_TOLERANCE`` = 1e-4 (speaker, face): a clip extracted twice (two separate ``extract`` calls) and compared
  with itself must score 1 within 1e-4. Catches non-deterministic models (dropout left on, random crops) and a
  ``compare`` that is not a similarity. Measured: 1.0 exactly (resemblyzer, dlib).
- speaker identity: ``SPEAKER_MIN_AUC`` = 0.90 and ``SPEAKER_MIN_GAP`` = 0.10 (cosine), required on all pairs AND on
  the real-speech pairs alone (ARCTIC halves: 2 same-speaker pairs with different words, 4 different-speaker
  pairs). Pairs: the 16 demo clips (4 espeak-ng voices x 4 clips) and the 4 ARCTIC halves (2 real speakers).
  Measured (resemblyzer): AUC 1.000 on all pairs and on real speech; gap 0.345 (all), 0.316 (real speech). A
  random or untrained encoder maps every clip to nearly the same vector or ranks at chance: tiny random
  WavLM-ECAPA (tests/tiny_weights.py) measured AUC 0.452, gap -0.004 (all) and AUC 1.000 but gap 0.001 (real
  speech), hence both criteria on both sets. 0.10 is under a third of the measured gaps and well below the gaps
  of trained verifiers (WavLM-ECAPA: same speaker ~0.6-0.9, different ~0.0-0.3).
- face identity: ``FACE_MIN_AUC`` = 0.90 and ``FACE_MIN_GAP`` = 0.05 (cosine). Items: the first target clip of each
  of the 4 demo identities, 5 uniformly sampled frames, as is and under ``FACE_TRANSFORMS`` (horizontal mirror,
  brightness x0.8, 10% zoom crop, JPEG quality 50); same-identity pairs (10 per identity) against
  different-identity pairs (150). Measured (dlib): AUC 1.000, same >= 0.989 (mean 0.997), different <= 0.896
  (mean 0.865), gap 0.133 (face metrics version 2; 0.132 with version 1). dlib descriptors are compared with
  cosine here; their cosines are all high (they are
  trained for a Euclidean threshold of 0.6), hence a margin of 0.05, under half the measured gap; ArcFace-like
  models give gaps of 0.5 or more. The tiny random buffalo_l models measured AUC 0.576, gap 0.077: the AUC is
  what fails them (aligned crops of one photo stay pixel-similar under these transforms, so a gap alone is weak).
- lip sync (``lse_d`` / ``lse_c``): the first demo target (hopper-v1, 121 frames at 25 fps, face ~150 px) with its
  audio moved by k = -3, 0, +3 frames (40 ms each; k > 0: audio leads). The recovered offset (``offset_frames`` in
  the details) must equal k within ``SYNC_OFFSET_TOLERANCE_FRAMES`` = 1 (the paper variant's MP3 round trip alone
  delays the audio by ~0.6 frame), and LSE-D at k = +-3 must exceed LSE-D at k = 0 (the best-offset distance
  then includes the windows whose audio was cut off). Random weights: a random S3FD finds no face in any of the
  121 frames (measured: ``no_face_track``, a failed check); a random SyncNet behind a real detector gives a
  random offset. Real SyncNet not measured here: its weights cannot be downloaded on this machine.
- WER: each whole ARCTIC recording against its transcript, WER <= ``WER_MAX_BY_BACKEND``: 0.25 for PocketSphinx
  (measured 0.000 on both; 0.25 tolerates two wrong words in a 10-word sentence for this weak recogniser), 0.15
  for Whisper backends and any other backend (one wrong word per sentence). A random acoustic model outputs
  nothing or garbage (WER ~1).
- CLAP (``clap``, ``clap_env``, ``clap_style``): ``CLAP_CASES``: three speech clips (a quiet demo target and the two
  ARCTIC recordings) must score higher with "a person speaking" than with "a dog barking", "rain falling" and "a
  car engine"; a 1 kHz pure tone higher with "a beep tone" than with "a person speaking". Passes when the
  matching text wins at least ``CLAP_MIN_WINS`` = 3 of the 4 cases (one miss allowed: CLAP is imperfect on
  synthetic voices). A random model wins each speech case with chance 1/4. Not measured here (no CLAP weights).
- lip motion: (1) the first demo target's value minus the same first frame held still for ``LIP_STILL_FRAMES``
  = 25 frames must be >= ``LIP_MIN_MARGIN`` = 1.0 (x100 units). Measured (dlib, version 2): 4.05 vs 0.00 (4.01
  with version 1). (2) the per-frame
  mouth opening (``opening`` in the features) must follow the audio loudness (dBFS per video frame, floor -60):
  Pearson correlation >= ``LIP_MIN_CORRELATION`` = 0.3 at the best lag within +-``LIP_MAX_LAG_FRAMES`` = 2 frames
  (the demo's mouths are animated from the speech). Measured (dlib): 0.962 at lag +1 (0.954 at lag 0).
  Landmarks that do not track the lips correlate near 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idlora_bench.core.errors import SampleFailure
from idlora_bench.data.media import DecodedMedia
from idlora_bench.metrics.base import Features, Metric
from idlora_bench.selftest.sources import (
    ARCTIC,
    FACE_TRANSFORMS,
    LabelledMedia,
    SelftestSources,
    copy_of,
    frame_envelope_db,
    in_memory,
    selftest_pair,
    shift_audio,
    still_video,
    tone,
)

SELF_TOLERANCE = 1e-4
SPEAKER_MIN_AUC = 0.90
SPEAKER_MIN_GAP = 0.10
FACE_MIN_AUC = 0.90
FACE_MIN_GAP = 0.05
SYNC_SHIFTS_FRAMES = (-3, 0, 3)
SYNC_OFFSET_TOLERANCE_FRAMES = 1
WER_MAX_BY_BACKEND = {"pocketsphinx": 0.25, "whisper": 0.15}
WER_MAX_DEFAULT = 0.15
SPEECH_TEXT = "a person speaking"
SPEECH_DISTRACTORS = ("a dog barking", "rain falling", "a car engine")
TONE_TEXT = "a beep tone"
CLAP_MIN_WINS = 3
LIP_STILL_FRAMES = 25
LIP_MIN_MARGIN = 1.0
LIP_MIN_CORRELATION = 0.3
LIP_MAX_LAG_FRAMES = 2


@dataclass
class Evidence:
    """What a check measured (``numbers``) and what it compared against (``thresholds``); JSON-serialisable values."""

    numbers: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)


class CheckContext:
    """The sources plus a memo of extracted features shared by the checks of one selftest run.

    Features are memoised per (``features_id`` or name, version, params, weights checksums, item key): metrics that
    share features (LSE-D and LSE-C, the Whisper WERs, the CLAP variants) extract once; a SampleFailure is memoised
    too and raised again.
    """

    def __init__(self, sources: SelftestSources) -> None:
        self.sources = sources
        self._features: dict[tuple[str, str, str, str], Features | SampleFailure] = {}

    def features(self, metric: Metric, key: str, media: DecodedMedia) -> Features:
        """``metric.extract(media)``, once per metric features identity and item ``key``."""
        identity = (metric.features_id or metric.name, metric.version,
                    json.dumps([metric.params, metric.weights_checksums()], sort_keys=True, default=str), key)
        if identity not in self._features:
            try:
                self._features[identity] = metric.extract(media)
            except SampleFailure as failure:
                self._features[identity] = failure
        found = self._features[identity]
        if isinstance(found, SampleFailure):
            raise SampleFailure(found.code, f"{found.message} (item {key})")
        return found


CheckFn = Callable[[Metric, CheckContext, Evidence], tuple[bool, str]]


# ----------------------------------------------------------------------------------------- shared helpers
def roc_auc(same: np.ndarray, different: np.ndarray) -> float:
    """Probability that a same-identity score beats a different-identity one (ties count half): Mann-Whitney AUC."""
    same, different = np.asarray(same, np.float64), np.asarray(different, np.float64)
    if not len(same) or not len(different):
        raise ValueError(f"AUC needs both kinds of pairs: {len(same)} same, {len(different)} different")
    wins = (same[:, None] > different[None, :]).sum() + 0.5 * (same[:, None] == different[None, :]).sum()
    return float(wins / (len(same) * len(different)))


def separation(same: list[float], different: list[float]) -> dict[str, Any]:
    """AUC, mean gap (mean same - mean different), extremes and counts of two score lists."""
    same_a, diff_a = np.asarray(same, np.float64), np.asarray(different, np.float64)
    return {
        "auc": roc_auc(same_a, diff_a),
        "gap": float(same_a.mean() - diff_a.mean()),
        "mean_same": float(same_a.mean()), "mean_different": float(diff_a.mean()),
        "min_same": float(same_a.min()), "max_different": float(diff_a.max()),
        "num_same": len(same_a), "num_different": len(diff_a),
    }


def _separated(stats: dict[str, Any], min_auc: float, min_gap: float) -> bool:
    return bool(stats["auc"] >= min_auc and stats["gap"] >= min_gap)


def _describe(label: str, stats: dict[str, Any], min_auc: float, min_gap: float) -> str:
    return (f"{label}: AUC {stats['auc']:.3f} (>= {min_auc}), gap {stats['gap']:.3f} (>= {min_gap}), "
            f"{stats['num_same']} same / {stats['num_different']} different pairs")


def pair_scores(metric: Metric, context: CheckContext, items: list[LabelledMedia],
                subsets: dict[str, Callable[[LabelledMedia], bool]]) -> dict[str, tuple[list[float], list[float]]]:
    """``compare`` scores of every unordered pair of ``items``, split into same / different identity, for each
    subset (a pair belongs to a subset when both its items pass the subset's predicate)."""
    features = [context.features(metric, item.key, item.media) for item in items]
    pair = selftest_pair("selftest-identity", "selftest", SPEECH_TEXT)
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in subsets}
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            score = float(metric.compare(features[i], features[j], pair).value)
            for name, member in subsets.items():
                if member(items[i]) and member(items[j]):
                    out[name][0 if items[i].speaker == items[j].speaker else 1].append(score)
    return out


def self_similarity(metric: Metric, context: CheckContext, evidence: Evidence, item: LabelledMedia) -> tuple[bool, str]:
    """Two separate extractions of the same clip compared: the score must be 1 within ``SELF_TOLERANCE``."""
    first = context.features(metric, item.key, item.media)
    second = metric.extract(copy_of(item.media))
    score = float(metric.compare(first, second, selftest_pair("selftest-self", "selftest", SPEECH_TEXT)).value)
    error = abs(1.0 - score)
    evidence.thresholds["max_abs_error"] = SELF_TOLERANCE
    evidence.numbers.update({"item": item.key, "score": score, "abs_error": error})
    passed = bool(error <= SELF_TOLERANCE)
    return passed, f"{item.key} vs itself: {score:.6f} (|1 - score| {error:.2e}, must be <= {SELF_TOLERANCE:g})"


# ----------------------------------------------------------------------------------------- speaker
def speaker_self_similarity(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """A demo clip's voice vs itself (two extractions) scores 1."""
    return self_similarity(metric, context, evidence, context.sources.demo_clips()[0])


def speaker_identity_discrimination(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """Same-speaker pairs score above different-speaker pairs: demo voices + real ARCTIC speech (halves)."""
    items = context.sources.demo_clips() + context.sources.arctic_halves()
    evidence.thresholds.update({"min_auc": SPEAKER_MIN_AUC, "min_gap": SPEAKER_MIN_GAP,
                                "applied_to": ["all", "real_speech"]})
    evidence.numbers["items"] = {item.key: item.speaker for item in items}
    scores = pair_scores(metric, context, items, {
        "all": lambda item: True,
        "demo": lambda item: item.key.startswith("demo:"),
        "real_speech": lambda item: item.key.startswith("arctic:"),
    })
    stats = {name: separation(*lists) for name, lists in scores.items()}
    evidence.numbers.update(stats)
    passed = all(_separated(stats[name], SPEAKER_MIN_AUC, SPEAKER_MIN_GAP) for name in ("all", "real_speech"))
    reason = "; ".join(_describe(name, stats[name], SPEAKER_MIN_AUC, SPEAKER_MIN_GAP)
                       for name in ("all", "real_speech"))
    return passed, reason


# ----------------------------------------------------------------------------------------- face
def face_items(context: CheckContext) -> list[LabelledMedia]:
    """For each demo identity: its first target's 5 sampled frames as is and under each of ``FACE_TRANSFORMS``."""
    sources = context.sources
    items = []
    for pair in sources.first_target_per_speaker():
        clip_id = pair.target.clip_id
        fps = sources.clip_media(clip_id).fps
        variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {"original": lambda frames: frames,
                                                                    **FACE_TRANSFORMS}
        for name, transform in variants.items():
            key = f"face:{clip_id}:{name}"
            media = sources.derived(key, lambda transform=transform, name=name, clip_id=clip_id: in_memory(
                f"{clip_id}-{name}.mp4", transform(sources.face_frames(clip_id)), fps))
            items.append(LabelledMedia(key, pair.speaker_id, media, f"{sources.split_name} split, {name}"))
    return items


def face_self_similarity(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """A demo face (5 frames) vs itself (two extractions) scores 1."""
    return self_similarity(metric, context, evidence, face_items(context)[0])


def face_identity_under_transforms(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """The same face mirrored / darker / zoomed / JPEG-coded scores above other identities."""
    items = face_items(context)
    evidence.thresholds.update({"min_auc": FACE_MIN_AUC, "min_gap": FACE_MIN_GAP,
                                "transforms": ["original", *FACE_TRANSFORMS]})
    stats = separation(*pair_scores(metric, context, items, {"all": lambda item: True})["all"])
    evidence.numbers.update(stats)
    pair = selftest_pair("selftest-face", "selftest", SPEECH_TEXT)
    features = {item.key: context.features(metric, item.key, item.media) for item in items}  # memoised above
    per_transform: dict[str, float] = {}
    for name in FACE_TRANSFORMS:  # mean similarity of each transform to its original, over identities
        values = [metric.compare(features[key.rsplit(":", 1)[0] + ":original"], features[key], pair).value
                  for key in features if key.endswith(f":{name}")]
        per_transform[name] = float(np.mean(values))
    evidence.numbers["mean_same_vs_original_by_transform"] = per_transform
    return _separated(stats, FACE_MIN_AUC, FACE_MIN_GAP), _describe("faces", stats, FACE_MIN_AUC, FACE_MIN_GAP)


# ----------------------------------------------------------------------------------------- lip sync
def sync_offset_recovery(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """Audio shifted by k = -3, 0, +3 frames: the recovered offset equals k (+-1) and LSE-D(+-3) > LSE-D(0)."""
    sources = context.sources
    pair = sources.target_pairs()[0]
    clip_id = pair.target.clip_id
    evidence.thresholds.update({"shifts_frames": list(SYNC_SHIFTS_FRAMES),
                                "offset_tolerance_frames": SYNC_OFFSET_TOLERANCE_FRAMES,
                                "lse_d_shifted_must_exceed_lse_d_at_0": True})
    evidence.numbers["clip"] = clip_id
    results: dict[int, dict[str, float]] = {}
    for shift in SYNC_SHIFTS_FRAMES:
        key = f"sync:{clip_id}:{shift:+d}"
        media = sources.derived(key, lambda shift=shift: shift_audio(sources.clip_media(clip_id), shift))
        score = metric.compare(context.features(metric, key, media), None, pair)
        results[shift] = {"offset_frames": int(score.details["offset_frames"]),
                          "lse_d": float(score.details["lse_d"]), "value": float(score.value)}
        evidence.numbers[f"shift_{shift:+d}"] = results[shift]
    offsets_ok = all(abs(r["offset_frames"] - k) <= SYNC_OFFSET_TOLERANCE_FRAMES for k, r in results.items())
    centre = results[0]["lse_d"]
    ordered = all(r["lse_d"] > centre for k, r in results.items() if k != 0)
    found = ", ".join(f"k={k:+d}: offset {r['offset_frames']:+d}, LSE-D {r['lse_d']:.3f}" for k, r in results.items())
    problems = ([] if offsets_ok else [f"an offset is off by more than {SYNC_OFFSET_TOLERANCE_FRAMES} frame"]) + (
        [] if ordered else ["LSE-D at k=+-3 does not exceed LSE-D at k=0"])
    return offsets_ok and ordered, found + ("; " + "; ".join(problems) if problems else "")


# ----------------------------------------------------------------------------------------- WER
def wer_threshold(metric: Metric) -> tuple[float, str]:
    """The WER bound for the metric's backend (the part of its name after the dot) and the rule that chose it."""
    backend = metric.name.split(".", 1)[-1]
    for prefix, bound in WER_MAX_BY_BACKEND.items():
        if backend.startswith(prefix):
            return bound, prefix
    return WER_MAX_DEFAULT, "default"


def wer_arctic(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """Each ARCTIC recording transcribed with WER <= the backend's bound."""
    bound, rule = wer_threshold(metric)
    evidence.thresholds.update({"max_wer_per_recording": bound, "rule": rule})
    values = {}
    for recording in ARCTIC:
        media = context.sources.arctic_media(recording)
        features = context.features(metric, f"arctic:{recording.key}", media)
        score = metric.compare(features, None, selftest_pair("selftest-wer", recording.transcript, SPEECH_TEXT))
        values[recording.key] = float(score.value)
        evidence.numbers[recording.key] = {"wer": float(score.value), "details": score.details}
    passed = all(value <= bound for value in values.values())
    listed = ", ".join(f"{key} {value:.3f}" for key, value in values.items())
    return passed, f"WER {listed} (each must be <= {bound} for backend rule {rule!r})"


# ----------------------------------------------------------------------------------------- CLAP
def clap_cases(sources: SelftestSources) -> list[tuple[str, Callable[[], DecodedMedia], str, tuple[str, ...]]]:
    """``(case, media builder, matching text, distractor texts)`` of the CLAP check."""
    quiet = next(p for p in sources.target_pairs() if "quiet" in p.environment_sounds)
    cases: list[tuple[str, Callable[[], DecodedMedia], str, tuple[str, ...]]] = [
        (f"speech:demo:{quiet.target.clip_id}", lambda: sources.clip_media(quiet.target.clip_id),
         SPEECH_TEXT, SPEECH_DISTRACTORS)]
    for recording in ARCTIC:
        cases.append((f"speech:arctic:{recording.key}", lambda r=recording: sources.arctic_media(r),
                      SPEECH_TEXT, SPEECH_DISTRACTORS))
    cases.append(("tone:1000hz", lambda: sources.derived("tone:1000hz", tone), TONE_TEXT, (SPEECH_TEXT,)))
    return cases


def clap_matching_description(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """The matching description scores above the mismatched ones in at least ``CLAP_MIN_WINS`` of the cases."""
    cases = clap_cases(context.sources)
    evidence.thresholds.update({"min_wins": CLAP_MIN_WINS, "cases": len(cases)})
    wins = 0
    for index, (case, build, matching, distractors) in enumerate(cases):
        features = context.features(metric, case, build())
        scores = {text: float(metric.compare(features, None,
                                             selftest_pair(f"selftest-clap-{index}", "selftest", text)).value)
                  for text in (matching, *distractors)}
        margin = scores[matching] - max(scores[text] for text in distractors)
        wins += int(margin > 0)
        evidence.numbers[case] = {"matching": matching, "scores": scores, "margin": margin, "wins": bool(margin > 0)}
    evidence.numbers["wins"] = wins
    return wins >= CLAP_MIN_WINS, f"the matching text wins {wins} of {len(cases)} cases (needs >= {CLAP_MIN_WINS})"


# ----------------------------------------------------------------------------------------- lip motion
def _talking_and_still(context: CheckContext) -> tuple[str, DecodedMedia, DecodedMedia]:
    clip_id = context.sources.target_pairs()[0].target.clip_id
    talking = context.sources.clip_media(clip_id)
    still = context.sources.derived(f"still:{clip_id}", lambda: still_video(talking, LIP_STILL_FRAMES))
    return clip_id, talking, still


def lip_motion_talking_vs_still(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """A talking demo target moves more than its first frame held still, by ``LIP_MIN_MARGIN``."""
    clip_id, talking, still = _talking_and_still(context)
    pair = context.sources.target_pairs()[0]
    moving = float(metric.compare(context.features(metric, f"demo:{clip_id}", talking), None, pair).value)
    evidence.numbers.update({"clip": clip_id, "talking": moving})
    held = float(metric.compare(context.features(metric, f"still:{clip_id}", still), None, pair).value)
    evidence.numbers.update({"still": held, "margin": moving - held})
    evidence.thresholds.update({"min_margin": LIP_MIN_MARGIN, "still_frames": LIP_STILL_FRAMES})
    passed = bool(moving - held >= LIP_MIN_MARGIN)
    return passed, f"talking {moving:.3f} - still {held:.3f} = {moving - held:.3f} (must be >= {LIP_MIN_MARGIN})"


def lagged_correlation(opening: np.ndarray, loudness: np.ndarray, lag: int) -> float:
    """Pearson correlation of ``opening[t + lag]`` with ``loudness[t]`` over frames where both are finite."""
    if lag >= 0:
        x, y = opening[lag:], loudness[: len(loudness) - lag]
    else:
        x, y = opening[: len(opening) + lag], loudness[-lag:]
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.std(x[keep]) == 0 or np.std(y[keep]) == 0:
        return float("nan")
    return float(np.corrcoef(x[keep], y[keep])[0, 1])


def lip_motion_follows_speech(metric: Metric, context: CheckContext, evidence: Evidence) -> tuple[bool, str]:
    """The per-frame mouth opening follows the audio loudness (correlation at the best small lag)."""
    clip_id, talking, _ = _talking_and_still(context)
    features = context.features(metric, f"demo:{clip_id}", talking)
    if "opening" not in features or "frames_without_face" not in features:
        raise KeyError(f"{metric.name} features have no per-frame 'opening' / 'frames_without_face' "
                       f"(keys: {sorted(features)}); this check reads them")
    missing = set(int(i) for i in features["frames_without_face"])
    with_face = [i for i in range(talking.num_frames) if i not in missing]
    opening = np.full(talking.num_frames, np.nan)
    opening[with_face] = np.asarray(features["opening"], np.float64)
    loudness = frame_envelope_db(talking)
    lags = range(-LIP_MAX_LAG_FRAMES, LIP_MAX_LAG_FRAMES + 1)
    by_lag = {lag: lagged_correlation(opening, loudness, lag) for lag in lags}
    finite = {lag: value for lag, value in by_lag.items() if np.isfinite(value)}
    best_lag = max(finite, key=finite.get) if finite else None
    best = finite[best_lag] if best_lag is not None else float("nan")
    evidence.thresholds.update({"min_correlation": LIP_MIN_CORRELATION, "max_lag_frames": LIP_MAX_LAG_FRAMES})
    evidence.numbers.update({"clip": clip_id, "correlation_by_lag": {f"{lag:+d}": v for lag, v in by_lag.items()},
                             "best_lag_frames": best_lag, "best_correlation": best,
                             "frames_with_face": len(with_face)})
    passed = bool(best >= LIP_MIN_CORRELATION)
    return passed, (f"mouth opening vs loudness: correlation {best:.3f} at lag {best_lag} frames "
                    f"(must be >= {LIP_MIN_CORRELATION} within +-{LIP_MAX_LAG_FRAMES})")


FAMILY_CHECKS: dict[str, tuple[tuple[str, CheckFn], ...]] = {
    "speaker_similarity": (("self_similarity", speaker_self_similarity),
                           ("identity_discrimination", speaker_identity_discrimination)),
    "face_similarity": (("self_similarity", face_self_similarity),
                        ("identity_under_transforms", face_identity_under_transforms)),
    "lse_d": (("audio_offset_recovery", sync_offset_recovery),),
    "lse_c": (("audio_offset_recovery", sync_offset_recovery),),
    "wer": (("arctic_transcription", wer_arctic),),
    "wer_whisper_norm": (("arctic_transcription", wer_arctic),),
    "clap": (("matching_description", clap_matching_description),),
    "clap_env": (("matching_description", clap_matching_description),),
    "clap_style": (("matching_description", clap_matching_description),),
    "lip_motion": (("talking_vs_still", lip_motion_talking_vs_still),
                   ("mouth_follows_speech", lip_motion_follows_speech)),
}
"""Metric family -> its checks ``(check name, function)``, in run order; a family not listed has no check."""
