"""TTS part ``voicecraft``: VoiceCraft 830M TTS-Enhanced zero-shot TTS, run from the user's checkout of
github.com/jasonppy/VoiceCraft (paper Tables 1-2, "VoiceCraft").

VoiceCraft is a codec language model that *continues* a prompt: it encodes the first seconds of the reference
(EnCodec, 16 kHz, 50 codes/s, 4 codebooks) and generates the codes of "<words of that prompt> <new words>"; the
returned ``gen_audio`` holds only the new part. So it needs the reference's words and where in the audio the
prompt ends at a word boundary. Upstream (jasonppy/VoiceCraft at commit a702dfd, 2025-03-15):

- loading: ``VoiceCraft.from_pretrained("pyp1/VoiceCraft_830M_TTSEnhanced")``, ``phn2num = model.args.phn2num``,
  ``AudioTokenizer(signature=encodec_4cb2048_giga.th)``, ``TextTokenizer(backend="espeak")``
  (``tts_demo.py:106-119``, ``inference_tts.ipynb`` cell 4);
- alignment: Montreal Forced Aligner, ``mfa align -v --clean -j 1 --output_format csv <corpus> english_us_arpa
  english_us_arpa <out> --beam 50 --retry_beam 200`` on the clip + a ``.txt`` transcript (``tts_demo.py:134-141``);
  the prompt ends at the first word ending at or after ``cut_off_sec`` (3.6 s) that is followed by a pause of at
  least ``margin`` (0.04 s) within ``cutoff_tolerance`` (1 s), plus 2/3 of the margin, else at the first word
  ending after ``cut_off_sec`` (``tts_demo.py:145-166``);
- text: the transcript's words up to that word (by index; split on whitespace here, on single spaces there), a
  space, the new text (``tts_demo.py:175``);
  ``prompt_end_frame = int(cut_off_sec * sample_rate)`` (``tts_demo.py:181``);
- decoding: ``inference_one_sample(model, Namespace(**config), phn2num, text_tokenizer, audio_tokenizer,
  audio_fn, target_transcript, device, decode_config, prompt_end_frame)`` (``inference_tts_scale.py:43-105``,
  ``tts_demo.py:197-200``) with the notebook's values after the 2025-03-15 change to top-k sampling
  (README "News"; ``inference_tts.ipynb`` cell 6): top_k 40, top_p 1, temperature 1, stop_repetition 3,
  kvcache 1, sample_batch_size 3, silence tokens [1388, 1898, 131]; seeding as ``seed_everything``
  (``tts_demo.py:184-194``);
- the TTS-Enhanced models were trained on utterances <= 16 s: prompt + generation should stay under 16 s (README).

Alignment here: ``prompt="mfa"`` (default) runs the ``mfa`` command exactly as above on the reference clip
(mono 16 kHz 16-bit WAV) and its transcript and applies the same boundary rule (when no word ends after
``cut_off_s``, the prompt is everything up to the last aligned word; recorded). ``prompt="whole"`` skips alignment
and uses the whole clip with its whole transcript as the prompt (good when clips end at a word boundary).
A missing reference transcript is an error naming the cascade option ``reference_transcripts``.

Install (VoiceCraft's code runs in this process)::

    git clone https://github.com/jasonppy/VoiceCraft.git
    conda create -n voicecraft python=3.10 && conda activate voicecraft   # README: 3.9.16; the bench needs >= 3.10
    # README "Environment setup": audiocraft@c5157b5, xformers 0.0.22, torch 2.0.1 / torchaudio 2.0.2,
    # phonemizer 3.2.1 (+ apt espeak-ng), huggingface_hub 0.22.2, montreal-forced-aligner 2.2.17 (conda-forge),
    # then: mfa model download dictionary english_us_arpa && mfa model download acoustic english_us_arpa
    pip install -e /path/to/idlora-bench                                  # base package only, no extras
    bench models pull voicecraft-830m-tts-enhanced voicecraft-encodec
    bench run --method voicecraft+wan2.2 --option tts.checkout=$PWD/VoiceCraft \
        --option reference_transcripts=refs.json ...                      # or VOICECRAFT_ROOT=...

Weights: ``pyp1/VoiceCraft_830M_TTSEnhanced`` (``config.json`` + ``model.safetensors``, the PyTorchModelHubMixin
layout) and ``encodec_4cb2048_giga.th`` of ``pyp1/VoiceCraft``; no revision of either was found in public code, so
both are pinned to ``main``: NOT reproducible until commit hashes replace it. Licences: weights Coqui Public Model
License 1.0.0 (non-commercial, ``LICENSE-MODEL``), code CC BY-NC-SA 4.0 (``LICENSE-CODE``). ``fake=True``: the
reference audio looped (:mod:`baselines.tts.fake_speech`), nothing else needed.
"""

