"""Video part ``wan2.2``: Wan2.2-S2V-14B speech-to-video, run as the official ``generate.py`` of the user's checkout
of github.com/Wan-Video/Wan2.2 (paper Tables 1-2, "+ WAN2.2").

diffusers 0.42.1 (this project's pin) has no Wan speech-to-video pipeline (``diffusers/pipelines/wan/`` holds T2V,
I2V, VACE, Animate and video-to-video only), so the official code runs. It runs as a subprocess, one per output,
because Wan2.2 needs its own environment (``requirements.txt``: torch >= 2.4 with CUDA, flash_attn, decord,
transformers <= 4.51.3, numpy < 2 ...) that cannot share this project's pins; the price is loading the 14B model
per output (a minute or two beside ~10 min of sampling on one 80 GB GPU). The command is the README's single-GPU
one (``README.md:263``, Wan2.2 at commit 42bf4cf, 2026-03-17)::

    <python> <checkout>/generate.py --task s2v-14B --size 1024*704 --ckpt_dir <store>/wan2.2-s2v-14b
        --offload_model True --convert_model_dtype --prompt <text> --image <first frame .png>
        --audio <speech .wav> --base_seed <seed> --infer_frames 80 --start_from_ref --save_file <raw .mp4>

``--size`` is the pixel area, the aspect ratio follows the image (``README.md:284``); without ``--num_clip`` the
clip count follows the audio (``generate.py:250-255``) and always covers it (``wan/modules/s2v/audio_encoder.py:150``);
``--start_from_ref`` makes the image the first frame, "standard image-to-video" (``generate.py:286-290``,
``wan/speech2video.py:504-506``); sampling defaults come from ``wan/configs/wan_s2v_14B.py`` (40 steps, shift 3,
guidance 4.5); frames are written at 16 fps (``wan/configs/shared_config.py:18``). ``generate.py`` then re-muxes
the audio with the ``ffmpeg`` binary (AAC 192k, ``-shortest``, ``wan/utils/utils.py:26-87``) and only logs a failure
of that step or of writing the video (``utils.py:84-87, 119-120``); so this part checks the file exists and always
re-muxes itself with PyAV: the raw video's frames (cut to the speech's duration, re-encoded H.264 at ``crf``) with
the given speech at its own rate (AAC), never the copy generate.py made.

Inputs written for generate.py: the target's first frame (:func:`baselines.video.still.first_frame`) as PNG; the
speech as 16-bit WAV at its own rate (Wan2.2 reads it with ``librosa.load(sr=16000)``); the prompt's ``[VISUAL]``
text (``prompt="visual"``, default) or the whole ``[VISUAL] [SPEECH] [SOUNDS]`` prompt (``prompt="full"``). The
exact argument list is in the details.

Install::

    git clone https://github.com/Wan-Video/Wan2.2.git && cd Wan2.2
    python -m venv .venv && .venv/bin/pip install -r requirements.txt -r requirements_s2v.txt   # CUDA torch first
    bench models pull wan2.2-s2v-14b
    bench run --method cosyvoice3+wan2.2 --option video.checkout=$PWD \
        --option video.python=$PWD/.venv/bin/python ...       # or WAN22_ROOT / WAN22_PYTHON

Weights: ``Wan-AI/Wan2.2-S2V-14B`` at revision dab4e9c5 (the revision other projects pin; the DiT shards, T5, VAE,
tokenizer and wav2vec2 files generate.py loads). Licence: Apache-2.0. ``fake=True`` (the cascade's
``model=tiny-random``): the first frame held still for the speech's duration with the speech
(:func:`baselines.video.still.write_still_video`), no checkout, weights or GPU needed.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.io import wavfile

from baselines.audio_io import read_audio
from baselines.checkout import CheckoutSpec, UpstreamCodeError, code_provenance, resolve_checkout
from baselines.parts import VideoPart
from baselines.video.still import first_frame, write_still_video
from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.io import file_sha256
from idlora_bench.core.types import PROMPT_PATTERN
from idlora_bench.data.media import decode, write_mp4
from idlora_bench.data.splits import ResolvedPair
from idlora_bench.methods.base import MethodOptions

WAN_REPO = "Wan-AI/Wan2.2-S2V-14B"
WAN_REVISION = "dab4e9c55bbe4c8c4d03db1c2c98c7f0ac9c454b"
WAN_MODEL = "wan2.2-s2v-14b"
WAN_FILES: tuple[str, ...] = (
    "config.json", "diffusion_pytorch_model.safetensors.index.json",
    *(f"diffusion_pytorch_model-{i:05d}-of-00004.safetensors" for i in range(1, 5)),
    "models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth",
    *(f"google/umt5-xxl/{name}" for name in ("special_tokens_map.json", "spiece.model", "tokenizer.json",
                                              "tokenizer_config.json")),
    *(f"wav2vec2-large-xlsr-53-english/{name}" for name in ("config.json", "preprocessor_config.json",
                                                             "special_tokens_map.json", "vocab.json",
                                                             "model.safetensors")),
)
WAN_WEIGHTS: tuple[WeightsFile, ...] = tuple(
    WeightsFile(model=WAN_MODEL, file=name, source=f"hf:{WAN_REPO}@{WAN_REVISION}:{name}", sha256=None,
                licence="Apache-2.0") for name in WAN_FILES)
CHECKOUT = CheckoutSpec(
    system="Wan2.2", clone="https://github.com/Wan-Video/Wan2.2", env_var="WAN22_ROOT", option="video.checkout",
    markers=("generate.py", "wan/speech2video.py"),
    install="create its environment: pip install -r requirements.txt -r requirements_s2v.txt (CUDA torch first), "
            "and pass --option video.python=<that environment's python> (or set WAN22_PYTHON)")
PYTHON_ENV = "WAN22_PYTHON"
WAN_FPS = 16.0  # wan/configs/shared_config.py:18


class Wan22Options(MethodOptions):
    """``checkout`` (else ``$WAN22_ROOT``), ``python`` (Wan2.2's interpreter; else ``$WAN22_PYTHON``, else this
    one), ``size`` (pixel area, one of Wan2.2's s2v sizes), ``prompt`` (``visual`` or ``full``), ``sample_steps`` /
    ``num_clip`` (None: Wan2.2's defaults), ``infer_frames`` (per clip, multiple of 4), ``start_from_ref``,
    ``offload_model``, ``convert_model_dtype``, ``t5_cpu``, ``crf`` (of the re-mux), ``timeout_s``."""

    checkout: str | None = None
    python: str | None = None
    size: Literal["720*1280", "1280*720", "480*832", "832*480", "1024*704", "704*1024", "704*1280", "1280*704"] = (
        "1024*704")
    prompt: Literal["visual", "full"] = "visual"
    sample_steps: int | None = None
    num_clip: int | None = None
    infer_frames: int = 80
    start_from_ref: bool = True
    offload_model: bool = True
    convert_model_dtype: bool = True
    t5_cpu: bool = False
    crf: int = 17
    timeout_s: float | None = None


def prompt_text(prompt: str, which: str) -> str:
    """The text sent to Wan2.2: the ``[VISUAL]`` part of the pair's prompt (``which="visual"``) or all of it."""
    if which == "full":
        return prompt
    match = PROMPT_PATTERN.match(prompt)
    return match["visual"].strip() if match else prompt


def write_pcm16(path: Path, audio: np.ndarray, rate: int) -> None:
    """``audio`` ``(C, N)`` float as a 16-bit PCM WAV (channels kept), the format every reader takes."""
    pcm = np.round(np.clip(np.atleast_2d(audio), -1.0, 1.0) * 32767.0).astype(np.int16)
    wavfile.write(path, int(rate), pcm.T if pcm.shape[0] > 1 else pcm[0])


class Wan22SpeechToVideo(VideoPart):
    """Wan2.2-S2V-14B: the first frame + the speech (+ the visual prompt) -> a talking video at 16 fps."""

    name: ClassVar[str] = "wan2.2"
    description: ClassVar[str] = "Wan2.2-S2V-14B speech-to-video (official generate.py from a Wan2.2 checkout)"
    licence: ClassVar[str] = "Apache-2.0"
    options_model: ClassVar[type[MethodOptions]] = Wan22Options
    weights: ClassVar[tuple[WeightsFile, ...]] = WAN_WEIGHTS
    options: Wan22Options

    def __init__(self, fake: bool = False, **options: Any) -> None:
        super().__init__(fake=fake, **options)
        self._root: Path | None = None

    def config(self) -> dict[str, Any]:
        config = super().config()
        for local in ("checkout", "python", "timeout_s"):  # where things live does not change the video
            config.pop(local, None)
        if not self.fake:
            config["weights"] = f"hf:{WAN_REPO}@{WAN_REVISION}"
            config["code"] = code_provenance(CHECKOUT, self.options.checkout)
        return config

    def python(self) -> str:
        """The interpreter that runs generate.py."""
        return self.options.python or os.environ.get(PYTHON_ENV) or sys.executable

    def prepare(self) -> None:
        """Check the checkout (and that its generate.py has the s2v flags used), the interpreter and the weights.

        Raises:
            UpstreamCodeError: no checkout, a checkout without s2v support, or no interpreter.
            WeightsError: a weights file is missing or does not match (fix: ``bench models pull wan2.2-s2v-14b``).
        """
        if self.fake or self._root is not None:
            return
        root = resolve_checkout(CHECKOUT, self.options.checkout)
        script = (root / "generate.py").read_text(errors="replace")
        needed = ["s2v-14B", "--audio"] + (["--start_from_ref"] if self.options.start_from_ref else [])
        missing = [flag for flag in needed if flag not in script]
        if missing:
            raise UpstreamCodeError(f"Wan2.2: {root}/generate.py lacks {', '.join(missing)} (an older checkout). "
                                    f"Fix: git -C {root} pull")
        python = self.python()
        if shutil.which(python) is None and not Path(python).is_file():
            raise UpstreamCodeError(f"Wan2.2: interpreter {python!r} not found. Fix: {CHECKOUT.install}")
        for card in self.weights:
            card.verify()
        self._root = root

    def command(self, image: Path, audio: Path, prompt: str, save_file: Path, seed: int) -> list[str]:
        """The generate.py argument list (README.md:263 plus seed, frames per clip, first frame and output)."""
        assert self._root is not None
        o = self.options
        command = [self.python(), str(self._root / "generate.py"), "--task", "s2v-14B", "--size", o.size,
                   "--ckpt_dir", str(self.weights[0].path().parent), "--offload_model", str(o.offload_model),
                   *(["--convert_model_dtype"] if o.convert_model_dtype else []), *(["--t5_cpu"] if o.t5_cpu else []),
                   "--prompt", prompt, "--image", str(image), "--audio", str(audio), "--base_seed", str(int(seed)),
                   "--infer_frames", str(o.infer_frames)]
        if o.sample_steps is not None:
            command += ["--sample_steps", str(o.sample_steps)]
        if o.num_clip is not None:
            command += ["--num_clip", str(o.num_clip)]
        if o.start_from_ref:
            command.append("--start_from_ref")
        return [*command, "--save_file", str(save_file)]

    def animate(self, item: ResolvedPair, speech_wav: Path, out_path: Path, seed: int) -> dict[str, Any]:
        """Write the Wan2.2 video of ``item`` driven by ``speech_wav`` with that speech as its audio track."""
        if self.fake:
            return write_still_video(item.target_path, speech_wav, out_path)
        self.prepare()
        speech, rate = read_audio(speech_wav)
        text = prompt_text(item.pair.prompt, self.options.prompt)
        with tempfile.TemporaryDirectory(prefix="wan22-") as tmp:
            work = Path(tmp)
            image, audio, raw = work / "first_frame.png", work / "speech.wav", work / "wan22_raw.mp4"
            from PIL import Image

            Image.fromarray(first_frame(item.target_path)).save(image)
            write_pcm16(audio, speech, rate)
            command = self.command(image, audio, text, raw, seed)
            try:
                done = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False,
                                      timeout=self.options.timeout_s)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"Wan2.2 generate.py ran past {self.options.timeout_s} s") from exc
            if done.returncode != 0 or not raw.is_file() or raw.stat().st_size == 0:
                raise RuntimeError(f"Wan2.2 generate.py wrote no video (exit {done.returncode}): "
                                   f"{(done.stderr or done.stdout)[-2000:]}")
            details = remux_with_speech(raw, speech, rate, out_path, crf=self.options.crf)
            details["wan22_raw_sha256"] = file_sha256(raw)
        shown = [a.replace(str(work), "<work>") for a in command]
        return {"command": shown, "prompt_sent": text, "seed": int(seed), **details,
                "weights": f"hf:{WAN_REPO}@{WAN_REVISION}"}


