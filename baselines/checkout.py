"""Run a system's own code from the user's checkout of its repository (never vendored, never installed by us).

CosyVoice, VoiceCraft and Wan2.2 are not on PyPI: the user clones them and points a part at the clone with an
option (``--option tts.checkout=PATH``) or an environment variable (``COSYVOICE_ROOT`` ...). This module finds the
checkout, imports a module from it (the checkout first on ``sys.path``, the imported file checked to lie inside it),
reads the checked-out commit for provenance, and writes the reference clip in the form upstream code reads.

Every failure is an :class:`UpstreamCodeError` (a :class:`~idlora_bench.core.errors.BenchError`, printed without a
traceback) whose message names what to clone, set or install.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from scipy.io import wavfile

from baselines.audio_io import read_audio
from idlora_bench.core.errors import BenchError
from idlora_bench.data.media import resample_audio, to_mono


class UpstreamCodeError(BenchError):
    """A system's code (a checkout or a package) is missing, is not the expected version, or fails to import."""


@dataclass(frozen=True)
class CheckoutSpec:
    """Where a system's code comes from and how the user provides it.

    ``system``: its name in messages; ``clone``: the repository URL; ``env_var``: the variable holding the path;
    ``option``: the part option holding the path (as typed on the command line, e.g. ``tts.checkout``);
    ``markers``: files (relative to the root) that a checkout of this repository has; ``install``: how to install
    its Python requirements (shown when an import fails); ``clone_flags``: extra ``git clone`` flags (e.g.
    ``--recursive`` for submodules).
    """

    system: str
    clone: str
    env_var: str
    option: str
    markers: tuple[str, ...]
    install: str
    clone_flags: str = ""

    def fix(self) -> str:
        clone = " ".join(part for part in ("git clone", self.clone_flags, self.clone) if part)
        return f"{clone} and pass --option {self.option}=PATH (or set {self.env_var}=PATH); then {self.install}"


def resolve_checkout(spec: CheckoutSpec, value: str | None) -> Path:
    """The checkout folder: ``value`` (the part option) if given, else ``$<env_var>``.

    Raises:
        UpstreamCodeError: neither is set, the folder does not exist, or a marker file is missing.
    """
    raw = value or os.environ.get(spec.env_var)
    if not raw:
        raise UpstreamCodeError(f"{spec.system}: no code checkout given. Fix: {spec.fix()}")
    root = Path(raw).expanduser().resolve()
    if not root.is_dir():
        raise UpstreamCodeError(f"{spec.system}: checkout {root} does not exist. Fix: {spec.fix()}")
    missing = [marker for marker in spec.markers if not (root / marker).exists()]
    if missing:
        raise UpstreamCodeError(f"{spec.system}: {root} is not a checkout of {spec.clone} ({', '.join(missing)} "
                                f"missing). Fix: {spec.fix()}")
    return root


def _origins(module: ModuleType) -> list[Path]:
    """The files/folders a module was loaded from (a namespace package has only ``__path__``)."""
    if getattr(module, "__file__", None):
        return [Path(str(module.__file__)).resolve()]
    return [Path(p).resolve() for p in getattr(module, "__path__", [])]


def _inside(module: ModuleType, roots: list[Path]) -> bool:
    origins = _origins(module)
    return bool(origins) and all(any(o.is_relative_to(r) for r in roots) for o in origins)


def add_to_sys_path(*paths: Path) -> None:
    """Put ``paths`` first on ``sys.path`` (in the given order), each once."""
    for path in reversed(paths):
        entry = str(path)
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    importlib.invalidate_caches()


