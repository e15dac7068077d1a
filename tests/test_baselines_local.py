"""Local cascade parts: the voice-cloning TTS parts ``cosyvoice3``, ``voicecraft``, ``f5tts`` and the video part
``wan2.2``.

Each part is checked three ways: fake mode runs the real plumbing (valid WAV / mp4 whose audio is the speech);
a missing checkout, package or weights file stops ``prepare`` with a message naming the fix; and the real mode,
run against a fake checkout (a tiny package with upstream's module, class and function names and signatures, that
records its arguments) or a fake ``f5_tts`` module, calls upstream as its README/example does. The last test runs
the cascade ``cosyvoice3+wan2.2`` with ``model=tiny-random`` through the runner on the demo split.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from baselines.audio_io import read_audio, write_wav
from baselines.checkout import UpstreamCodeError, checkout_commit
from baselines.parts import TTS_PARTS, VIDEO_PARTS, SpeechRequest
from baselines.tts.fake_speech import FAKE_RATE, fake_speech_duration_s
from baselines.video.still import first_frame
from idlora_bench.checkpoints.weights import WeightsFile, record_checksum
from idlora_bench.core.errors import BenchError, WeightsError
from idlora_bench.core.io import file_sha256
from idlora_bench.data.media import decode
from idlora_bench.data.splits import ResolvedPair, load_split

TTS_NAMES = ("cosyvoice3", "voicecraft", "f5tts")


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def _isolated_imports(tmp_path: Path) -> Any:
    """Fake checkouts add modules named like upstream's (``cosyvoice``, ``models``, ``data`` ...): drop every module
    loaded from this test's folder and restore ``sys.path`` afterwards."""
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        # read the module's own dict: getattr would run a lazy module's __getattr__ (transformers imports
        # submodules, and their optional dependencies, on attribute access)
        attributes = getattr(module, "__dict__", {})
        origin = attributes.get("__file__") or next(iter(attributes.get("__path__") or []), None)
        if origin and Path(origin).resolve().is_relative_to(tmp_path.resolve()):
            del sys.modules[name]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model store."""
    root = tmp_path / "models"
    monkeypatch.setenv("IDLORA_BENCH_MODELS", str(root))
    for variable in ("COSYVOICE_ROOT", "VOICECRAFT_ROOT", "WAN22_ROOT", "WAN22_PYTHON"):
        monkeypatch.delenv(variable, raising=False)
    return root


def install_weights(cards: tuple[WeightsFile, ...], special: dict[str, str] | None = None) -> None:
    """Put a small stand-in file for every card into the store and record its checksum (as ``bench models pull``
    does for revision-pinned files); ``special`` gives some files their content (e.g. a yaml the fake reads)."""
    for card in cards:
        path = card.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((special or {}).get(card.file, f"stand-in for {card.name}\n"))
        record_checksum(card.model, card.file, file_sha256(path))


@pytest.fixture(scope="module")
def item() -> ResolvedPair:
    split = load_split("demo")
    return split.resolve(split.pairs[0])


def request_for(item: ResolvedPair, reference_transcript: str | None = None) -> SpeechRequest:
    return SpeechRequest.from_item(item, reference_transcript)


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def fake_git(root: Path, commit: str) -> None:
    """A ``.git`` whose HEAD names a branch whose ref is ``commit``."""
    write_tree(root, {".git/HEAD": "ref: refs/heads/main\n", ".git/refs/heads/main": f"{commit}\n"})


def dominant_hz(audio: np.ndarray, rate: int) -> float:
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    return float(np.fft.rfftfreq(mono.size, 1 / rate)[int(np.argmax(spectrum))])


# ------------------------------------------------------------------------------ fake mode: the real plumbing
@pytest.mark.parametrize("name", TTS_NAMES)
def test_fake_tts_parts_write_the_reference_voice_for_the_transcripts_length(name: str, item: ResolvedPair,
                                                                           tmp_path: Path, store: Path) -> None:
    part = TTS_PARTS.get(name)(fake=True)
    part.prepare()  # no checkout, package or weights needed
    result = part.synthesize(request_for(item), tmp_path / "speech.wav", seed=0)
    audio, rate = read_audio(result.wav_path)
    assert rate == FAKE_RATE and audio.shape[0] == 1
    assert audio.shape[1] / rate == pytest.approx(fake_speech_duration_s(item.pair.transcript), abs=1e-3)
    assert result.details["text_sent"] == item.pair.transcript and part.config()["fake"] is True


def test_fake_wan_holds_the_first_frame_for_the_speech(item: ResolvedPair, tmp_path: Path, store: Path) -> None:
    rate = 24_000
    speech = (0.3 * np.sin(2 * np.pi * 300 * np.arange(int(1.3 * rate)) / rate)).astype(np.float32)
    wav = write_wav(tmp_path / "speech.wav", speech, rate)
    part = VIDEO_PARTS.get("wan2.2")(fake=True)
    part.prepare()
    details = part.animate(item, wav, tmp_path / "out.mp4", seed=0)
    media = decode(tmp_path / "out.mp4")
    assert abs(media.audio_duration_s - 1.3) < 0.05 and media.video_duration_s >= 1.3 - 0.04
    assert abs(dominant_hz(media.require_audio(), int(media.sample_rate or 0)) - 300) < 10
    assert details["fake"] == "first frame held still"


# ------------------------------------------------------------------------------ missing code or weights
def test_missing_checkouts_package_and_weights_name_the_fix(item: ResolvedPair, tmp_path: Path, store: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UpstreamCodeError, match="COSYVOICE_ROOT.*tts.checkout|tts.checkout.*COSYVOICE_ROOT"):
        TTS_PARTS.get("cosyvoice3")().prepare()
    with pytest.raises(UpstreamCodeError, match="VOICECRAFT_ROOT"):
        TTS_PARTS.get("voicecraft")().prepare()
    with pytest.raises(UpstreamCodeError, match="WAN22_ROOT"):
        VIDEO_PARTS.get("wan2.2")().prepare()
    with pytest.raises(UpstreamCodeError, match="not a checkout of https://github.com/FunAudioLLM/CosyVoice"):
        TTS_PARTS.get("cosyvoice3")(checkout=str(tmp_path)).prepare()
    monkeypatch.setitem(sys.modules, "f5_tts", None)  # not importable
    with pytest.raises(UpstreamCodeError, match=r"pip install f5-tts==1\.1\.22"):
        TTS_PARTS.get("f5tts")().prepare()
    cosy = write_tree(tmp_path / "CosyVoice", {"cosyvoice/cli/cosyvoice.py": "", "third_party/Matcha-TTS/x": ""})
    with pytest.raises(WeightsError, match="bench models pull fun-cosyvoice3-0.5b-2512"):
        TTS_PARTS.get("cosyvoice3")(checkout=str(cosy)).prepare()
    wan = write_tree(tmp_path / "Wan2.2", {"generate.py": "# s2v-14B --audio --start_from_ref\n",
                                          "wan/speech2video.py": ""})
    with pytest.raises(WeightsError, match="bench models pull wan2.2-s2v-14b"):
        VIDEO_PARTS.get("wan2.2")(checkout=str(wan)).prepare()
    old = write_tree(tmp_path / "Wan2.2-old", {"generate.py": "# s2v-14B --audio\n", "wan/speech2video.py": ""})
    with pytest.raises(UpstreamCodeError, match="lacks --start_from_ref"):
        VIDEO_PARTS.get("wan2.2")(checkout=str(old)).prepare()
    with pytest.raises(ValueError, match="reference_transcripts"):  # VoiceCraft cannot run without the words
        TTS_PARTS.get("voicecraft")().synthesize(request_for(item), tmp_path / "x.wav", seed=0)
    assert issubclass(UpstreamCodeError, BenchError)


# ------------------------------------------------------------------------------ CosyVoice 3 from a checkout
COSYVOICE_FILES = {
    "cosyvoice/__init__.py": "",
    "cosyvoice/cli/__init__.py": "",
    "cosyvoice/cli/cosyvoice.py": """
        import os
        import torch
        from scipy.io import wavfile
        import matcha  # third_party/Matcha-TTS must be on sys.path, as example.py:2 puts it

        CALLS = []

        class CosyVoice3:
            def __init__(self, model_dir, load_trt=False, load_vllm=False, fp16=False, trt_concurrent=1):
                if not os.path.exists(os.path.join(model_dir, 'cosyvoice3.yaml')):
                    raise ValueError('cosyvoice3.yaml not found')
                CALLS.append({'call': 'init', 'model_dir': model_dir, 'fp16': fp16})
                self.sample_rate = 24000

            def _speech(self, call, **kwargs):
                rate, wav = wavfile.read(kwargs['prompt_wav'])
                CALLS.append({'call': call, **kwargs, 'prompt_rate': rate, 'prompt_seconds': len(wav) / rate,
                              'prompt_ndim': wav.ndim, 'prompt_dtype': str(wav.dtype)})
                t = torch.arange(12000) / 24000
                for _ in range(2):  # one chunk per text segment
                    yield {'tts_speech': (0.3 * torch.sin(2 * torch.pi * 220 * t)).unsqueeze(0)}

            def inference_zero_shot(self, tts_text, prompt_text, prompt_wav, zero_shot_spk_id='', stream=False,
                                    speed=1.0, text_frontend=True):
                yield from self._speech('inference_zero_shot', tts_text=tts_text, prompt_text=prompt_text,
                                        prompt_wav=prompt_wav, stream=stream, speed=speed,
                                        text_frontend=text_frontend)

            def inference_cross_lingual(self, tts_text, prompt_wav, zero_shot_spk_id='', stream=False, speed=1.0,
                                        text_frontend=True):
                yield from self._speech('inference_cross_lingual', tts_text=tts_text, prompt_wav=prompt_wav,
                                        stream=stream, speed=speed, text_frontend=text_frontend)

        def AutoModel(**kwargs):
            return CosyVoice3(**kwargs)
    """,
    "cosyvoice/utils/__init__.py": "",
    "cosyvoice/utils/common.py": """
        SEEDS = []

        def set_all_random_seed(seed):
            SEEDS.append(seed)
    """,
    "third_party/Matcha-TTS/matcha/__init__.py": "",
}


def test_cosyvoice3_calls_upstream_as_its_example(item: ResolvedPair, tmp_path: Path, store: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "CosyVoice", COSYVOICE_FILES)
    fake_git(root, "a" * 40)
    install_weights(TTS_PARTS.get("cosyvoice3").weights)
    monkeypatch.setenv("COSYVOICE_ROOT", str(root))
    part = TTS_PARTS.get("cosyvoice3")()
    assert part.config()["code"]["commit"] == "a" * 40 and "checkout" not in part.config()
    zero = part.synthesize(request_for(item, "These are the reference words."), tmp_path / "zero.wav", seed=7)
    cross = part.synthesize(request_for(item), tmp_path / "cross.wav", seed=8)

    cli = sys.modules["cosyvoice.cli.cosyvoice"]
    assert Path(cli.__file__).is_relative_to(root)
    init, zero_call, cross_call = cli.CALLS
    assert init == {"call": "init", "model_dir": str(store / "fun-cosyvoice3-0.5b-2512"), "fp16": False}
    assert zero_call["tts_text"] == item.pair.transcript
    assert zero_call["prompt_text"] == "You are a helpful assistant.<|endofprompt|>These are the reference words."
    assert cross_call["tts_text"] == f"You are a helpful assistant.<|endofprompt|>{item.pair.transcript}"
    for call in (zero_call, cross_call):  # the reference's audio: mono 16-bit WAV at its own rate (48 kHz here)
        assert call["stream"] is False and call["speed"] == 1.0 and call["text_frontend"] is True
        assert call["prompt_rate"] == 48_000 and call["prompt_ndim"] == 1 and call["prompt_dtype"] == "int16"
        assert call["prompt_seconds"] == pytest.approx(item.pair.reference.duration_s, abs=0.05)
    assert sys.modules["cosyvoice.utils.common"].SEEDS == [7, 8]
    assert (zero.details["mode"], cross.details["mode"]) == ("zero_shot", "cross_lingual")
    audio, rate = read_audio(zero.wav_path)
    assert rate == 24_000 and audio.shape == (1, 24_000)  # the two chunks, concatenated
    assert zero.details["text_sent"] == item.pair.transcript and zero.details["chunks"] == 2
    with pytest.raises(ValueError, match="reference_transcripts"):
        TTS_PARTS.get("cosyvoice3")(mode="zero_shot").synthesize(request_for(item), tmp_path / "x.wav", seed=0)


def test_cosyvoice3_refuses_a_checkout_that_takes_tensors(tmp_path: Path, store: Path) -> None:
    files = dict(COSYVOICE_FILES)
    files["cosyvoice/cli/cosyvoice.py"] = """
        class CosyVoice3:
            sample_rate = 24000
            def __init__(self, model_dir, load_trt=False, load_vllm=False, fp16=False, trt_concurrent=1):
                pass
            def inference_zero_shot(self, tts_text, prompt_text, prompt_speech_16k, zero_shot_spk_id='',
                                    stream=False, speed=1.0, text_frontend=True):
                yield {}

        def AutoModel(**kwargs):
            return CosyVoice3(**kwargs)
    """
    root = write_tree(tmp_path / "CosyVoice-old", files)
    install_weights(TTS_PARTS.get("cosyvoice3").weights)
    with pytest.raises(UpstreamCodeError, match="622a3a1"):
        TTS_PARTS.get("cosyvoice3")(checkout=str(root)).prepare()


def test_a_package_missing_from_the_environment_is_named(tmp_path: Path, store: Path) -> None:
    files = dict(COSYVOICE_FILES)
    files["cosyvoice/cli/cosyvoice.py"] = "import hyperpyyaml_not_installed_here\n"
    root = write_tree(tmp_path / "CosyVoice-deps", files)
    install_weights(TTS_PARTS.get("cosyvoice3").weights)
    with pytest.raises(UpstreamCodeError,
                       match="'hyperpyyaml_not_installed_here', which is not installed.*requirements"):
        TTS_PARTS.get("cosyvoice3")(checkout=str(root)).prepare()
    assert checkout_commit(root) is None  # not a git checkout


# ------------------------------------------------------------------------------ VoiceCraft from a checkout
VOICECRAFT_FILES = {
    "models/__init__.py": "",
    "models/voicecraft.py": """
        import os
        from argparse import Namespace

        CALLS = []

        class VoiceCraft:
            def __init__(self, args=None, config=None):
                self.args = args

            @classmethod
            def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
                assert os.path.isfile(os.path.join(pretrained_model_name_or_path, 'model.safetensors'))
                CALLS.append({'call': 'from_pretrained', 'path': pretrained_model_name_or_path})
                return cls(Namespace(phn2num={'a': 1}, n_codebooks=4))

            def to(self, device):
                CALLS.append({'call': 'to', 'device': str(device)})
                return self
    """,
    "data/__init__.py": "",
    "data/tokenizer.py": """
        CALLS = []

        class AudioTokenizer:
            def __init__(self, device=None, signature=None):
                CALLS.append({'call': 'AudioTokenizer', 'device': str(device), 'signature': signature})

        class TextTokenizer:
            def __init__(self, language='en-us', backend='espeak', **kwargs):
                CALLS.append({'call': 'TextTokenizer', 'backend': backend})
    """,
    "inference_tts_scale.py": """
        import torch
        from scipy.io import wavfile

        CALLS = []

        def inference_one_sample(model, model_args, phn2num, text_tokenizer, audio_tokenizer, audio_fn, target_text,
                                 device, decode_config, prompt_end_frame):
            rate, wav = wavfile.read(audio_fn)
            CALLS.append({'target_text': target_text, 'decode_config': decode_config,
                          'prompt_end_frame': prompt_end_frame, 'rate': rate, 'seconds': len(wav) / rate,
                          'device': device, 'phn2num_matches': model_args.phn2num == phn2num})
            t = torch.arange(8000) / 16000
            generated = (0.2 * torch.sin(2 * torch.pi * 180 * t)).reshape(1, 1, -1)
            return generated, generated
    """,
}

FAKE_MFA = """#!{python}
# Stand-in for Montreal Forced Aligner: words evenly spread over the clip (0.4 s each, 0.05 s apart), plus phone
# rows, in MFA's csv layout; records its argv.
import json, os, sys
args = sys.argv[1:]
json.dump(args, open(os.environ['FAKE_MFA_RECORD'], 'w'))
corpus, out = args[args.index('csv') + 1], args[args.index('csv') + 4]
words = open(os.path.join(corpus, 'reference.txt')).read().split()
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, 'reference.csv'), 'w') as handle:
    handle.write('Begin,End,Label,Type,Speaker\\n')
    for i, word in enumerate(words):
        begin = 0.1 + 0.45 * i
        handle.write(f'{{begin:.3f}},{{begin + 0.4:.3f}},{{word.lower()}},words,reference\\n')
    handle.write('0.100,0.200,W,phones,reference\\n')