def remux_with_speech(raw: Path, speech: np.ndarray, rate: int, out_path: Path, *, crf: int = 17) -> dict[str, Any]:
    """Write ``out_path``: the frames of ``raw`` (the speech's duration of them, even-sized) re-encoded with
    ``speech`` ``(C, N)`` at ``rate`` Hz as the audio track; any audio in ``raw`` is dropped. A video shorter than
    the speech cuts the speech to it (recorded as ``speech_cut_seconds``)."""
    media = decode(raw, need_audio=False)
    frames = media.require_video()
    fps = float(media.fps or WAN_FPS)
    speech_s = speech.shape[-1] / rate
    keep = min(len(frames), max(1, math.ceil(speech_s * fps - 1e-6)))
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    video_s = keep / fps
    cut = max(0.0, speech_s - video_s)
    audio = speech[..., : int(round(min(speech_s, video_s) * rate))] if cut > 0 else speech
    write_mp4(out_path, np.ascontiguousarray(frames[:keep, :height, :width]), fps, audio, rate, crf=crf)
    return {"fps": fps, "raw_frames": int(len(frames)), "frames": int(keep), "size": [int(width), int(height)],
            "speech_seconds": round(speech_s, 4), "speech_cut_seconds": round(cut, 4),
            "audio": "the given speech (re-muxed with PyAV; generate.py's ffmpeg copy discarded)"}