def import_from_checkout(spec: CheckoutSpec, root: Path, module: str, extra_paths: tuple[Path, ...] = ()) -> ModuleType:
    """Import ``module`` (dotted) from the checkout ``root`` (and ``extra_paths``, e.g. a submodule's folder).

    The checkout goes first on ``sys.path``; the imported module must come from inside it (a same-named module
    already imported from elsewhere, e.g. a second checkout in the same process, is an error, not a silent mix).

    Raises:
        UpstreamCodeError: the module is not in the checkout, one of its own imports is not installed (the message
            names the missing package and ``spec.install``), or it was already imported from somewhere else.
    """
    roots = [root, *extra_paths]
    top = module.split(".")[0]
    loaded = sys.modules.get(top)
    if loaded is not None and not _inside(loaded, roots):
        where = ", ".join(str(o) for o in _origins(loaded)) or "an unknown location"
        raise UpstreamCodeError(f"{spec.system}: a module named {top!r} is already imported from {where}, not from "
                                f"the checkout {root}; run in a fresh process (one checkout per process).")
    add_to_sys_path(*roots)
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == top or module.startswith(f"{exc.name}.") or exc.name.startswith(f"{top}.")):
            raise UpstreamCodeError(f"{spec.system}: {root} has no module {module!r} ({exc}). "
                                    f"Fix: {spec.fix()}") from exc
        raise UpstreamCodeError(f"{spec.system}: importing {module} from {root} needs the Python package "
                                f"{exc.name!r}, which is not installed. Fix: {spec.install}") from exc
    except ImportError as exc:
        raise UpstreamCodeError(f"{spec.system}: importing {module} from {root} failed: {exc}. "
                                f"Fix: {spec.install}") from exc
    if not _inside(imported, roots):
        raise UpstreamCodeError(f"{spec.system}: {module} was imported from {_origins(imported)}, not from the "
                                f"checkout {root}; run in a fresh process (one checkout per process).")
    return imported


def _git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text.removeprefix("gitdir:").strip())
            return target if target.is_absolute() else (root / target).resolve()
    return None


def checkout_commit(root: Path) -> str | None:
    """The commit checked out at ``root``, read from its ``.git`` (HEAD, a loose ref or ``packed-refs``; no ``git``
    binary needed); None when ``root`` is not a git checkout or the ref cannot be read."""
    git_dir = _git_dir(root)
    if git_dir is None or not (git_dir / "HEAD").is_file():
        return None
    head = (git_dir / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    common = git_dir
    if (git_dir / "commondir").is_file():  # worktrees keep refs in the main repository
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        if (base / ref).is_file():
            return (base / ref).read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


def code_provenance(spec: CheckoutSpec, value: str | None) -> dict[str, str | None]:
    """``{"repository", "commit"}`` of the checkout the part would use (commit None when unknown or not set)."""
    try:
        root = resolve_checkout(spec, value)
    except UpstreamCodeError:
        return {"repository": spec.clone, "commit": None}
    return {"repository": spec.clone, "commit": checkout_commit(root)}


# ------------------------------------------------------------------------------------ inputs for upstream code
@dataclass(frozen=True)
class PromptAudio:
    """A reference clip written for upstream code: ``path`` (16-bit PCM mono WAV), its ``sample_rate`` (Hz),
    ``seconds`` written and ``cut_seconds`` dropped from the end (0 when whole)."""

    path: Path
    sample_rate: int
    seconds: float
    cut_seconds: float

    def details(self) -> dict[str, float | int]:
        return {"sample_rate": self.sample_rate, "seconds": round(self.seconds, 4),
                "cut_seconds": round(self.cut_seconds, 4)}


def write_prompt_wav(reference_path: Path, out_wav: Path, *, rate: int | None = None, min_rate: int = 16_000,
                     max_seconds: float | None = None) -> PromptAudio:
    """Write the audio of ``reference_path`` as a mono 16-bit PCM WAV that any reader (soundfile, torchaudio,
    pydub, MFA) takes: channels averaged, resampled to ``rate`` Hz (None: the clip's own rate, raised to
    ``min_rate`` when below it), cut to ``max_seconds`` when given.

    Raises:
        ValueError: the clip has no audio signal.
    """
    audio, source_rate = read_audio(reference_path)
    mono = to_mono(audio)
    target = rate or max(source_rate, min_rate)
    mono = resample_audio(mono, source_rate, target) if target != source_rate else mono
    if mono.size == 0 or not np.any(mono):
        raise ValueError(f"{reference_path}: the reference clip has no audio signal to clone")
    total = mono.size / target
    if max_seconds is not None and total > max_seconds:
        mono = mono[: int(max_seconds * target)]
    pcm = np.round(np.clip(mono, -1.0, 1.0) * 32767.0).astype(np.int16)
    out_wav = Path(out_wav)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(out_wav, int(target), pcm)
    return PromptAudio(out_wav, int(target), pcm.size / target, total - pcm.size / target)


def as_numpy(samples: object) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array-like as a float32 numpy array."""
    for method in ("detach", "cpu", "float"):
        if hasattr(samples, method) and not isinstance(samples, np.ndarray):
            samples = getattr(samples, method)()
    if hasattr(samples, "numpy") and not isinstance(samples, np.ndarray):
        samples = samples.numpy()  # type: ignore[attr-defined]
    return np.asarray(samples, dtype=np.float32)
