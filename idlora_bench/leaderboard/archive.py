"""Safe reading of submission archives and folders: nothing is extracted before every member has been checked, and
nothing is ever written outside the target folder.

A member is refused (each problem is listed, by member name) when its name is absolute (``/x``, ``C:x``, ``\\x``),
holds a ``..`` part, a backslash or a control character, or is too long; when it is anything but a regular file
or a directory (symbolic and hard links, character and block devices, FIFOs, sparse or unknown types); when it is
larger than :attr:`Limits.member_bytes`; when it repeats an earlier member's name or needs a file as a folder. The
archive is refused as a whole when its members add up to more than :attr:`Limits.total_bytes` or number more than
:attr:`Limits.members`, or when it is not a gzip-compressed tar. Reading stops at the first limit crossed, so a
compression bomb costs at most ``total_bytes`` of decompression.

Extraction (only when there is no problem) never calls ``tarfile.extract``: each directory is made with ``mkdir``
and each regular file is copied from its member stream into a new file (``open(..., "xb")``: nothing existing is
replaced) whose resolved path is checked to lie inside the target folder. No link is ever created, so no later
member can be redirected outside.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_CHARACTERS = 1024
MAX_PART_CHARACTERS = 255


@dataclass(frozen=True)
class Limits:
    """Size limits of a bundle: ``member_bytes`` per file, ``total_bytes`` for all files, ``members`` entries."""

    member_bytes: int = 2 << 30  # 2 GiB: a long high-resolution generated video
    total_bytes: int = 64 << 30  # 64 GiB
    members: int = 100_000


def name_problem(name: str) -> str | None:
    """Why a member (or listed file) name is unsafe, or None. Names are POSIX paths relative to the bundle root;
    a leading ``./`` is allowed."""
    if not name or name in (".", "./"):
        return None if name in (".", "./") else "empty name"
    if CONTROL_CHARACTERS.search(name):
        return "control character in the name"
    if "\\" in name:
        return "backslash in the name (use '/' as the separator)"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if len(name) > MAX_NAME_CHARACTERS:
        return f"name longer than {MAX_NAME_CHARACTERS} characters"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "'..' in the path (would point outside the bundle)"
    if any(len(part) > MAX_PART_CHARACTERS for part in parts):
        return f"a path part longer than {MAX_PART_CHARACTERS} characters"
    return None


def normalise(name: str) -> str:
    """``./a//b/`` -> ``a/b`` (a checked name)."""
    return str(PurePosixPath(name)).removeprefix("./") if name not in (".", "./") else ""


def _type_problem(member: tarfile.TarInfo) -> str | None:
    if member.isreg() or member.isdir():
        return "sparse file (not allowed)" if member.issparse() else None
    if member.issym():
        return f"symbolic link to {member.linkname!r} (links are not allowed)"
    if member.islnk():
        return f"hard link to {member.linkname!r} (links are not allowed)"
    if member.ischr() or member.isblk():
        return "device file (not allowed)"
    if member.isfifo():
        return "FIFO (not allowed)"
    return f"unsupported member type {member.type!r}"


def _layout_problems(entries: list[tuple[str, bool]]) -> list[str]:
    """Duplicate names and files used as folders among ``(normalised name, is_dir)`` entries."""
    problems = []
    seen: dict[str, bool] = {}
    for name, is_dir in entries:
        if not name:
            continue
        if name in seen and not (is_dir and seen[name]):
            problems.append(f"{name}: appears twice in the archive (a later copy could replace the checked one)")
        seen.setdefault(name, is_dir)
    files = {name for name, is_dir in seen.items() if not is_dir}
    for name in seen:
        for parent in PurePosixPath(name).parents:
            if str(parent) in files:
                problems.append(f"{name}: its folder {parent} is a file in the archive")
                break
    return problems


