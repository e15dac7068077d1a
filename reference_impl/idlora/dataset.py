"""Training data for ID-LoRA: (reference audio, target video + audio, first frame, prompt) samples.

Two sources, one format on the way to the trainer:

- ``pairs``: an idlora-bench pairs file (``pairs.jsonl`` of :class:`idlora_bench.core.types.Pair`; any split's pairs
  file can serve as a training set). Each pair's ``reference`` clip gives the reference audio, its ``target``
  clip the target video + audio (its first frame is the first-frame condition) and ``prompt`` the text.
  :func:`encode_pairs_to_cache` encodes them once with a :class:`LatentEncoder` (VAEs + text encoder) into a
  latent cache - encoding a 12B text encoder every step would waste the GPU, as the authors' preprocessing
  also avoids.
- ``latents``: a latent cache directory (this module's format); training reads it directly, so tiny CPU runs
  need no VAE or text encoder.

Latent cache layout (``CACHE_FORMAT`` version 1)::

    <cache>/cache.json                    {"format": "idlora-latent-cache", "version": 1, ...encoder info}
    <cache>/index.jsonl                   one row per sample (see :class:`CacheEntry`)
    <cache>/samples/<sample_id>.safetensors
        video_latents        (C, F, H, W)  normalised target video latents (F latent frames; first = condition)
        audio_latents        (C_a, L, M)   normalised target audio latents (L steps of 40 ms, M latent mel bins)
        ref_audio_latents    (C_a, L_ref, M) normalised reference audio latents
        video_prompt_embeds  (T, D)        text-connector output for the video stream
        audio_prompt_embeds  (T, D)        text-connector output for the audio stream
        prompt_attention_mask (T,)         1 = real text token, 0 = padding

A batch stacks samples of equal shapes (the authors bucket by resolution and length); mismatches are refused
with the sample ids named.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from reference_impl.idlora.training import LatentBatch

CACHE_FORMAT = "idlora-latent-cache"
CACHE_VERSION = 1
TENSOR_NAMES: tuple[str, ...] = (
    "video_latents",
    "audio_latents",
    "ref_audio_latents",
    "video_prompt_embeds",
    "audio_prompt_embeds",
    "prompt_attention_mask",
)
_NDIM = {
    "video_latents": 4,
    "audio_latents": 3,
    "ref_audio_latents": 3,
    "video_prompt_embeds": 2,
    "audio_prompt_embeds": 2,
    "prompt_attention_mask": 1,
}


@dataclass(frozen=True)
class CacheEntry:
    """One row of ``index.jsonl``. ``fps``: target video frames per second. Shapes as stored (no batch dim)."""

    sample_id: str
    file: str
    fps: float
    pair_id: str | None = None
    speaker_id: str | None = None
    video_shape: tuple[int, ...] = ()
    audio_shape: tuple[int, ...] = ()
    ref_audio_shape: tuple[int, ...] = ()
    text_tokens: int = 0


def check_sample_tensors(sample_id: str, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a sample whose tensors are missing, extra, of the wrong rank or mutually inconsistent."""
    missing = [name for name in TENSOR_NAMES if name not in tensors]
    extra = [name for name in tensors if name not in TENSOR_NAMES]
    if missing or extra:
        raise ValueError(f"sample {sample_id!r}: missing tensors {missing}, unexpected {extra}")
    for name, ndim in _NDIM.items():
        if tensors[name].ndim != ndim:
            raise ValueError(f"sample {sample_id!r}: {name} has shape {tuple(tensors[name].shape)}, expected {ndim} dims")
    audio, ref = tensors["audio_latents"], tensors["ref_audio_latents"]
    if audio.shape[0] != ref.shape[0] or audio.shape[2] != ref.shape[2]:
        raise ValueError(
            f"sample {sample_id!r}: reference audio latents {tuple(ref.shape)} and target {tuple(audio.shape)} "
            "must share channels and mel bins"
        )
    text_len = tensors["prompt_attention_mask"].shape[0]
    for name in ("video_prompt_embeds", "audio_prompt_embeds"):
        if tensors[name].shape[0] != text_len:
            raise ValueError(f"sample {sample_id!r}: {name} has {tensors[name].shape[0]} tokens, mask {text_len}")