from __future__ import annotations

import csv
import getpass
import os
import random
import shutil
import subprocess
import tempfile
from argparse import Namespace
from dataclasses import dataclass
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

MODEL_REPO = "pyp1/VoiceCraft_830M_TTSEnhanced"
ENCODEC_REPO = "pyp1/VoiceCraft"
REVISION = "main"  # no pinned revision found in public code: not reproducible
VOICECRAFT_LICENCE = "Coqui Public Model License 1.0.0 (non-commercial)"
VOICECRAFT_WEIGHTS: tuple[WeightsFile, ...] = (
    *(WeightsFile(model="voicecraft-830m-tts-enhanced", file=name, source=f"hf:{MODEL_REPO}@{REVISION}:{name}",
                  sha256=None, licence=VOICECRAFT_LICENCE) for name in ("config.json", "model.safetensors")),
    WeightsFile(model="voicecraft-encodec", file="encodec_4cb2048_giga.th",
                source=f"hf:{ENCODEC_REPO}@{REVISION}:encodec_4cb2048_giga.th", sha256=None,
                licence=VOICECRAFT_LICENCE),
)
CHECKOUT = CheckoutSpec(
    system="VoiceCraft", clone="https://github.com/jasonppy/VoiceCraft", env_var="VOICECRAFT_ROOT",
    option="tts.checkout", markers=("models/voicecraft.py", "inference_tts_scale.py", "data/tokenizer.py"),
    install="follow 'Environment setup' of VoiceCraft's README in the environment that runs the bench "
            "(audiocraft, phonemizer + espeak-ng, montreal-forced-aligner)")

CODEC_RATE = 16_000  # Hz, EnCodec input/output (tts_demo.py:32-33)
CODEC_FRAME_RATE = 50  # codes per second
SILENCE_TOKENS = (1388, 1898, 131)
MFA_MODEL = "english_us_arpa"
NOT_WORDS = {"", "<eps>", "sil", "sp"}


class VoiceCraftOptions(MethodOptions):
    """``checkout`` (else ``$VOICECRAFT_ROOT``); ``prompt``: ``mfa`` (forced alignment, cut at a word boundary
    near ``cut_off_s``) or ``whole``; alignment (``mfa_command``, ``cut_off_s``, ``margin_s``,
    ``cutoff_tolerance_s``, ``mfa_beam``, ``mfa_retry_beam``: tts_demo.py's defaults); decoding (the notebook's
    values); ``device`` (``auto``: CUDA when available)."""

    checkout: str | None = None
    prompt: Literal["mfa", "whole"] = "mfa"
    mfa_command: str = "mfa"
    cut_off_s: float = 3.6
    margin_s: float = 0.04
    cutoff_tolerance_s: float = 1.0
    mfa_beam: int = 50
    mfa_retry_beam: int = 200
    top_k: int = 40
    top_p: float = 1.0
    temperature: float = 1.0
    stop_repetition: int = 3
    kvcache: int = 1
    sample_batch_size: int = 3
    device: str = "auto"


@dataclass(frozen=True)
class Word:
    """One aligned word: ``begin`` and ``end`` in seconds, its ``label``."""

    begin: float
    end: float
    label: str