"""


def test_voicecraft_aligns_cuts_at_a_word_boundary_and_calls_inference_one_sample(
        item: ResolvedPair, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "VoiceCraft", VOICECRAFT_FILES)
    mfa = tmp_path / "bin" / "mfa"
    mfa.parent.mkdir()
    mfa.write_text(FAKE_MFA.format(python=sys.executable))
    mfa.chmod(mfa.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("FAKE_MFA_RECORD", str(tmp_path / "mfa.json"))
    install_weights(TTS_PARTS.get("voicecraft").weights)
    words = "one two three four five six seven eight nine ten"
    part = TTS_PARTS.get("voicecraft")(checkout=str(root), mfa_command=str(mfa), device="cpu")
    result = part.synthesize(request_for(item, words), tmp_path / "speech.wav", seed=3)

    argv = json.loads((tmp_path / "mfa.json").read_text())  # tts_demo.py:140-141
    assert argv[:7] == ["align", "-v", "--clean", "-j", "1", "--output_format", "csv"]
    assert argv[8:10] == ["english_us_arpa", "english_us_arpa"] and argv[-4:] == ["--beam", "50", "--retry_beam", "200"]
    # word 8 ("eight") ends at 3.65 s >= 3.6 s and a 0.05 s pause follows: the prompt ends 2/3 of the margin later
    (call,) = sys.modules["inference_tts_scale"].CALLS
    assert call["target_text"] == f"one two three four five six seven eight {item.pair.transcript}"
    assert result.details["prompt_end_s"] == pytest.approx(3.65 + 0.04 * 2 / 3, abs=1e-3)
    assert call["prompt_end_frame"] == result.details["prompt_end_frame"]
    assert abs(call["prompt_end_frame"] - (3.65 + 0.04 * 2 / 3) * 16_000) <= 1  # int(cut * rate), tts_demo.py:181
    assert call["rate"] == 16_000 and call["device"] == "cpu" and call["phn2num_matches"]
    assert call["decode_config"] == {"top_k": 40, "top_p": 1.0, "temperature": 1.0, "stop_repetition": 3,
                                     "kvcache": 1, "codec_audio_sr": 16000, "codec_sr": 50,
                                     "silence_tokens": [1388, 1898, 131], "sample_batch_size": 3}
    model_calls = sys.modules["models.voicecraft"].CALLS
    assert model_calls == [{"call": "from_pretrained", "path": str(store / "voicecraft-830m-tts-enhanced")},
                           {"call": "to", "device": "cpu"}]
    tokenizer_calls = sys.modules["data.tokenizer"].CALLS
    assert tokenizer_calls == [
        {"call": "AudioTokenizer", "device": "cpu", "signature": str(store / "voicecraft-encodec" /
                                                                     "encodec_4cb2048_giga.th")},
        {"call": "TextTokenizer", "backend": "espeak"}]
    audio, rate = read_audio(result.wav_path)
    assert rate == 16_000 and audio.shape == (1, 8000)  # only the generated part
    assert os.environ["PYTHONHASHSEED"] == "3"  # seed_everything(seed)

    whole = TTS_PARTS.get("voicecraft")(checkout=str(root), prompt="whole", device="cpu")
    whole.synthesize(request_for(item, words), tmp_path / "whole.wav", seed=0)
    last = sys.modules["inference_tts_scale"].CALLS[-1]
    assert last["target_text"] == f"{words} {item.pair.transcript}"
    assert last["prompt_end_frame"] == pytest.approx(last["seconds"] * 16000, abs=1)


def test_voicecraft_without_the_aligner_names_it(tmp_path: Path, store: Path) -> None:
    root = write_tree(tmp_path / "VoiceCraft", VOICECRAFT_FILES)
    with pytest.raises(UpstreamCodeError, match="montreal-forced-aligner.*tts.prompt=whole"):
        TTS_PARTS.get("voicecraft")(checkout=str(root), mfa_command=str(tmp_path / "no-mfa")).prepare()


# ------------------------------------------------------------------------------ F5-TTS through its API
def fake_f5_tts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Inject ``f5_tts.api.F5TTS`` with upstream's signatures (api.py:23-34, 98-116); returns its call log."""
    calls: list[dict[str, Any]] = []

    class F5TTS:
        def __init__(self, model="F5TTS_v1_Base", ckpt_file="", vocab_file="", ode_method="euler", use_ema=True,
                     vocoder_local_path=None, device=None, hf_cache_dir=None):
            calls.append({"call": "init", "model": model, "ckpt_file": ckpt_file, "vocab_file": vocab_file,
                          "vocoder_local_path": vocoder_local_path, "device": device})

        def infer(self, ref_file, ref_text, gen_text, show_info=print, progress=None, target_rms=0.1,
                  cross_fade_duration=0.15, sway_sampling_coef=-1, cfg_strength=2, nfe_step=32, speed=1.0,
                  fix_duration=None, remove_silence=False, file_wave=None, file_spec=None, seed=None):
            from scipy.io import wavfile

            rate, wav = wavfile.read(ref_file)
            calls.append({"call": "infer", "ref_text": ref_text, "gen_text": gen_text, "seed": seed,
                          "nfe_step": nfe_step, "cfg_strength": cfg_strength, "sway": sway_sampling_coef,
                          "speed": speed, "ref_rate": rate, "ref_ndim": wav.ndim, "ref_dtype": str(wav.dtype)})
            t = np.arange(12_000) / 24_000
            return (0.3 * np.sin(2 * np.pi * 250 * t)).astype(np.float32), 24_000, np.zeros((100, 47))

    package = types.ModuleType("f5_tts")
    package.__path__ = []  # type: ignore[attr-defined]
    api = types.ModuleType("f5_tts.api")
    api.F5TTS = F5TTS  # type: ignore[attr-defined]
    package.api = api  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "f5_tts", package)
    monkeypatch.setitem(sys.modules, "f5_tts.api", api)
    return calls


