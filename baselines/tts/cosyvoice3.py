"""TTS part ``cosyvoice3``: Fun-CosyVoice 3.0 (``Fun-CosyVoice3-0.5B-2512``) zero-shot voice cloning, run from the
user's checkout of github.com/FunAudioLLM/CosyVoice (paper Tables 1-2, "CosyVoice 3.0").

Upstream facts (FunAudioLLM/CosyVoice at commit ace7c47, 2026-03-16):

- API: ``AutoModel(model_dir=...)`` picks ``CosyVoice3`` when the folder has ``cosyvoice3.yaml``
  (``cosyvoice/cli/cosyvoice.py:228-238``); it downloads from ModelScope when the folder does not exist, so this
  part only ever passes the verified model-store folder.
- CosyVoice 3 prompts carry a system prompt: zero-shot cloning is
  ``inference_zero_shot(tts_text, "You are a helpful assistant.<|endofprompt|>" + prompt_text, prompt_wav,
  stream=False)`` and cross-lingual cloning (no transcript of the prompt) puts the prefix before the text to say,
  ``inference_cross_lingual("You are a helpful assistant.<|endofprompt|>" + tts_text, prompt_wav, stream=False)``
  (``example.py:71-83``); both yield chunks ``{"tts_speech": (1, N) tensor}`` at ``model.sample_rate`` (24 kHz for
  CosyVoice 3, ``examples/libritts/cosyvoice3/conf/cosyvoice3.yaml:8``), one per text segment.
- ``prompt_wav`` is a file path since commit 622a3a1 (2025-12-08, "use wav file rather than tensor"); the frontend
  reads it itself at 16 kHz (speech tokens, speaker embedding) and 24 kHz (prompt mel) with torchaudio's resampler
  (``cosyvoice/cli/frontend.py:95-125``), refuses files below 16 kHz (``cosyvoice/utils/file_utils.py:44-50``) and
  prompts longer than 30 s (``frontend.py:97``). Older checkouts take a 16 kHz tensor ``prompt_speech_16k``; they
  are refused here with a message to update.
- Seeding: the web demo calls ``cosyvoice.utils.common.set_all_random_seed(seed)`` before each inference
  (``webui.py:98-110``); so does this part.

What this part sends: the reference clip's audio, mono, at its own rate (raised to 16 kHz if lower) as a 16-bit
WAV (the README example's prompt is a 24 kHz file; a 16 kHz file would band-limit the 24 kHz prompt mel), and
the pair's transcript as ``tts_text`` (the speaking-style text is not used: the zero-shot mode has no style input).
``mode="auto"`` (default) uses zero-shot cloning when the cascade's ``reference_transcripts`` give the reference's
words and cross-lingual cloning otherwise; the mode used is in the details.

Install (CosyVoice's code runs in this process, so the bench runs in CosyVoice's environment)::

    git clone --recursive https://github.com/FunAudioLLM/CosyVoice.git    # third_party/Matcha-TTS is a submodule
    conda create -n cosyvoice -y python=3.10 && conda activate cosyvoice
    pip install -r CosyVoice/requirements.txt                           # torch/torchaudio 2.3.1 (CUDA 12.1) ...
    pip install -e /path/to/idlora-bench                                 # base package only, no extras
    bench models pull fun-cosyvoice3-0.5b-2512
    bench run --method cosyvoice3+wan2.2 --option tts.checkout=$PWD/CosyVoice ...   # or COSYVOICE_ROOT=...

The text normaliser ``wetext`` fetches its FST files from ModelScope on first use (an upstream behaviour).
Weights: ``FunAudioLLM/Fun-CosyVoice3-0.5B-2512`` at revision 29e01c4e (the revision other projects pin; the files
an inference loads). Licence: Apache-2.0 (code and weights). ``fake=True``: the reference audio looped
(:mod:`baselines.tts.fake_speech`), no checkout, weights or packages needed.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from baselines.audio_io import write_wav
from baselines.checkout import (
    CheckoutSpec,
    UpstreamCodeError,
    as_numpy,
    code_provenance,
    import_from_checkout,
    resolve_checkout,
    write_prompt_wav,
)
from baselines.parts import SpeechRequest, SpeechResult, TTSPart
from baselines.tts.fake_speech import write_fake_speech
from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.methods.base import MethodOptions

COSYVOICE3_REPO = "FunAudioLLM/Fun-CosyVoice3-0.5B-2512"
COSYVOICE3_REVISION = "29e01c4e8d000f4bcd70751be16fa94bf3d85a18"
COSYVOICE3_MODEL = "fun-cosyvoice3-0.5b-2512"
COSYVOICE3_FILES: tuple[str, ...] = (
    "cosyvoice3.yaml", "llm.pt", "flow.pt", "hift.pt", "campplus.onnx", "speech_tokenizer_v3.onnx",
    "CosyVoice-BlankEN/config.json", "CosyVoice-BlankEN/generation_config.json", "CosyVoice-BlankEN/merges.txt",
    "CosyVoice-BlankEN/model.safetensors", "CosyVoice-BlankEN/tokenizer_config.json", "CosyVoice-BlankEN/vocab.json",
)
COSYVOICE3_WEIGHTS: tuple[WeightsFile, ...] = tuple(
    WeightsFile(model=COSYVOICE3_MODEL, file=name, source=f"hf:{COSYVOICE3_REPO}@{COSYVOICE3_REVISION}:{name}",
                sha256=None, licence="Apache-2.0")
    for name in COSYVOICE3_FILES)

CHECKOUT = CheckoutSpec(
    system="CosyVoice", clone="https://github.com/FunAudioLLM/CosyVoice", env_var="COSYVOICE_ROOT",
    option="tts.checkout", markers=("cosyvoice/cli/cosyvoice.py", "third_party/Matcha-TTS"),
    install="pip install -r <checkout>/requirements.txt in the environment that runs the bench "
            "(git submodule update --init --recursive for third_party/Matcha-TTS)",
    clone_flags="--recursive")

END_OF_PROMPT = "<|endofprompt|>"
MAX_PROMPT_SECONDS = 30.0  # cosyvoice/cli/frontend.py:97


class CosyVoice3Options(MethodOptions):
    """``checkout`` (else ``$COSYVOICE_ROOT``); ``mode``: ``auto`` (zero-shot with a reference transcript,
    else cross-lingual), ``zero_shot`` (a missing transcript is an error) or ``cross_lingual``; ``system_prompt``
    (before ``<|endofprompt|>``); ``speed``; ``text_frontend`` (upstream text normalisation); ``fp16`` (CUDA only)."""

    checkout: str | None = None
    mode: Literal["auto", "zero_shot", "cross_lingual"] = "auto"
    system_prompt: str = "You are a helpful assistant."
    speed: float = 1.0
    text_frontend: bool = True
    fp16: bool = False


class CosyVoice3(TTSPart):
    """Fun-CosyVoice 3.0 (0.5B, 2512) zero-shot / cross-lingual voice cloning; speech at 24 kHz."""

    name: ClassVar[str] = "cosyvoice3"
    description: ClassVar[str] = "Fun-CosyVoice 3.0 0.5B zero-shot voice cloning (code from a CosyVoice checkout)"
    licence: ClassVar[str] = "Apache-2.0"
    options_model: ClassVar[type[MethodOptions]] = CosyVoice3Options
    weights: ClassVar[tuple[WeightsFile, ...]] = COSYVOICE3_WEIGHTS
    options: CosyVoice3Options

    def __init__(self, fake: bool = False, **options: Any) -> None:
        super().__init__(fake=fake, **options)
        self._model: Any = None
        self._seed_fn: Any = None

    def config(self) -> dict[str, Any]:
        config = super().config()
        config.pop("checkout", None)  # where the clone lives does not change the speech; its commit does
        if not self.fake:
            config["weights"] = f"hf:{COSYVOICE3_REPO}@{COSYVOICE3_REVISION}"
            config["code"] = code_provenance(CHECKOUT, self.options.checkout)
        return config

    def prepare(self) -> None:
        """Check checkout and weights, import CosyVoice from the checkout and load the model (not in fake mode).

        Raises:
            UpstreamCodeError: no checkout, a package it imports is missing, or a checkout older than 622a3a1.
            WeightsError: a weights file is missing or does not match (fix: ``bench models pull``).
        """
        if self.fake or self._model is not None:
            return
        root = resolve_checkout(CHECKOUT, self.options.checkout)
        for card in self.weights:
            card.verify()
        cli = import_from_checkout(CHECKOUT, root, "cosyvoice.cli.cosyvoice",
                                   extra_paths=(root / "third_party" / "Matcha-TTS",))
        common = import_from_checkout(CHECKOUT, root, "cosyvoice.utils.common")
        model = cli.AutoModel(model_dir=str(self.weights[0].path().parent), fp16=self.options.fp16)
        parameters = inspect.signature(model.inference_zero_shot).parameters
        if "prompt_wav" not in parameters:
            raise UpstreamCodeError(
                f"CosyVoice: the checkout {root} predates commit 622a3a1 (2025-12-08): its inference_zero_shot "
                f"takes {list(parameters)[:3]}, not a prompt_wav path. Fix: git -C {root} pull")
        self._model, self._seed_fn = model, common.set_all_random_seed

    def _mode(self, request: SpeechRequest) -> str:
        mode = self.options.mode
        if mode == "auto":
            return "zero_shot" if request.reference_transcript else "cross_lingual"
        if mode == "zero_shot" and not request.reference_transcript:
            raise ValueError(f"cosyvoice3 mode zero_shot needs the words of {request.reference_path}: pass the "
                             "cascade option reference_transcripts=FILE.json ({clip path: words}), or use "
                             "tts.mode=cross_lingual / auto")
        return mode

    def synthesize(self, request: SpeechRequest, out_wav: Path, seed: int) -> SpeechResult:
        """Clone the reference voice saying ``request.transcript``; write 24 kHz mono float WAV to ``out_wav``."""
        if self.fake:
            details = write_fake_speech(request.reference_path, request.transcript, out_wav)
            return SpeechResult(out_wav, {"text_sent": request.transcript, **details})
        self.prepare()
        mode = self._mode(request)
        prefix = f"{self.options.system_prompt}{END_OF_PROMPT}"
        o = self.options
        with tempfile.TemporaryDirectory(prefix="cosyvoice3-") as tmp:
            prompt = write_prompt_wav(request.reference_path, Path(tmp) / "prompt.wav",
                                      max_seconds=None if mode == "zero_shot" else MAX_PROMPT_SECONDS)
            if prompt.seconds > MAX_PROMPT_SECONDS:
                raise ValueError(f"{request.reference_path}: {prompt.seconds:.1f} s of reference; CosyVoice takes at "
                                 f"most {MAX_PROMPT_SECONDS:.0f} s and zero-shot mode cannot cut it (its transcript "
                                 "would no longer match)")
            self._seed_fn(int(seed))
            if mode == "zero_shot":
                prompt_text = f"{prefix}{request.reference_transcript}"
                text_sent = request.transcript
                chunks = self._model.inference_zero_shot(text_sent, prompt_text, str(prompt.path), stream=False,
                                                         speed=o.speed, text_frontend=o.text_frontend)
            else:
                prompt_text = None
                text_sent = f"{prefix}{request.transcript}"
                chunks = self._model.inference_cross_lingual(text_sent, str(prompt.path), stream=False,
                                                             speed=o.speed, text_frontend=o.text_frontend)
            pieces = [as_numpy(chunk["tts_speech"]).reshape(-1) for chunk in chunks]
        if not pieces:
            raise RuntimeError(f"CosyVoice returned no speech for pair {request.pair_id}")
        speech = np.concatenate(pieces)
        rate = int(self._model.sample_rate)
        write_wav(out_wav, speech, rate)
        return SpeechResult(out_wav, {
            "mode": mode, "text_sent": text_sent, "prompt_text": prompt_text, "prompt_wav": prompt.details(),
            "reference_transcript_given": request.reference_transcript is not None, "chunks": len(pieces),
            "sample_rate": rate, "seconds": round(speech.size / rate, 4), "seed": int(seed),
            "weights": f"hf:{COSYVOICE3_REPO}@{COSYVOICE3_REVISION}"})