def scan_archive(archive: Path, limits: Limits) -> tuple[list[tarfile.TarInfo], list[str]]:
    """The members of a gzip-compressed tar and every problem with them (see the module docstring); no file is
    written. Reading stops at the first limit crossed (the problems then say so)."""
    problems: list[str] = []
    members: list[tarfile.TarInfo] = []
    total = 0
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            while (member := tar.next()) is not None:
                members.append(member)
                label = member.name or "(unnamed member)"
                for problem in (name_problem(member.name), _type_problem(member)):
                    if problem:
                        problems.append(f"{archive.name}: member {label}: {problem}")
                if member.isreg() and member.size > limits.member_bytes:
                    problems.append(f"{archive.name}: member {label}: {member.size} bytes, over the limit of "
                                    f"{limits.member_bytes} bytes per file")
                total += max(0, member.size) if member.isreg() else 0
                if total > limits.total_bytes:
                    problems.append(f"{archive.name}: members add up to more than {limits.total_bytes} bytes "
                                    "(the limit); reading stopped")
                    break
                if len(members) > limits.members:
                    problems.append(f"{archive.name}: more than {limits.members} members (the limit); reading stopped")
                    break
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        problems.append(f"{archive.name}: not a readable gzip-compressed tar archive ({type(exc).__name__}: {exc})")
        return members, problems
    entries = [(normalise(m.name), m.isdir()) for m in members if not name_problem(m.name)]
    problems += [f"{archive.name}: member {problem}" for problem in _layout_problems(entries)]
    return members, problems


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def extract_archive(archive: Path, target: Path, limits: Limits = Limits()) -> list[str]:
    """Check every member, then (only if there is no problem) extract regular files and folders into ``target``
    (created; it must not exist or be empty). Returns the problems; an empty list means the bundle is in
    ``target``."""
    archive, target = Path(archive), Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return [f"{target}: the extraction folder must be new or empty"]
    _, problems = scan_archive(archive, limits)
    if problems:
        return problems
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with tarfile.open(archive, mode="r:gz") as tar:
        for member in tar:
            name = normalise(member.name)
            if not name:
                continue
            destination = root / name
            if not _inside(Path(os.path.normpath(destination)), root):
                return [f"{archive.name}: member {member.name}: resolves outside {target}; extraction stopped"]
            folder = destination if member.isdir() else destination.parent
            folder.mkdir(parents=True, exist_ok=True)
            if not _inside(folder, root):
                return [f"{archive.name}: member {member.name}: resolves outside {target}; extraction stopped"]
            if member.isdir():
                continue
            source = tar.extractfile(member)
            if source is None:
                return [f"{archive.name}: member {member.name}: cannot be read"]
            with source, open(destination, "xb") as out:
                shutil.copyfileobj(source, out, length=1 << 20)
            os.chmod(destination, 0o644)
    return []


def folder_problems(root: Path, limits: Limits = Limits()) -> list[str]:
    """Links, special files and oversize files in a bundle folder (nothing is followed or read)."""
    problems: list[str] = []
    total = 0
    count = 0
    for directory, folders, files in os.walk(root, followlinks=False):
        for name in [*folders, *files]:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            count += 1
            if stat.S_ISLNK(info.st_mode):
                problems.append(f"{relative}: symbolic link (links are not allowed in a bundle)")
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
                if info.st_size > limits.member_bytes:
                    problems.append(f"{relative}: {info.st_size} bytes, over the limit of {limits.member_bytes} "
                                    "bytes per file")
            elif not stat.S_ISDIR(info.st_mode):
                problems.append(f"{relative}: not a regular file or folder (devices, FIFOs, sockets are not allowed)")
            if problem := name_problem(relative):
                problems.append(f"{relative}: {problem}")
        folders[:] = [f for f in folders if not (Path(directory) / f).is_symlink()]
    if total > limits.total_bytes:
        problems.append(f"{root}: files add up to {total} bytes, over the limit of {limits.total_bytes}")
    if count > limits.members:
        problems.append(f"{root}: {count} entries, over the limit of {limits.members}")
    return problems