def read_mfa_words(csv_path: Path) -> list[Word]:
    """Words of an MFA ``--output_format csv`` file (columns ``Begin,End,Label,Type,Speaker``; rows of type
    ``words`` only when a ``Type`` column exists; silences dropped), in time order."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    has_header = "begin" in header and "end" in header
    body = rows[1:] if has_header else rows
    col = {name: header.index(name) for name in ("begin", "end", "label", "type") if has_header and name in header}
    words = []
    for row in body:
        if not row:
            continue
        if "type" in col and row[col["type"]].strip().lower() != "words":
            continue
        label = row[col.get("label", 2)].strip() if len(row) > col.get("label", 2) else ""
        if label.lower() in NOT_WORDS:
            continue
        words.append(Word(float(row[col.get("begin", 0)]), float(row[col.get("end", 1)]), label))
    return sorted(words, key=lambda w: w.begin)


def find_cut(words: list[Word], cut_off_s: float, margin_s: float, tolerance_s: float,
             clip_s: float) -> tuple[float, int, str]:
    """``(prompt end in s, index of the last prompt word, how it was chosen)`` by the rule of tts_demo.py:145-166:
    the first word ending in ``[cut_off_s, cut_off_s + tolerance_s)`` followed by a pause >= ``margin_s`` (the clip
    end counts as a pause), ending ``2/3 margin_s`` after it; else the first word ending at or after ``cut_off_s``;
    else (clip shorter than the cut-off) the last word."""
    if not words:
        raise ValueError("the forced alignment has no words")
    first_after = None
    for i, word in enumerate(words):
        if word.end < cut_off_s:
            continue
        if first_after is None:
            first_after = i
        following = words[i + 1].begin if i + 1 < len(words) else clip_s
        if word.end < cut_off_s + tolerance_s and following - word.end >= margin_s:
            return min(word.end + margin_s * 2 / 3, clip_s), i, "pause after word"
    if first_after is not None:
        return words[first_after].end, first_after, "first word after cut-off"
    return min(words[-1].end + margin_s * 2 / 3, clip_s), len(words) - 1, "clip shorter than cut-off: all words"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch as tts_demo.py:184-192 does."""
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