class LatentCacheWriter:
    """Writes a latent cache (see the module docstring); :meth:`close` writes ``index.jsonl`` and ``cache.json``."""

    def __init__(self, directory: str | Path, info: dict[str, Any] | None = None, overwrite: bool = False) -> None:
        self.directory = Path(directory)
        if (self.directory / "index.jsonl").exists() and not overwrite:
            raise FileExistsError(f"{self.directory} already holds a latent cache (pass overwrite=True to replace it)")
        (self.directory / "samples").mkdir(parents=True, exist_ok=True)
        self.info = dict(info or {})
        self.entries: list[CacheEntry] = []

    def add(
        self,
        sample_id: str,
        tensors: dict[str, torch.Tensor],
        *,
        fps: float,
        pair_id: str | None = None,
        speaker_id: str | None = None,
    ) -> CacheEntry:
        from safetensors.torch import save_file

        if any(entry.sample_id == sample_id for entry in self.entries):
            raise ValueError(f"duplicate sample id {sample_id!r}")
        if not sample_id or "/" in sample_id or sample_id.startswith("."):
            raise ValueError(f"sample id {sample_id!r} is not a plain file name")
        check_sample_tensors(sample_id, tensors)
        file = f"samples/{sample_id}.safetensors"
        stored = {name: tensors[name].detach().to("cpu").contiguous() for name in TENSOR_NAMES}
        stored["prompt_attention_mask"] = stored["prompt_attention_mask"].to(torch.int64)
        save_file(stored, str(self.directory / file))
        entry = CacheEntry(
            sample_id=sample_id,
            file=file,
            fps=float(fps),
            pair_id=pair_id,
            speaker_id=speaker_id,
            video_shape=tuple(stored["video_latents"].shape),
            audio_shape=tuple(stored["audio_latents"].shape),
            ref_audio_shape=tuple(stored["ref_audio_latents"].shape),
            text_tokens=int(stored["prompt_attention_mask"].shape[0]),
        )
        self.entries.append(entry)
        return entry

    def close(self) -> Path:
        if not self.entries:
            raise ValueError(f"no samples were written to {self.directory}")
        index = "".join(json.dumps(asdict(entry)) + "\n" for entry in self.entries)
        tmp = self.directory / "index.jsonl.tmp"
        tmp.write_text(index, encoding="utf-8")
        os.replace(tmp, self.directory / "index.jsonl")
        meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "samples": len(self.entries), **self.info}
        (self.directory / "cache.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return self.directory


class LatentCacheDataset(torch.utils.data.Dataset):
    """Reads a latent cache; items are ``{"sample_id", "fps", <TENSOR_NAMES>...}`` (float32 latents)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / "cache.json"
        index_path = self.directory / "index.jsonl"
        if not meta_path.is_file() or not index_path.is_file():
            raise FileNotFoundError(
                f"{self.directory} is not a latent cache (needs cache.json and index.jsonl); build one with "
                "reference_impl.idlora.dataset.encode_pairs_to_cache or data.mode: pairs"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
            raise ValueError(
                f"{meta_path}: format {meta.get('format')!r} v{meta.get('version')!r}, expected {CACHE_FORMAT!r} v{CACHE_VERSION}"
            )
        self.meta = meta
        self.entries = []
        for number, line in enumerate(index_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            for key in ("video_shape", "audio_shape", "ref_audio_shape"):
                row[key] = tuple(row.get(key, ()))
            try:
                self.entries.append(CacheEntry(**row))
            except TypeError as exc:
                raise ValueError(f"{index_path} line {number}: {exc}") from None
        if not self.entries:
            raise ValueError(f"{index_path} lists no samples")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from safetensors.torch import load_file

        entry = self.entries[index]
        path = self.directory / entry.file
        if not path.is_file():
            raise FileNotFoundError(f"latent cache sample {entry.sample_id!r}: {path} is missing")
        tensors = load_file(str(path))
        check_sample_tensors(entry.sample_id, tensors)
        item: dict[str, Any] = {name: tensors[name].float() for name in TENSOR_NAMES if name != "prompt_attention_mask"}
        item["prompt_attention_mask"] = tensors["prompt_attention_mask"].to(torch.int64)
        item["sample_id"] = entry.sample_id
        item["fps"] = entry.fps
        return item


def collate_latents(items: Sequence[dict[str, Any]]) -> LatentBatch:
    """Stack cache items into a :class:`LatentBatch`; refuses differing shapes or frame rates (names the ids)."""
    if not items:
        raise ValueError("empty batch")
    ids = [item["sample_id"] for item in items]
    for name in TENSOR_NAMES:
        shapes = {tuple(item[name].shape) for item in items}
        if len(shapes) != 1:
            detail = ", ".join(f"{item['sample_id']}: {tuple(item[name].shape)}" for item in items)
            raise ValueError(f"cannot batch samples with different {name} shapes ({detail}); use batch size 1 or bucket")
    rates = {float(item["fps"]) for item in items}
    if len(rates) != 1:
        raise ValueError(f"cannot batch samples with different frame rates {sorted(rates)}: {ids}")
    stacked = {name: torch.stack([item[name] for item in items]) for name in TENSOR_NAMES}
    return LatentBatch(**stacked, fps=rates.pop(), sample_ids=ids)


# ---------------------------------------------------------------------------------------------------------------
# pairs.jsonl -> latent cache
# ---------------------------------------------------------------------------------------------------------------


class LatentEncoder(Protocol):
    """What :func:`encode_pairs_to_cache` needs from the VAEs and the text encoder."""

    def encode_video(self, frames: np.ndarray, fps: float) -> torch.Tensor:
        """(F, H, W, 3) uint8 RGB frames -> normalised video latents (C, F', H', W')."""

    def encode_audio(self, audio: np.ndarray, sample_rate: int) -> torch.Tensor:
        """(channels, samples) float32 in [-1, 1] -> normalised audio latents (C_a, L, M)."""

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompt -> (video_prompt_embeds (T, D), audio_prompt_embeds (T, D), attention_mask (T,))."""


def load_pairs(pairs_path: str | Path) -> list[Any]:
    """Validated :class:`idlora_bench.core.types.Pair` records of a pairs.jsonl (any split's pairs file)."""
    from idlora_bench.core.types import Pair, load_jsonl

    return load_jsonl(Pair, Path(pairs_path))


def encode_pairs_to_cache(
    pairs: Iterable[Any],
    media_root: str | Path,
    encoder: LatentEncoder,
    cache_dir: str | Path,
    *,
    num_frames: int = 121,
    overwrite: bool = False,
    info: dict[str, Any] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> Path:
    """Encode (reference audio, target video + audio, prompt) of each pair into a latent cache.

    The target keeps its first ``num_frames`` video frames (121 = 4.84 s at 25 fps; the count must be 8k + 1
    for the LTX-2 VAE) and the audio of exactly that span, ``num_frames / fps`` seconds; the reference keeps its
    whole audio (about 5 s; no trimming, no loudness normalisation, as in the authors' code). Raises naming the
    pair when a target is shorter than ``num_frames`` frames or a clip lacks a stream.
    """
    from idlora_bench.data.media import decode

    if (num_frames - 1) % 8 != 0:
        raise ValueError(f"num_frames must be 8k + 1 for the LTX-2 video VAE, got {num_frames}")
    writer = LatentCacheWriter(cache_dir, info={"num_frames": num_frames, **(info or {})}, overwrite=overwrite)
    media_root = Path(media_root)
    for count, pair in enumerate(pairs):
        target = decode(media_root / pair.target.path)
        reference = decode(media_root / pair.reference.path, need_video=False)
        frames = target.require_video()
        if len(frames) < num_frames:
            raise ValueError(
                f"pair {pair.pair_id}: target {pair.target.path} has {len(frames)} frames, needs {num_frames}"
            )
        fps = float(target.fps or pair.target.fps)
        target_audio = target.require_audio()
        assert target.sample_rate is not None and reference.sample_rate is not None
        span = round(num_frames / fps * target.sample_rate)
        if target_audio.shape[-1] < span:
            raise ValueError(
                f"pair {pair.pair_id}: target audio lasts {target_audio.shape[-1] / target.sample_rate:.3f} s, "
                f"needs {num_frames / fps:.3f} s"
            )
        video_embeds, audio_embeds, mask = encoder.encode_prompt(pair.prompt)
        tensors = {
            "video_latents": encoder.encode_video(frames[:num_frames], fps),
            "audio_latents": encoder.encode_audio(target_audio[:, :span], target.sample_rate),
            "ref_audio_latents": encoder.encode_audio(reference.require_audio(), reference.sample_rate),
            "video_prompt_embeds": video_embeds,
            "audio_prompt_embeds": audio_embeds,
            "prompt_attention_mask": mask,
        }
        writer.add(pair.pair_id, tensors, fps=fps, pair_id=pair.pair_id, speaker_id=pair.speaker_id)
        if progress is not None:
            progress(count + 1, pair.pair_id)
    return writer.close()


# ---------------------------------------------------------------------------------------------------------------
# A LatentEncoder from diffusers LTX-2 components
# ---------------------------------------------------------------------------------------------------------------

MEL_SAMPLE_RATE = 16_000
MEL_N_FFT = 1024
MEL_HOP = 160
MEL_BINS = 64
MEL_FMAX = 8000.0
MEL_LOG_FLOOR = 1e-5


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney mel filters: the pipeline's filterbank (one implementation for training
    and inference), transposed."""
    from reference_impl.idlora.audio_features import (
        slaney_mel_filterbank as pipeline_filterbank,
    )

    return pipeline_filterbank(n_fft // 2 + 1, n_mels, sample_rate, fmin, fmax).numpy().T


def log_mel_spectrogram(audio: np.ndarray, sample_rate: int) -> torch.Tensor:
    """(channels, samples) audio -> (2, frames, 64) log-mel for the LTX-2 audio VAE.

    Exactly the inference pipeline's :func:`reference_impl.idlora.audio_features.reference_log_mel` (mono duplicated
    to stereo, 16 kHz, n_fft 1024, hop 160, 64 Slaney mels 0-8 kHz, ``log(max(mel, 1e-5))``), so training and
    inference see the same reference features.
    """
    from reference_impl.idlora.audio_features import reference_log_mel

    return reference_log_mel(audio, sample_rate, n_mels=MEL_BINS)[0]


class DiffusersLTX2Encoder:
    """:class:`LatentEncoder` from diffusers' ``AutoencoderKLLTX2Video`` / ``AutoencoderKLLTX2Audio`` and a
    prompt encoder (a callable; :meth:`from_pretrained` builds the LTX-2 Gemma + connectors one).

    Video: frames resized (aspect kept, short side covers the target) and centre-cropped to ``height x width``
    (multiples of 32), scaled to [-1, 1], encoded (posterior mode), normalised with the VAE's latents mean/std.
    Audio: :func:`log_mel_spectrogram`, encoded (posterior mode), packed to (L, C*M), normalised with the audio
    VAE's latents mean/std (as diffusers' pipeline does), unpacked to (C, L, M).
    """

    def __init__(
        self,
        vae: torch.nn.Module,
        audio_vae: torch.nn.Module,
        prompt_encoder: Callable[[str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        *,
        height: int = 512,
        width: int = 512,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if height % 32 or width % 32:
            raise ValueError(f"height and width must be multiples of 32, got {height}x{width}")
        self.vae, self.audio_vae, self.prompt_encoder = vae, audio_vae, prompt_encoder
        self.height, self.width, self.device, self.dtype = height, width, torch.device(device), dtype

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, fps: float) -> torch.Tensor:
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1.0  # (3,F,H,W)
        video = _resize_center_crop(video, self.height, self.width)
        video = video[None].to(self.device, self.dtype)
        latents = self.vae.encode(video).latent_dist.mode()  # (1, C, F', H', W')
        mean = self.vae.latents_mean.view(1, -1, 1, 1, 1).to(latents)
        std = self.vae.latents_std.view(1, -1, 1, 1, 1).to(latents)
        return ((latents - mean) / std)[0].float().cpu()  # as diffusers' LTX-2 pipelines (scaling factor 1)

    @torch.no_grad()
    def encode_audio(self, audio: np.ndarray, sample_rate: int) -> torch.Tensor:
        mel = log_mel_spectrogram(audio, sample_rate)[None].to(self.device, self.dtype)  # (1, 2, T, 64)
        latents = self.audio_vae.encode(mel).latent_dist.mode()  # (1, C, L, M)
        channels, mel_bins = latents.shape[1], latents.shape[3]
        packed = latents.transpose(1, 2).flatten(2, 3)  # (1, L, C*M)
        mean = self.audio_vae.latents_mean.to(packed)
        std = self.audio_vae.latents_std.to(packed)
        packed = (packed - mean) / std
        return packed.unflatten(2, (channels, mel_bins)).transpose(1, 2)[0].float().cpu()

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        video, audio, mask = self.prompt_encoder(prompt)
        return video.float().cpu(), audio.float().cpu(), mask.to(torch.int64).cpu()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        height: int = 512,
        width: int = 512,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.bfloat16,
        max_sequence_length: int = 1024,
    ) -> DiffusersLTX2Encoder:
        """Load ``vae``, ``audio_vae``, ``text_encoder``, ``tokenizer``, ``connectors`` from a diffusers-format
        LTX-2 folder (e.g. a local snapshot of ``Lightricks/LTX-2``). Fails with the fix named when absent."""
        try:
            from diffusers import LTX2Pipeline

            pipe = LTX2Pipeline.from_pretrained(str(path), transformer=None, vocoder=None, torch_dtype=dtype)
        except Exception as exc:
            raise RuntimeError(
                f"cannot load the LTX-2 VAEs / text encoder from {path!r} ({exc.__class__.__name__}: {exc}). "
                "Download a diffusers-format LTX-2 checkpoint (e.g. `huggingface-cli download Lightricks/LTX-2`) "
                "and point model.pretrained_path at it, or train from a latent cache (data.mode: latents)."
            ) from exc
        pipe.to(device)

        @torch.no_grad()
        def prompt_encoder(prompt: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            embeds, mask, _, _ = pipe.encode_prompt(
                prompt, do_classifier_free_guidance=False, max_sequence_length=max_sequence_length, device=device
            )
            side = getattr(pipe.tokenizer, "padding_side", "left")
            video, audio, connector_mask = pipe.connectors(embeds, mask, padding_side=side)
            return video[0], audio[0], connector_mask[0]

        return cls(pipe.vae, pipe.audio_vae, prompt_encoder, height=height, width=width, device=device, dtype=dtype)


def _resize_center_crop(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(3, F, H, W) -> (3, F, height, width): scale so the frame covers the target (aspect kept), centre crop."""
    _, _, in_h, in_w = video.shape
    scale = max(height / in_h, width / in_w)
    new_h, new_w = max(height, round(in_h * scale)), max(width, round(in_w * scale))
    frames = torch.nn.functional.interpolate(
        video.permute(1, 0, 2, 3), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
    )
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return frames[:, :, top : top + height, left : left + width].permute(1, 0, 2, 3).contiguous()


def write_synthetic_latent_cache(
    directory: str | Path,
    num_samples: int = 4,
    *,
    video_shape: tuple[int, int, int, int] = (8, 3, 2, 2),
    audio_shape: tuple[int, int, int] = (2, 10, 2),
    ref_audio_frames: int = 6,
    text_tokens: int = 5,
    caption_channels: int = 12,
    fps: float = 25.0,
    seed: int = 0,
) -> Path:
    """A random latent cache for smoke runs and tests (shapes fit ``tiny.TINY_TRANSFORMER_CONFIG``: video
    width C = in_channels 8, audio C_a * M = audio_in_channels 4, caption_channels 12). Not training data."""
    generator = torch.Generator().manual_seed(seed)
    writer = LatentCacheWriter(directory, info={"synthetic": True, "seed": seed})
    for index in range(num_samples):
        valid = text_tokens - (index % 2)
        mask = torch.zeros(text_tokens, dtype=torch.int64)
        mask[:valid] = 1
        tensors = {
            "video_latents": torch.randn(video_shape, generator=generator),
            "audio_latents": torch.randn(audio_shape, generator=generator),
            "ref_audio_latents": torch.randn(
                (audio_shape[0], ref_audio_frames, audio_shape[2]), generator=generator
            ),
            "video_prompt_embeds": torch.randn((text_tokens, caption_channels), generator=generator),
            "audio_prompt_embeds": torch.randn((text_tokens, caption_channels), generator=generator),
            "prompt_attention_mask": mask,
        }
        writer.add(f"synthetic-{index:03d}", tensors, fps=fps)
    return writer.close()
