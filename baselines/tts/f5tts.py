"""TTS part ``f5tts``: F5-TTS v1 Base (flow-matching DiT, 24 kHz), a modern open voice-cloning baseline, through
the ``f5-tts`` PyPI package's documented API.

Upstream (SWivid/F5-TTS at commit 2ae2c9b; the API is the same in the PyPI release 1.1.22):

- ``F5TTS(model="F5TTS_v1_Base", ckpt_file="", vocab_file="", ode_method="euler", use_ema=True,
  vocoder_local_path=None, device=None)`` (``src/f5_tts/api.py:23-84``): an empty ``ckpt_file`` downloads
  ``hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors``, no ``vocoder_local_path`` downloads
  ``charactr/vocos-mel-24khz`` (``src/f5_tts/infer/utils_infer.py:106-117``), an empty ``vocab_file`` uses the
  package's own ``infer/examples/vocab.txt``. This part passes the verified model-store files instead, so nothing is
  downloaded at load time.
- ``infer(ref_file, ref_text, gen_text, ..., sway_sampling_coef=-1, cfg_strength=2, nfe_step=32, speed=1.0,
  seed=None) -> (wav, sample_rate, spectrogram)`` (``api.py:98-149``) seeds with ``seed_everything(seed)``; the
  reference is cut to at most ~12 s at silences (``utils_infer.py:298-346``); an empty ``ref_text`` makes F5-TTS
  transcribe the reference itself with ``openai/whisper-large-v3-turbo`` from the hub (``utils_infer.py:165``,
  unpinned; recorded as ``ref_text_source``).

What this part sends: the reference clip's audio, mono, at its own rate, as a 16-bit WAV (F5-TTS reads it with
pydub); ``ref_text`` = the cascade's reference transcript, or "" (F5-TTS's own ASR) when there is none and
``transcribe_missing`` is true (default; false makes it an error); ``gen_text`` = the pair's transcript.

Install: ``f5-tts`` depends on torchaudio and torchcodec (and gradio, wandb ...), which break this project's CPU
torch, so it is not part of the default environment; use a GPU environment with a matching torch/torchaudio pair::

    pip install f5-tts==1.1.22           # (the lead's extra: pip install 'idlora-bench[f5tts]')
    bench models pull f5tts-v1-base vocos-mel-24khz

Weights: ``SWivid/F5-TTS`` at revision 84e5a410 (CC-BY-NC-4.0, non-commercial) and ``charactr/vocos-mel-24khz`` at
revision 0feb3fdd (MIT), revisions other projects pin. Code: MIT. ``fake=True``: the reference audio looped
(:mod:`baselines.tts.fake_speech`), the package is not needed.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from baselines.audio_io import write_wav
from baselines.checkout import UpstreamCodeError, as_numpy, write_prompt_wav
from baselines.parts import SpeechRequest, SpeechResult, TTSPart
from baselines.tts.fake_speech import write_fake_speech
from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.methods.base import MethodOptions

F5_REPO = "SWivid/F5-TTS"
F5_REVISION = "84e5a410d9cead4de2f847e7c9369a6440bdfaca"
F5_CHECKPOINT = "F5TTS_v1_Base/model_1250000.safetensors"
VOCOS_REPO = "charactr/vocos-mel-24khz"
VOCOS_REVISION = "0feb3fdd929bcd6649e0e7c5a688cf7dd012ef21"
F5_PACKAGE = "f5-tts==1.1.22"
F5_WEIGHTS: tuple[WeightsFile, ...] = (
    WeightsFile(model="f5tts-v1-base", file=F5_CHECKPOINT, source=f"hf:{F5_REPO}@{F5_REVISION}:{F5_CHECKPOINT}",
                sha256=None, licence="CC-BY-NC-4.0"),
    *(WeightsFile(model="vocos-mel-24khz", file=name, source=f"hf:{VOCOS_REPO}@{VOCOS_REVISION}:{name}", sha256=None,
                  licence="MIT") for name in ("config.yaml", "pytorch_model.bin")),
)
ASR_SOURCE = "f5-tts's own ASR (hub openai/whisper-large-v3-turbo, unpinned)"

log = logging.getLogger(__name__)


class F5TTSOptions(MethodOptions):
    """``model`` (the package's config name), sampling (``nfe_step`` 32, ``cfg_strength`` 2,
    ``sway_sampling_coef`` -1, ``speed`` 1: the API's defaults), ``transcribe_missing`` (an absent reference
    transcript lets F5-TTS transcribe the reference; false: an error), ``device`` (``auto``: the package's choice)."""

    model: str = "F5TTS_v1_Base"
    nfe_step: int = 32
    cfg_strength: float = 2.0
    sway_sampling_coef: float = -1.0
    speed: float = 1.0
    transcribe_missing: bool = True
    device: str = "auto"


class F5TTS(TTSPart):
    """F5-TTS v1 Base voice cloning from a reference clip (+ its words when known); speech at 24 kHz."""

    name: ClassVar[str] = "f5tts"
    description: ClassVar[str] = "F5-TTS v1 Base flow-matching voice cloning (pip package f5-tts)"
    licence: ClassVar[str] = "weights CC-BY-NC-4.0 (vocoder MIT); code MIT"
    options_model: ClassVar[type[MethodOptions]] = F5TTSOptions
    weights: ClassVar[tuple[WeightsFile, ...]] = F5_WEIGHTS
    options: F5TTSOptions

    def __init__(self, fake: bool = False, **options: Any) -> None:
        super().__init__(fake=fake, **options)
        self._tts: Any = None

    def config(self) -> dict[str, Any]:
        config = super().config()
        if not self.fake:
            config["weights"] = [f"hf:{F5_REPO}@{F5_REVISION}", f"hf:{VOCOS_REPO}@{VOCOS_REVISION}"]
            config["package"] = _package_version()
        return config

    def prepare(self) -> None:
        """Import ``f5_tts.api`` (lazily: the package is optional), check the weights and load the model.

        Raises:
            UpstreamCodeError: ``f5-tts`` is not installed (the message names the install command).
            WeightsError: a weights file is missing or does not match (fix: ``bench models pull``).
        """
        if self.fake or self._tts is not None:
            return
        try:
            from f5_tts.api import F5TTS as Upstream
        except ImportError as exc:
            raise UpstreamCodeError(
                f"F5-TTS: the package f5-tts is not importable ({exc}). Fix: pip install {F5_PACKAGE} in a GPU "
                "environment with a matching torch + torchaudio (it pulls torchaudio and torchcodec, so it is not "
                "installed with the CPU-only setup)") from exc
        for card in self.weights:
            card.verify()
        device = None if self.options.device == "auto" else self.options.device
        self._tts = Upstream(model=self.options.model, ckpt_file=str(self.weights[0].path()), vocab_file="",
                             ode_method="euler", use_ema=True, vocoder_local_path=str(self.weights[1].path().parent),
                             device=device)

    def _ref_text(self, request: SpeechRequest) -> tuple[str, str]:
        if request.reference_transcript:
            return request.reference_transcript, "reference_transcripts"
        if not self.options.transcribe_missing:
            raise ValueError(f"f5tts: no words for {request.reference_path}: pass the cascade option "
                             "reference_transcripts=FILE.json, or let F5-TTS transcribe it "
                             "(tts.transcribe_missing=true)")
        return "", ASR_SOURCE

    def synthesize(self, request: SpeechRequest, out_wav: Path, seed: int) -> SpeechResult:
        """Clone the reference voice saying ``request.transcript``; write 24 kHz mono float WAV to ``out_wav``."""
        if self.fake:
            details = write_fake_speech(request.reference_path, request.transcript, out_wav)
            return SpeechResult(out_wav, {"text_sent": request.transcript, **details})
        self.prepare()
        ref_text, ref_text_source = self._ref_text(request)
        o = self.options
        with tempfile.TemporaryDirectory(prefix="f5tts-") as tmp:
            reference = write_prompt_wav(request.reference_path, Path(tmp) / "reference.wav")
            wav, rate, _ = self._tts.infer(
                ref_file=str(reference.path), ref_text=ref_text, gen_text=request.transcript, show_info=log.info,
                nfe_step=o.nfe_step, cfg_strength=o.cfg_strength, sway_sampling_coef=o.sway_sampling_coef,
                speed=o.speed, seed=int(seed))
        speech = as_numpy(wav).reshape(-1)
        if speech.size == 0:
            raise RuntimeError(f"F5-TTS generated no speech for pair {request.pair_id}")
        write_wav(out_wav, speech, int(rate))
        return SpeechResult(out_wav, {
            "text_sent": request.transcript, "ref_text": ref_text, "ref_text_source": ref_text_source,
            "reference": reference.details(), "sample_rate": int(rate), "seconds": round(speech.size / int(rate), 4),
            "seed": int(seed), "package": _package_version(),
            "weights": [f"hf:{F5_REPO}@{F5_REVISION}", f"hf:{VOCOS_REPO}@{VOCOS_REVISION}"]})


def _package_version() -> str | None:
    """The installed f5-tts version (None when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("f5-tts")
    except PackageNotFoundError:
        return None