class VoiceCraft(TTSPart):
    """VoiceCraft 830M TTS-Enhanced: continue the reference's first words with the transcript; speech at 16 kHz."""

    name: ClassVar[str] = "voicecraft"
    description: ClassVar[str] = "VoiceCraft 830M TTS-Enhanced prompt continuation (code from a VoiceCraft checkout)"
    licence: ClassVar[str] = f"weights {VOICECRAFT_LICENCE}; code CC BY-NC-SA 4.0"
    options_model: ClassVar[type[MethodOptions]] = VoiceCraftOptions
    weights: ClassVar[tuple[WeightsFile, ...]] = VOICECRAFT_WEIGHTS
    options: VoiceCraftOptions

    def __init__(self, fake: bool = False, **options: Any) -> None:
        super().__init__(fake=fake, **options)
        self._loaded: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        config = super().config()
        config.pop("checkout", None)
        config.pop("mfa_command", None)
        if not self.fake:
            config["weights"] = [f"hf:{MODEL_REPO}@{REVISION}", f"hf:{ENCODEC_REPO}@{REVISION}"]
            config["code"] = code_provenance(CHECKOUT, self.options.checkout)
            config["decode"] = self._decode_config()
        return config

    def _decode_config(self) -> dict[str, Any]:
        o = self.options
        return {"top_k": o.top_k, "top_p": o.top_p, "temperature": o.temperature, "stop_repetition": o.stop_repetition,
                "kvcache": o.kvcache, "codec_audio_sr": CODEC_RATE, "codec_sr": CODEC_FRAME_RATE,
                "silence_tokens": list(SILENCE_TOKENS), "sample_batch_size": o.sample_batch_size}

    def _device(self) -> str:
        if self.options.device != "auto":
            return self.options.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def prepare(self) -> None:
        """Check checkout, aligner and weights; import VoiceCraft from the checkout; load model and tokenizers.

        Raises:
            UpstreamCodeError: no checkout, a missing package, or (``prompt=mfa``) no ``mfa`` command.
            WeightsError: a weights file is missing or does not match (fix: ``bench models pull``).
        """
        if self.fake or self._loaded is not None:
            return
        root = resolve_checkout(CHECKOUT, self.options.checkout)
        if self.options.prompt == "mfa" and shutil.which(self.options.mfa_command) is None:
            raise UpstreamCodeError(
                f"VoiceCraft: the forced aligner {self.options.mfa_command!r} is not on PATH (prompt=mfa). Fix: conda "
                "install -c conda-forge montreal-forced-aligner=2.2.17 && mfa model download dictionary "
                "english_us_arpa && mfa model download acoustic english_us_arpa; or pass "
                "--option tts.mfa_command=PATH, or --option tts.prompt=whole")
        for card in self.weights:
            card.verify()
        os.environ.setdefault("USER", getpass.getuser())  # tts_demo.py:18: audiocraft reads $USER
        voicecraft = import_from_checkout(CHECKOUT, root, "models.voicecraft")
        tokenizer = import_from_checkout(CHECKOUT, root, "data.tokenizer")
        inference = import_from_checkout(CHECKOUT, root, "inference_tts_scale")
        device = self._device()
        model = voicecraft.VoiceCraft.from_pretrained(str(self.weights[0].path().parent))
        model.to(device)
        self._loaded = {
            "model": model, "config": vars(model.args), "phn2num": model.args.phn2num, "device": device,
            "audio_tokenizer": tokenizer.AudioTokenizer(signature=str(self.weights[2].path()), device=device),
            "text_tokenizer": tokenizer.TextTokenizer(backend="espeak"), "infer": inference.inference_one_sample,
        }

    def _align(self, prompt_wav: Path, transcript: str, work: Path) -> list[Word]:
        """Run MFA on the prompt WAV and its transcript (tts_demo.py:134-141); the aligned words."""
        corpus, out = work / "corpus", work / "mfa_alignments"
        corpus.mkdir()
        shutil.copyfile(prompt_wav, corpus / "reference.wav")
        (corpus / "reference.txt").write_text(transcript)
        o = self.options
        command = [o.mfa_command, "align", "-v", "--clean", "-j", "1", "--output_format", "csv", str(corpus),
                   MFA_MODEL, MFA_MODEL, str(out), "--beam", str(o.mfa_beam), "--retry_beam", str(o.mfa_retry_beam)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        alignment = out / "reference.csv"
        if done.returncode != 0 or not alignment.is_file():
            raise RuntimeError(f"MFA alignment failed (exit {done.returncode}; a larger tts.mfa_beam / "
                               f"tts.mfa_retry_beam often helps): {(done.stderr or done.stdout)[-1500:]}")
        return read_mfa_words(alignment)

    def _prompt(self, request: SpeechRequest, prompt_wav: Path, clip_s: float, work: Path) -> dict[str, Any]:
        """Where the prompt ends and which of the reference's words it holds."""
        words = str(request.reference_transcript).split()
        if self.options.prompt == "whole":
            return {"cut_s": clip_s, "words": words, "rule": "whole clip"}
        aligned = self._align(prompt_wav, str(request.reference_transcript), work)
        o = self.options
        cut_s, index, rule = find_cut(aligned, o.cut_off_s, o.margin_s, o.cutoff_tolerance_s, clip_s)
        return {"cut_s": cut_s, "words": words[: index + 1], "rule": rule, "aligned_words": len(aligned)}

    def synthesize(self, request: SpeechRequest, out_wav: Path, seed: int) -> SpeechResult:
        """Continue the reference's first words with ``request.transcript``; write 16 kHz mono WAV to ``out_wav``."""
        if self.fake:
            details = write_fake_speech(request.reference_path, request.transcript, out_wav)
            return SpeechResult(out_wav, {"text_sent": request.transcript, **details})
        if not request.reference_transcript:
            raise ValueError(f"voicecraft needs the words spoken in {request.reference_path}: pass the cascade option "
                             "reference_transcripts=FILE.json ({reference clip path as in pairs.jsonl: words})")
        self.prepare()
        assert self._loaded is not None
        loaded = self._loaded
        with tempfile.TemporaryDirectory(prefix="voicecraft-") as tmp:
            work = Path(tmp)
            prompt_audio = write_prompt_wav(request.reference_path, work / "reference.wav", rate=CODEC_RATE)
            prompt = self._prompt(request, prompt_audio.path, prompt_audio.seconds, work)
            target_text = " ".join(prompt["words"]) + " " + request.transcript
            prompt_end_frame = int(prompt["cut_s"] * CODEC_RATE)
            seed_everything(int(seed))
            _, generated = loaded["infer"](
                loaded["model"], Namespace(**loaded["config"]), loaded["phn2num"], loaded["text_tokenizer"],
                loaded["audio_tokenizer"], str(prompt_audio.path), target_text, loaded["device"],
                self._decode_config(), prompt_end_frame)
        speech = as_numpy(generated[0]).reshape(-1)
        if speech.size == 0:
            raise RuntimeError(f"VoiceCraft generated no speech for pair {request.pair_id}")
        write_wav(out_wav, speech, CODEC_RATE)
        return SpeechResult(out_wav, {
            "text_sent": target_text, "prompt_rule": prompt["rule"], "prompt_end_s": round(prompt["cut_s"], 4),
            "prompt_end_frame": prompt_end_frame, "prompt_words": len(prompt["words"]),
            "reference": prompt_audio.details(), "sample_rate": CODEC_RATE,
            "seconds": round(speech.size / CODEC_RATE, 4),
            "seed": int(seed), "weights": [f"hf:{MODEL_REPO}@{REVISION}", f"hf:{ENCODEC_REPO}@{REVISION}"],
        })
