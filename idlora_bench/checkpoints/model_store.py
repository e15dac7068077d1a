"""The model store: list, pull, verify and import weights files (the cards every metric and method declares;
the CLI collects them from the registries, :func:`idlora_bench.cli.declared_weights`).

- ``pull``: downloads missing files (Hugging Face files through ``huggingface_hub`` at the pinned revision;
  URLs with HTTP range resume), verifies the sha256, and only then moves the file into place. A file
  whose checksum does not match is deleted and reported; it never lands in the store.
- ``import``: for machines without internet, copies files from a folder (e.g. a copy made elsewhere):
  every file there whose sha256 matches a card is placed where the card expects it; zip archives named
  by a card's URL are opened and their members imported the same way. Revision-pinned files without a
  published checksum are found by path (``DIR/<model>/<file>`` or a Hugging Face cache snapshot
  ``DIR/models--org--repo/snapshots/<revision>/<file>``) and their checksum is recorded on import.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from idlora_bench.checkpoints.weights import WeightsFile, models_dir, record_checksum
from idlora_bench.core.errors import WeightsError
from idlora_bench.core.io import file_sha256

ProgressCallback = Callable[[str, int, int | None], None]
"""``(label, bytes_done, bytes_total)``."""


def models(declared: Iterable[WeightsFile]) -> dict[str, list[WeightsFile]]:
    """Model name -> its files, from the ``declared`` weights cards."""
    grouped: dict[str, list[WeightsFile]] = {}
    for weights in declared:
        grouped.setdefault(weights.model, []).append(weights)
    return grouped


def select(names: Iterable[str] | None, declared: Iterable[WeightsFile]) -> list[WeightsFile]:
    """Files of the named models among ``declared`` (all when ``names`` is empty); unknown names get 'did you
    mean'."""
    from idlora_bench.core.registry import Registry

    grouped = models(declared)
    names = list(names or [])
    if not names:
        return [w for files in grouped.values() for w in files]
    registry: Registry[list[WeightsFile]] = Registry("model")
    for model, files in grouped.items():
        registry.register(model, files)
    chosen: list[WeightsFile] = []
    for name in names:
        chosen += registry.get(name)
    return chosen


@dataclass
class PullResult:
    weights: WeightsFile
    status: str  # "present", "downloaded", "failed", "not downloadable"
    message: str = ""


def pull(files: Iterable[WeightsFile], progress: ProgressCallback | None = None) -> list[PullResult]:
    """Download every missing or mismatched file; verify each before it lands in the store."""
    results = []
    for weights in files:
        if weights.status() == "ok":
            results.append(PullResult(weights, "present"))
            continue
        if weights.kind == "pypi":
            results.append(PullResult(weights, "not downloadable", weights.fix))
            continue
        try:
            _download_verified(weights, progress)
            results.append(PullResult(weights, "downloaded"))
        except (WeightsError, OSError) as exc:
            results.append(PullResult(weights, "failed", str(exc)))
    return results


def _download_verified(weights: WeightsFile, progress: ProgressCallback | None) -> None:
    destination = weights.path()
    destination.parent.mkdir(parents=True, exist_ok=True)
    downloads = models_dir() / "_downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    if weights.kind == "hf":
        import huggingface_hub

        hub = weights.hub()
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            fetched = Path(huggingface_hub.hf_hub_download(hub.repo_id, hub.path, revision=hub.revision, local_dir=tmp))
            if weights.sha256 is None:
                url = huggingface_hub.hf_hub_url(hub.repo_id, hub.path, revision=hub.revision)
                etag = huggingface_hub.get_hf_file_metadata(url).etag or ""
                _check_against_hub_etag(fetched, etag, weights)
                _place(fetched, destination)
                record_checksum(weights.model, weights.file, file_sha256(destination))
                return
            _verify_and_place(fetched, weights, destination)
        return
    url = weights.url()
    fetched = downloads / (Path(url.split("?")[0]).name or "download")
    if weights.archive_member:
        if not fetched.is_file():  # one archive serves all its members: download it once
            download_url(url, fetched, progress)
        try:
            with zipfile.ZipFile(fetched) as archive, tempfile.TemporaryDirectory(dir=downloads) as tmp:
                extracted = Path(archive.extract(weights.archive_member, tmp))
                _verify_and_place(extracted, weights, destination)
        except (WeightsError, zipfile.BadZipFile, KeyError) as exc:
            fetched.unlink(missing_ok=True)  # a bad archive is not reused by the next pull
            raise WeightsError(f"{weights.name}: archive {url} is not as expected ({exc}); deleted it") from exc
        return
    download_url(url, fetched, progress)
    try:
        _verify_and_place(fetched, weights, destination)
    except WeightsError:
        fetched.unlink(missing_ok=True)  # a wrong download is not kept for a later resume
        raise


