"""Kling tasks of one run, in SQLite in the run folder: a killed run polls its tasks again and never pays twice.

``<run>/kling-tasks.sqlite`` holds one row per job, keyed by sha256 of (pair id, seed, method config sha256).
A row is written *before* the submission (status ``submitting``, with the ``external_task_id`` sent), updated with
the task id as soon as Kling answers (before any poll), then with every status change, the result and the
downloaded file. Each write is its own committed transaction (WAL journal), so ``kill -9`` at any point leaves a
row a new process can continue from:

- ``submitting`` without a task id: the submission may or may not have reached Kling; the method looks the task up
  by its ``external_task_id`` first and submits only when Kling knows none;
- a task id: the method polls it (never submits again);
- ``failed``: terminal; a new task is submitted only with ``resubmit_failed`` (the old row moves to ``attempts``).

The database also holds a random ``nonce`` made when it is created: external task ids are unique per account, so
two run folders never claim each other's tasks.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DB_NAME = "kling-tasks.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    job_key TEXT PRIMARY KEY,
    pair_id TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_sha256 TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    external_task_id TEXT NOT NULL,
    task_id TEXT,
    request_id TEXT,
    status TEXT NOT NULL,
    status_msg TEXT NOT NULL DEFAULT '',
    history TEXT NOT NULL DEFAULT '[]',
    result TEXT,
    download TEXT,
    attempts TEXT NOT NULL DEFAULT '[]',
    request TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""


def job_key(pair_id: str, seed: int, config_sha256: str) -> str:
    """The job's identity: sha256 of ``[pair_id, seed, config_sha256]`` as JSON."""
    return hashlib.sha256(json.dumps([pair_id, int(seed), config_sha256]).encode()).hexdigest()


@dataclass
class TaskRow:
    """One job's state. ``history``: status changes ``{"status", "message", "at"}`` (Unix seconds); ``result``:
    what the finished task reported; ``download``: ``{"path", "sha256", "bytes"}`` of the fetched file."""

    job_key: str
    pair_id: str
    seed: int
    config_sha256: str
    attempt: int
    external_task_id: str
    task_id: str | None
    request_id: str | None
    status: str
    status_msg: str
    history: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    download: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)


class TaskStore:
    """The tasks database of one run folder (``path``: the SQLite file; created on first use)."""

    def __init__(self, path: Path, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('nonce', ?)", (secrets.token_hex(4),))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)  # autocommit: each write is durable
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    @property
    def nonce(self) -> str:
        with self._connect() as db:
            return str(db.execute("SELECT value FROM meta WHERE key = 'nonce'").fetchone()[0])

    def external_task_id(self, key: str, attempt: int) -> str:
        """The ``external_task_id`` sent for attempt ``attempt`` of job ``key`` (unique per run folder)."""
        return f"idlora-{self.nonce}-{key[:20]}-{attempt}"

    def get(self, key: str) -> TaskRow | None:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM tasks WHERE job_key = ?", (key,)).fetchone()
        if row is None:
            return None
        values = dict(row)
        return TaskRow(
            job_key=values["job_key"], pair_id=values["pair_id"], seed=values["seed"],
            config_sha256=values["config_sha256"], attempt=values["attempt"],
            external_task_id=values["external_task_id"], task_id=values["task_id"], request_id=values["request_id"],
            status=values["status"], status_msg=values["status_msg"], history=json.loads(values["history"]),
            result=json.loads(values["result"]) if values["result"] else None,
            download=json.loads(values["download"]) if values["download"] else None,
            attempts=json.loads(values["attempts"]), request=json.loads(values["request"]))

    def begin(self, key: str, pair_id: str, seed: int, config_sha256: str, request: dict[str, Any]) -> TaskRow:
        """A new ``submitting`` row (attempt 1, or the next attempt when a failed row is archived first);
        ``request``: what is sent besides the image bytes (prompt, image facts), kept for the record."""
        previous = self.get(key)
        attempts = [] if previous is None else [*previous.attempts, _archived(previous)]
        attempt = 1 if previous is None else previous.attempt + 1
        now = self.clock()
        history = [{"status": "submitting", "message": "", "at": now}]
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO tasks (job_key, pair_id, seed, config_sha256, attempt, external_task_id,"
                       " status, history, attempts, request, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (key, pair_id, int(seed), config_sha256, attempt, self.external_task_id(key, attempt),
                        "submitting", json.dumps(history), json.dumps(attempts), json.dumps(request, sort_keys=True),
                        now, now))
        row = self.get(key)
        assert row is not None
        return row

    def set_task(self, key: str, task_id: str, request_id: str | None, status: str, message: str = "") -> None:
        """Kling accepted the submission (or it was found by external id): store its task id."""
        with self._connect() as db:
            db.execute("UPDATE tasks SET task_id = ?, request_id = ? WHERE job_key = ?", (task_id, request_id, key))
        self.record_status(key, status, message)

    def record_status(self, key: str, status: str, message: str = "") -> bool:
        """Store the task's status; appended to the history when it changed. Returns whether it changed."""
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        changed = not row.history or (row.history[-1]["status"], row.history[-1]["message"]) != (status, message)
        history = row.history + ([{"status": status, "message": message, "at": self.clock()}] if changed else [])
        with self._connect() as db:
            db.execute("UPDATE tasks SET status = ?, status_msg = ?, history = ?, updated_at = ? WHERE job_key = ?",
                       (status, message, json.dumps(history), self.clock(), key))
        return changed

    def set_result(self, key: str, result: dict[str, Any]) -> None:
        self._set_json(key, "result", result)

    def set_download(self, key: str, download: dict[str, Any]) -> None:
        self._set_json(key, "download", download)

    def _set_json(self, key: str, column: str, value: dict[str, Any]) -> None:
        assert column in ("result", "download")
        with self._connect() as db:
            db.execute(f"UPDATE tasks SET {column} = ?, updated_at = ? WHERE job_key = ?",
                       (json.dumps(value, sort_keys=True), self.clock(), key))

    def rows(self) -> list[TaskRow]:
        """Every job of this run (for reports and tests)."""
        with self._connect() as db:
            keys = [r[0] for r in db.execute("SELECT job_key FROM tasks ORDER BY created_at")]
        return [row for key in keys if (row := self.get(key)) is not None]


def _archived(row: TaskRow) -> dict[str, Any]:
    return {"attempt": row.attempt, "external_task_id": row.external_task_id, "task_id": row.task_id,
            "status": row.status, "status_msg": row.status_msg, "history": row.history}
