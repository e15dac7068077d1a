"""LTX-2 audio-to-video on :class:`~reference_impl.idlora.pipeline.IDLoRAPipeline`: the given speech is the audio,
clean and fixed; only the video is denoised (first frame conditioned). The ``<tts>+ltx`` cascades of the paper
(Tables 1-2: "the TTS speech given to LTX-2, which generates the video") run this.

Steps (numbered as the pipeline's): 1. text as the pipeline (cached per text); 2. the speech, cut or zero-padded to
the video's duration, resampled to 16 kHz and encoded by the audio VAE exactly as a voice reference is
(``IDLoRAPipeline.encode_reference_audio``), is the whole audio sequence at standard positions, timestep 0 (denoise
mask 0: the sampler re-clamps it after every step, so it never changes); 3. first frame as the pipeline; 4. Euler
sampling over the LTX-2 schedule with text CFG, STG and modality isolation on the video (no reference, so no
identity guidance; the audio predictions are unused); 5. video decode. The output audio is the speech itself, not
a VAE round trip.

The number of frames follows the speech: the longest ``8k + 1`` frames whose duration (``frames / fps``) does not
exceed it, at most ``max_frames`` (longer speech is cut, and the cut is reported), at least 9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reference_impl.idlora.guidance import GuidanceConfig, GuidancePass
from reference_impl.idlora.first_frame import DEFAULT_LONG_SIDE, image_to_tensor
from reference_impl.idlora.prompts import DEFAULT_NEGATIVE_PROMPT
from reference_impl.idlora.sampling import LatentState, StepCallback, TransformerDenoiser, sample

MIN_FRAMES = 9


@dataclass
class AudioToVideoOutput:
    """``frames`` ``(T, H, W, 3)`` uint8 at ``fps``; ``speech`` ``(C, N)`` float32 at ``sample_rate``: the input speech
    cut/padded to ``T / fps`` seconds (the audio track to write); ``info``: sizes, token counts, cut seconds."""

    frames: np.ndarray
    fps: float
    speech: np.ndarray
    sample_rate: int
    info: dict[str, Any]


def frames_for_speech(seconds: float, fps: float, temporal: int = 8, max_frames: int = 121) -> int:
    """The longest ``temporal * k + 1`` frame count lasting at most ``seconds`` at ``fps`` (between 9 and
    ``max_frames``)."""
    fitting = int(np.floor(seconds * fps + 1e-9))
    frames = (max(fitting, 1) - 1) // temporal * temporal + 1
    return int(min(max(frames, MIN_FRAMES), max_frames))


def fit_speech(speech: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """``(C, N)`` speech cut or zero-padded to ``round(seconds * sample_rate)`` samples."""
    speech = np.atleast_2d(np.asarray(speech, dtype=np.float32))
    length = int(round(seconds * sample_rate))
    if speech.shape[1] >= length:
        return speech[:, :length]
    return np.pad(speech, ((0, 0), (0, length - speech.shape[1])))


@torch.no_grad()
def audio_to_video(
    pipeline: Any,
    prompt: str,
    image: Any,
    speech: np.ndarray,
    sample_rate: int,
    *,
    height: int | None = None,
    width: int | None = None,
    long_side: int = DEFAULT_LONG_SIDE,
    frame_rate: float = 25.0,
    max_frames: int = 121,
    num_inference_steps: int = 30,
    seed: int = 0,
    guidance: GuidanceConfig | None = None,
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    check_prompt_format: bool = True,
    callback: StepCallback | None = None,
) -> AudioToVideoOutput:
    """Generate the video for ``speech`` (``(N,)``/``(C, N)`` at ``sample_rate`` Hz) from ``image`` and ``prompt``.

    See the module docstring; arguments as :meth:`IDLoRAPipeline.__call__` (``guidance`` loses its identity term).
    """
    guidance = (guidance if guidance is not None else GuidanceConfig()).without_identity()
    pixels = image_to_tensor(image)
    speech = np.atleast_2d(np.asarray(speech, dtype=np.float32))
    speech_seconds = speech.shape[1] / float(sample_rate)
    num_frames = frames_for_speech(speech_seconds, frame_rate, pipeline.vae_temporal_compression_ratio, max_frames)
    height, width, sigmas = pipeline._check_call(prompt, pixels, False, None, height, width, long_side, num_frames,
                                                 guidance, None, num_inference_steps, check_prompt_format)
    max_length = min(1024, int(pipeline.tokenizer.model_max_length))
    passes = guidance.passes(False)
    text = pipeline.encode_text(prompt, negative_prompt if GuidancePass.NEGATIVE in passes else None, max_length)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    video_state, grid = pipeline._initial_video_state(pixels, height, width, num_frames, generator, "resize")
    seconds = num_frames / frame_rate
    kept = fit_speech(speech, sample_rate, seconds)
    audio_state = speech_state(pipeline, kept, sample_rate, num_frames, frame_rate)
    n_target = int(audio_state.latents.shape[1])
    inputs = pipeline._denoiser_inputs(text, grid, 0, n_target, frame_rate, "negative", "bfloat16")
    denoiser = TransformerDenoiser(pipeline.transformer, inputs, guidance, batched=True)
    video_state, _ = sample(denoiser, video_state, audio_state, sigmas, callback)
    frames = pipeline.decode_video(pipeline.unpack_video(video_state.latents, *grid))
    info = {"height": height, "width": width, "num_frames": num_frames, "fps": frame_rate, "seconds": seconds,
            "speech_seconds": speech_seconds, "speech_cut_seconds": max(0.0, speech_seconds - seconds),
            "audio_tokens": n_target, "passes": [p.value for p in passes], "forward_calls": denoiser.forward_calls,
            "guidance": guidance.as_dict(), "steps": num_inference_steps}
    return AudioToVideoOutput(frames, frame_rate, kept, int(sample_rate), info)


def speech_state(pipeline: Any, speech: np.ndarray, sample_rate: int, num_frames: int,
                 frame_rate: float) -> LatentState:
    """Step 2: the speech's audio-VAE tokens as the whole, clean audio sequence (denoise mask 0), one token per
    40 ms of video (the encoder's extra tokens are dropped; a short encoding is padded with its last token)."""
    latents_per_second = (float(pipeline.audio_sampling_rate) / pipeline.audio_hop_length
                          / pipeline.audio_vae_temporal_compression_ratio)
    n_target = round(num_frames / frame_rate * latents_per_second)
    tokens = pipeline.encode_reference_audio(speech, sample_rate).cpu()
    if tokens.shape[1] < n_target:
        tokens = torch.cat([tokens, tokens[:, -1:].expand(-1, n_target - tokens.shape[1], -1)], dim=1)
    tokens = tokens[:, :n_target].to(pipeline._execution_device)
    return LatentState(latents=tokens, clean=tokens.clone(),
                       denoise_mask=torch.zeros(tokens.shape[:2], device=tokens.device))