def test_f5tts_calls_the_documented_api_and_records_who_gave_the_reference_text(
        item: ResolvedPair, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_f5_tts(monkeypatch)
    part = TTS_PARTS.get("f5tts")()
    with pytest.raises(WeightsError, match="bench models pull f5tts-v1-base"):
        part.prepare()
    install_weights(TTS_PARTS.get("f5tts").weights)
    given = part.synthesize(request_for(item, "Reference words."), tmp_path / "given.wav", seed=11)
    asr = part.synthesize(request_for(item), tmp_path / "asr.wav", seed=12)
    init, first, second = calls
    assert init == {"call": "init", "model": "F5TTS_v1_Base", "vocab_file": "", "device": None,
                    "ckpt_file": str(store / "f5tts-v1-base" / "F5TTS_v1_Base" / "model_1250000.safetensors"),
                    "vocoder_local_path": str(store / "vocos-mel-24khz")}
    assert (first["ref_text"], first["gen_text"], first["seed"]) == ("Reference words.", item.pair.transcript, 11)
    assert (second["ref_text"], second["seed"]) == ("", 12)  # empty: F5-TTS transcribes the reference itself
    assert (first["nfe_step"], first["cfg_strength"], first["sway"], first["speed"]) == (32, 2.0, -1.0, 1.0)
    assert (first["ref_rate"], first["ref_ndim"], first["ref_dtype"]) == (48_000, 1, "int16")
    assert given.details["ref_text_source"] == "reference_transcripts"
    assert "whisper-large-v3-turbo" in asr.details["ref_text_source"]
    audio, rate = read_audio(given.wav_path)
    assert rate == 24_000 and audio.shape == (1, 12_000)
    strict = TTS_PARTS.get("f5tts")(transcribe_missing=False)
    with pytest.raises(ValueError, match="reference_transcripts"):
        strict.synthesize(request_for(item), tmp_path / "x.wav", seed=0)


# ------------------------------------------------------------------------------ Wan2.2 generate.py
FAKE_GENERATE = """
    # Stand-in for Wan2.2's generate.py: the s2v flags of generate.py:105-297; writes 80 frames per clip at 16 fps
    # (the image first) with a 1 kHz tone as audio (what its ffmpeg merge would put there), records its arguments.
    import argparse, hashlib, json, math, os
    import numpy as np
    from PIL import Image
    from scipy.io import wavfile
    from idlora_bench.data.media import write_mp4

    parser = argparse.ArgumentParser()
    parser.add_argument('--task', choices=['t2v-A14B', 'i2v-A14B', 'ti2v-5B', 's2v-14B', 'animate-14B'])
    parser.add_argument('--size', choices=['720*1280', '1280*720', '480*832', '832*480', '1024*704', '704*1024',
                                           '704*1280', '1280*704'])
    parser.add_argument('--ckpt_dir')
    parser.add_argument('--offload_model', type=lambda v: v.lower() in ('true', '1', 'yes'))
    parser.add_argument('--convert_model_dtype', action='store_true')
    parser.add_argument('--t5_cpu', action='store_true')
    parser.add_argument('--prompt')
    parser.add_argument('--image')
    parser.add_argument('--audio')
    parser.add_argument('--base_seed', type=int, default=-1)
    parser.add_argument('--sample_steps', type=int)
    parser.add_argument('--num_clip', type=int)
    parser.add_argument('--infer_frames', type=int, default=80)
    parser.add_argument('--start_from_ref', action='store_true')
    parser.add_argument('--save_file')
    args = parser.parse_args()
    image = np.asarray(Image.open(args.image).convert('RGB'))
    rate, audio = wavfile.read(args.audio)
    record = {**vars(args), 'cwd': os.getcwd(), 'image_shape': list(image.shape),
              'image_sha256': hashlib.sha256(image.tobytes()).hexdigest(), 'audio_seconds': len(audio) / rate,
              'audio_dtype': str(audio.dtype)}
    json.dump(record, open(os.environ['FAKE_WAN_RECORD'], 'w'))
    clips = int(len(audio) / rate * 16 / args.infer_frames) + 1
    small = np.asarray(Image.fromarray(image).resize((64, 48)))
    frames = np.repeat(small[None], clips * args.infer_frames, axis=0)
    frames[1:] = 0
    tone = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(44100 * 6) / 44100)
    write_mp4(args.save_file, frames, 16.0, tone.astype(np.float32), 44100)
"""


def test_wan_runs_generate_py_with_the_documented_flags_and_remuxes_the_speech(
        item: ResolvedPair, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate = "# s2v-14B --audio --start_from_ref\n" + textwrap.dedent(FAKE_GENERATE)
    root = write_tree(tmp_path / "Wan2.2", {"generate.py": generate,
                                           "wan/speech2video.py": ""})
    fake_git(root, "b" * 40)
    install_weights(VIDEO_PARTS.get("wan2.2").weights)
    monkeypatch.setenv("WAN22_ROOT", str(root))
    monkeypatch.setenv("WAN22_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_WAN_RECORD", str(tmp_path / "wan.json"))
    rate = 24_000
    speech = (0.3 * np.sin(2 * np.pi * 300 * np.arange(int(2.2 * rate)) / rate)).astype(np.float32)
    wav = write_wav(tmp_path / "speech.wav", speech, rate)
    part = VIDEO_PARTS.get("wan2.2")()
    details = part.animate(item, wav, tmp_path / "out.mp4", seed=5)

    args = json.loads((tmp_path / "wan.json").read_text())
    assert (args["task"], args["size"], args["offload_model"], args["convert_model_dtype"]) == (
        "s2v-14B", "1024*704", True, True)  # README.md:263
    assert args["ckpt_dir"] == str(store / "wan2.2-s2v-14b") and args["base_seed"] == 5
    assert args["start_from_ref"] and args["infer_frames"] == 80 and args["num_clip"] is None
    assert args["prompt"] == item.pair.prompt.split("[VISUAL]:")[1].split("[SPEECH]:")[0].strip()
    frame = first_frame(item.target_path)
    assert args["image_shape"] == list(frame.shape)
    assert args["image_sha256"] == hashlib.sha256(frame.tobytes()).hexdigest()
    assert args["audio_seconds"] == pytest.approx(2.2, abs=1e-3) and args["audio_dtype"] == "int16"
    assert args["cwd"] != str(root)
    assert details["command"][2:4] == ["--task", "s2v-14B"] and "--start_from_ref" in details["command"]
    assert details["raw_frames"] == 80 and details["frames"] == 36  # ceil(2.2 s * 16 fps)
    media = decode(tmp_path / "out.mp4")
    assert media.fps == pytest.approx(16.0) and media.num_frames == 36
    assert abs(media.audio_duration_s - 2.2) < 0.05  # the speech, whole
    assert abs(dominant_hz(media.require_audio(), int(media.sample_rate or 0)) - 300) < 10  # not the 1 kHz tone
    assert media.require_video()[0].mean() > 20 > media.require_video()[1].mean()  # frame 0 is the image, kept
    assert part.config()["code"]["commit"] == "b" * 40

    monkeypatch.setenv("FAKE_WAN_RECORD", str(tmp_path / "missing-dir" / "wan.json"))  # the fake now crashes
    with pytest.raises(RuntimeError, match="generate.py wrote no video"):
        part.animate(item, wav, tmp_path / "out2.mp4", seed=5)


# ------------------------------------------------------------------------------ the cascade end to end
def test_cascade_cosyvoice3_wan22_tiny_random_runs_on_the_demo_split(tmp_path: Path, store: Path) -> None:
    from idlora_bench import runner
    from idlora_bench.store.run_files import read_generation_record

    outcome = runner.run("cosyvoice3+wan2.2", "demo", profile="offline", seed=0,
                         out_dir=tmp_path / "runs" / "demo" / "cosyvoice3+wan2.2-seed0",
                         method_options={"model": "tiny-random"}, metrics=["speaker_similarity"])
    split = load_split("demo")
    assert outcome.manifest.method == "cosyvoice3+wan2.2"
    assert outcome.manifest.method_config["tts"]["fake"] is True
    for pair in split.pairs:
        record = read_generation_record(outcome.run_dir / "videos" / f"{pair.pair_id}.json")
        assert record is not None and record.status == "ok", record
        assert record.details["video"]["fake"] == "first frame held still"
    media = decode(outcome.run_dir / "videos" / f"{split.pairs[0].pair_id}.mp4")
    assert abs(media.audio_duration_s - fake_speech_duration_s(split.pairs[0].transcript)) < 0.05
    rows = outcome.results
    assert len(rows) == len(split.pairs) and (rows["status"] == "ok").all(), rows["reason"].tolist()
