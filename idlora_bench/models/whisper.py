"""OpenAI Whisper model files: the ``large-v3`` weights card, strict checkpoint loading into ``whisper.model.Whisper``
and the package assets (tokenizer, mel filters, normaliser spellings) checked against their sha256.

Used by the WER metrics in ``idlora_bench/metrics/wer_*whisper*.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

from idlora_bench.checkpoints.weights import WeightsFile
from idlora_bench.core.errors import WeightsError
from idlora_bench.core.io import file_sha256

WHISPER_PACKAGE = "openai-whisper==20250625"
WHISPER_FIX = f"pip install -c constraints.txt --force-reinstall --no-deps '{WHISPER_PACKAGE}'"
# Files inside the installed openai-whisper package (module ``whisper``) that the metric depends on.
PACKAGE_ASSETS = {
    "assets/multilingual.tiktoken": "b34b360dbb493e781e479794586d661700670d65564001f23024971d1f2fa126",
    "assets/mel_filters.npz": "7450ae70723a5ef9d341e3cee628c7cb0177f36ce42c44b7ed2bf3325f0f6d4c",
    "normalizers/english.json": "6607f948be9824d2e1b2fa2223cd94c06c45afa4e05ea0e3d5e1f2bdffde2465",
}
CHECKPOINT_KEYS = frozenset({"dims", "model_state_dict"})

MODEL = "whisper-large-v3"
_LARGE_V3_SHA256 = "e5b1a55b89c1367dacf97e3e19bfd829a01529dbfdeefa8caeb59b3f1b81dadb"
LARGE_V3 = WeightsFile(
    model=MODEL,
    file="large-v3.pt",
    source=f"url:https://openaipublic.azureedge.net/main/whisper/models/{_LARGE_V3_SHA256}/large-v3.pt",
    sha256=_LARGE_V3_SHA256,
    licence="MIT",
    size_bytes=3_087_371_615,
)


def _package_file(inner_path: str) -> Path:
    found = importlib.util.find_spec("whisper")
    if found is None or not found.submodule_search_locations:
        raise WeightsError(f"openai-whisper (module 'whisper') is not installed. Fix: {WHISPER_FIX}")
    return Path(list(found.submodule_search_locations)[0]) / inner_path


def verify_package_assets() -> None:
    """Check the tokenizer, mel filters and normaliser spellings shipped in openai-whisper against their sha256."""
    for inner_path, expected in PACKAGE_ASSETS.items():
        path = _package_file(inner_path)
        if not path.is_file():
            raise WeightsError(f"openai-whisper asset {inner_path}: {path} is missing. Fix: {WHISPER_FIX}")
        actual = file_sha256(path)
        if actual != expected:
            raise WeightsError(
                f"openai-whisper asset {inner_path}: {path} has sha256 {actual}, expected {expected} "
                f"(another openai-whisper version?). Fix: {WHISPER_FIX}"
            )


def _listed(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_whisper_checkpoint(path: Path, device: str = "cpu", name: str = "whisper checkpoint") -> Any:
    """Load an OpenAI Whisper ``.pt`` checkpoint strictly into ``whisper.model.Whisper`` (float32, eval mode).

    The file must hold exactly ``dims`` (every ``ModelDimensions`` field, nothing else) and ``model_state_dict``
    (every key of the model built from ``dims``, nothing else, same shapes); anything else raises WeightsError.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, a pickle with code, a truncated download
        raise WeightsError(f"weights {name!r}: {path} is not a readable Whisper checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict) or set(checkpoint) != CHECKPOINT_KEYS:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WeightsError(f"weights {name!r}: {path} must hold exactly {sorted(CHECKPOINT_KEYS)}, found {found}")
    dims = checkpoint["dims"]
    fields = {field.name for field in dataclasses.fields(ModelDimensions)}
    if not isinstance(dims, dict) or set(dims) != fields:
        got = set(dims) if isinstance(dims, dict) else set()
        raise WeightsError(
            f"weights {name!r}: {path} 'dims' missing {sorted(fields - got)}, unexpected {sorted(got - fields)}"
        )
    model = Whisper(ModelDimensions(**dims))
    expected = model.state_dict()
    state = checkpoint["model_state_dict"]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if tuple(state[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or mismatched:
        problems = [f"{kind}: {_listed(keys)}" for kind, keys in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                    if keys]
        raise WeightsError(f"weights {name!r}: {path} does not match Whisper{dims}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


_LOADED: dict[tuple[str, int, int, str], Any] = {}


def shared_model(path: Path, device: str, name: str) -> Any:
    """One loaded model per (file, device) in this process, shared by WerWhisper and WerWhisperNorm."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, device)
    if key not in _LOADED:
        _LOADED[key] = load_whisper_checkpoint(path, device, name)
    return _LOADED[key]