def _check_against_hub_etag(candidate: Path, etag: str, weights: WeightsFile) -> None:
    """Check a file fetched at a pinned revision against the hub's metadata: LFS files carry their
    sha256 as etag, small files the git blob sha1."""
    etag = etag.strip('"').removeprefix("W/").strip('"')
    data_sha256 = file_sha256(candidate)
    if len(etag) == 64:
        ok = etag == data_sha256
    elif len(etag) == 40:
        blob = hashlib.sha1(f"blob {candidate.stat().st_size}\0".encode())
        with open(candidate, "rb") as handle:
            while chunk := handle.read(1 << 20):
                blob.update(chunk)
        ok = etag == blob.hexdigest()
    else:
        raise WeightsError(f"{weights.name}: the hub gave no usable checksum (etag {etag!r}); nothing was installed")
    if not ok:
        raise WeightsError(f"{weights.name}: downloaded file does not match the hub's checksum {etag} for "
                           f"{weights.source}; nothing was installed")


def _place(candidate: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.part")
    shutil.copyfile(candidate, tmp)
    os.replace(tmp, destination)


def _verify_and_place(candidate: Path, weights: WeightsFile, destination: Path) -> None:
    """Copy ``candidate`` to ``destination`` (atomically) if its sha256 matches the card."""
    actual = file_sha256(candidate)
    if actual != weights.sha256:
        raise WeightsError(f"{weights.name}: downloaded file has sha256 {actual}, card says {weights.sha256}; "
                           f"nothing was installed (source {weights.source})")
    _place(candidate, destination)


def download_url(url: str, destination: Path, progress: ProgressCallback | None = None,
                 chunk_bytes: int = 1 << 20, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``destination``, resuming a ``<destination>.part`` left by an earlier try."""
    partial = destination.with_name(destination.name + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if done and response.status != 206:  # server ignored the range: start over
            done = 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(partial, "ab" if done else "wb") as out:
            while chunk := response.read(chunk_bytes):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(destination.name, done, total)
    os.replace(partial, destination)
    return destination


@dataclass
class ImportResult:
    imported: list[str]
    missing: list[str]


def import_dir(source_dir: Path, files: Iterable[WeightsFile]) -> ImportResult:
    """Place every file under ``source_dir`` whose sha256 matches a card (zip archives are opened)."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise WeightsError(f"{source_dir}: not a folder")
    wanted = [w for w in files if w.kind != "pypi" and w.status() != "ok"]
    imported: list[str] = []
    unpinned = [w for w in wanted if w.sha256 is None]
    for weights in unpinned:  # no checksum to match: found by path, <model>/<file> or a hub snapshot folder
        hub = weights.hub()
        snapshot = f"models--{hub.repo_id.replace('/', '--')}/snapshots/{hub.revision}/{hub.path}"
        for relative in (f"{weights.model}/{weights.file}", snapshot):
            candidate = source_dir / relative
            if candidate.is_file():
                _place(candidate, weights.path())
                record_checksum(weights.model, weights.file, file_sha256(weights.path()))
                imported.append(weights.name)
                break
    by_sha = {w.sha256: w for w in wanted if w.sha256 is not None}
    missing_unpinned = sorted(w.name for w in unpinned if w.name not in imported)
    for candidate in sorted(p for p in source_dir.rglob("*") if p.is_file()):
        if not by_sha:
            break
        if zipfile.is_zipfile(candidate):
            with zipfile.ZipFile(candidate) as archive, tempfile.TemporaryDirectory() as tmp:
                for member in archive.namelist():
                    matches = [w for w in by_sha.values() if w.archive_member == member]
                    for weights in matches:
                        extracted = Path(archive.extract(member, tmp))
                        if file_sha256(extracted) == weights.sha256:
                            weights.path().parent.mkdir(parents=True, exist_ok=True)
                            _verify_and_place(extracted, weights, weights.path())
                            imported.append(weights.name)
                            by_sha.pop(weights.sha256, None)
            continue
        weights = by_sha.get(file_sha256(candidate))
        if weights is not None:
            weights.path().parent.mkdir(parents=True, exist_ok=True)
            _verify_and_place(candidate, weights, weights.path())
            imported.append(weights.name)
            by_sha.pop(weights.sha256)
    return ImportResult(imported, sorted([w.name for w in by_sha.values()] + missing_unpinned))
