"""Video part ``ltx``: LTX-2 audio-to-video on this project's LTX-2 pipeline (the ``<tts>+ltx`` cascades of the
paper, Tables 1-2): the TTS speech is the clean, fixed audio and only the video is denoised from the target's first
frame (:mod:`reference_impl.idlora.audio_to_video`).

Weights: the LTX-2 base of ``ltx-zeroshot`` (``bench models pull ltx-2``); no LoRA, no voice reference. ``fake=True``
(the cascade's ``model=tiny-random``) runs the same code on the tiny random LTX-2 components on CPU (smoke). The
output's audio track is the speech itself (cut to the video's duration when longer than ``max_frames / fps``).
Licence: LTX-2 Community License.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from baselines.audio_io import read_audio
from baselines.parts import VideoPart
from baselines.video.still import first_frame
from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.data.media import write_mp4
from idlora_bench.data.splits import ResolvedPair
from idlora_bench.methods.base import MethodOptions
from reference_impl.idlora.weights_cards import LTX_BASES


class LTXAudioToVideoOptions(MethodOptions):
    """``steps`` (30; 4 fake), ``long_side`` (512; 64 fake), ``max_frames`` (121: 4.84 s at 25 fps), ``fps``
    (25), guidance on the video (``video_scale`` 3, ``stg_scale`` 1, ``modality_scale`` 3), ``offload``, ``device``,
    ``dtype`` as ``ltx-zeroshot``."""

    steps: int | None = None
    long_side: int | None = None
    max_frames: int | None = None
    fps: float = 25.0
    video_scale: float = 3.0
    stg_scale: float = 1.0
    modality_scale: float = 3.0
    offload: Literal["none", "model"] | None = None
    device: str = "auto"
    dtype: str | None = None
    tiny_seed: int = 0


class LTXAudioToVideo(VideoPart):
    """LTX-2 with the given speech as clean audio; only the video is generated."""

    name: ClassVar[str] = "ltx"
    description: ClassVar[str] = "LTX-2 audio-to-video (the speech fixed, the video denoised from the first frame)"
    licence: ClassVar[str] = "LTX-2 Community License"
    options_model: ClassVar[type[MethodOptions]] = LTXAudioToVideoOptions
    weights: ClassVar[tuple[WeightsFile, ...]] = LTX_BASES["ltx-2"].base
    options: LTXAudioToVideoOptions

    def __init__(self, fake: bool = False, **options: Any) -> None:
        super().__init__(fake=fake, **options)
        from reference_impl.idlora.methods import LTXZeroShotMethod

        o = self.options
        base: dict[str, Any] = {"model": "tiny-random" if fake else "ltx-2", "steps": o.steps,
                                "long_side": o.long_side, "fps": o.fps, "video_scale": o.video_scale,
                                "stg_scale": o.stg_scale, "modality_scale": o.modality_scale, "offload": o.offload,
                                "device": o.device, "dtype": o.dtype, "tiny_seed": o.tiny_seed}
        self.loader = LTXZeroShotMethod(**base)  # weights checks, loading, offload and defaults of ltx-zeroshot
        self.max_frames = o.max_frames if o.max_frames is not None else 121

    def config(self) -> dict[str, Any]:
        loader = self.loader.config()
        keep = ("base_weights", "guidance", "steps", "sigmas", "fps", "resolution", "dtype", "negative_prompt_sha256",
                "diffusers")
        return {"part": self.name, "fake": self.fake, "max_frames": self.max_frames, **{k: loader[k] for k in keep}}

    def prepare(self) -> None:
        self.loader.prepare(None)

    def animate(self, item: ResolvedPair, speech_wav: Path, out_path: Path, seed: int) -> dict[str, Any]:
        from reference_impl.idlora.audio_to_video import audio_to_video

        if self.loader._pipeline is None:
            self.prepare()
        speech, rate = read_audio(speech_wav)
        loader = self.loader
        result = audio_to_video(
            loader._pipeline, item.pair.prompt, first_frame(item.target_path), speech, rate,
            long_side=loader.long_side, frame_rate=loader.fps, max_frames=self.max_frames,
            num_inference_steps=loader.steps, seed=int(seed), guidance=loader.guidance_config(),
            negative_prompt=loader.negative_prompt,
        )
        write_mp4(out_path, result.frames, result.fps, result.speech, result.sample_rate)
        return result.info
