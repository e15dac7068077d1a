"""Content-addressed feature cache in SQLite.

Key = sha256(metric name, metric version, metric params, weights checksums, media sha256) (see
``Metric.cache_key``), so features of a file are computed once for every run and every method that
scores it (the ground-truth side once for all methods). Deterministic failures (no face, no speech) are
cached too, with their reason. Every entry is committed in its own transaction with SQLite's write-ahead
log, so a process killed with SIGKILL loses at most the entry it was computing; any number of processes
may share one cache file.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    key TEXT PRIMARY KEY,
    metric TEXT NOT NULL,
    metric_version TEXT NOT NULL,
    media_sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason TEXT,
    payload BLOB,
    created_unix REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """``$IDLORA_BENCH_CACHE`` or ``$XDG_CACHE_HOME/idlora-bench/features.sqlite`` (``~/.cache`` default)."""
    if env := os.environ.get("IDLORA_BENCH_CACHE"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "idlora-bench" / "features.sqlite"


@dataclass(frozen=True)
class CachedFeatures:
    """A cache entry: features (status ok) or a failure reason (status failed)."""

    status: str
    features: dict[str, Any] | None
    reason: str | None


def encode_features(features: dict[str, Any]) -> bytes:
    """Serialise a dict of arrays / numbers / strings to ``.npz`` bytes (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for name, value in features.items():
        if isinstance(value, np.ndarray):
            arrays[name], kinds[name] = value, "array"
        elif isinstance(value, bool):
            arrays[name], kinds[name] = np.asarray(value), "bool"
        elif isinstance(value, int):
            arrays[name], kinds[name] = np.asarray(value, np.int64), "int"
        elif isinstance(value, float):
            arrays[name], kinds[name] = np.asarray(value, np.float64), "float"
        elif isinstance(value, str):
            arrays[name], kinds[name] = np.asarray(value, dtype=np.str_), "str"
        else:
            raise TypeError(f"feature {name!r} has unsupported type {type(value).__name__}")
    arrays["__kinds__"] = np.asarray(json.dumps(kinds), dtype=np.str_)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_features(payload: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        kinds = json.loads(str(archive["__kinds__"]))
        out: dict[str, Any] = {}
        for name, kind in kinds.items():
            value = archive[name]
            out[name] = {"array": lambda v: v, "bool": lambda v: bool(v), "int": lambda v: int(v),
                         "float": lambda v: float(v), "str": lambda v: str(v)}[kind](value)
        return out


class FeatureCache:
    """SQLite-backed cache of per-file metric features."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(SCHEMA)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedFeatures | None:
        row = self._connection.execute(
            "SELECT status, reason, payload FROM features WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        status, reason, payload = row
        return CachedFeatures(status, decode_features(payload) if payload is not None else None, reason)

    def put_ok(self, key: str, metric: str, version: str, media_sha256: str, features: dict[str, Any]) -> None:
        self._put(key, metric, version, media_sha256, "ok", None, encode_features(features))

    def put_failure(self, key: str, metric: str, version: str, media_sha256: str, reason: str) -> None:
        self._put(key, metric, version, media_sha256, "failed", reason, None)

    def _put(self, key: str, metric: str, version: str, media: str, status: str, reason: str | None,
             payload: bytes | None) -> None:
        self._connection.execute(
            "INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, metric, version, media, status, reason, payload, time.time()),
        )

    def __len__(self) -> int:
        return int(self._connection.execute("SELECT COUNT(*) FROM features").fetchone()[0])

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
