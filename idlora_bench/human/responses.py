"""The answer store: one SQLite file per study (default ``STUDY/responses.sqlite``), append-only.

- ``responses``: one row per answer. A repeated answer (same annotator, same item) is **refused** (HTTP 409 from the
  server, :class:`Refused` here): the first answer stands. Triggers abort any UPDATE or DELETE of a row.
- ``annotators``: an annotator id is bound to the slot of its first session; a session for another slot is
  refused (one annotator must never see a pair under two question types, which two slots could show).
- ``sessions``: one row per page session (its annotator id is fixed for the session); completion time.
- ``meta``: the study id the file belongs to; opening it for another study is an error.

Every call opens its own connection, so the threaded server may call from any thread.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from idlora_bench.core.errors import BenchError, ValidationError
from idlora_bench.human.model import Study

ANNOTATOR_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
    annotator_id TEXT PRIMARY KEY, slot INTEGER NOT NULL, first_seen_utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, annotator_id TEXT NOT NULL REFERENCES annotators(annotator_id),
    slot INTEGER NOT NULL, started_utc TEXT NOT NULL, user_agent TEXT, completed_utc TEXT);
CREATE TABLE IF NOT EXISTS responses (
    response_id INTEGER PRIMARY KEY AUTOINCREMENT,
    annotator_id TEXT NOT NULL, slot INTEGER NOT NULL, session_id TEXT NOT NULL REFERENCES sessions(session_id),
    item_id TEXT NOT NULL, answer TEXT NOT NULL, elapsed_ms INTEGER, watch_json TEXT NOT NULL,
    received_utc TEXT NOT NULL, UNIQUE (annotator_id, item_id));
CREATE TRIGGER IF NOT EXISTS responses_no_update BEFORE UPDATE ON responses
    BEGIN SELECT RAISE(ABORT, 'responses are append-only'); END;
CREATE TRIGGER IF NOT EXISTS responses_no_delete BEFORE DELETE ON responses
    BEGIN SELECT RAISE(ABORT, 'responses are append-only'); END;
"""
RESPONSE_COLUMNS = ["response_id", "annotator_id", "slot", "session_id", "item_id", "answer", "elapsed_ms",
                    "watch_json", "received_utc"]


class Refused(BenchError):
    """A request the store will not record; ``status`` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def completion_code(study: Study, annotator_id: str, slot: int) -> str:
    """The code an annotator gets after the last card (10 hex characters, upper case), for crowd platforms."""
    text = f"{study.completion_secret}:{study.study_id}:{annotator_id}:{slot}"
    return hashlib.sha256(text.encode()).hexdigest()[:10].upper()


class ResponseStore:
    """The answers of one study in the SQLite file ``db_path``."""

    def __init__(self, study: Study, db_path: Path) -> None:
        self.study = study
        self.db_path = Path(db_path)
        self._items = study.items_by_id()
        self._slot_items = {slot.slot: set(slot.item_ids) for slot in study.slots}
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'study_id'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('study_id', ?)", (study.study_id,))
            elif row[0] != study.study_id:
                raise ValidationError(f"{self.db_path}: holds the answers of study {row[0]!r}, not {study.study_id!r}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.db_path, timeout=30)) as conn:
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA journal_mode = WAL")
                with conn:  # one transaction: commit on success, roll back on error
                    yield conn
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise
            raise ValidationError(f"{self.db_path}: {exc}") from exc

    def start_session(self, annotator_id: str, slot: int, user_agent: str = "") -> tuple[str, list[str]]:
        """A new session of ``annotator_id`` on ``slot``: ``(session_id, item ids already answered)``."""
        if not isinstance(annotator_id, str) or not ANNOTATOR_PATTERN.match(annotator_id):
            raise Refused(400, "annotator_id must be 1-64 letters, digits or . _ @ - (starting with a letter or digit)")
        if not isinstance(slot, int) or isinstance(slot, bool) or slot not in self._slot_items:
            raise Refused(400, f"slot must be an integer from 0 to {len(self.study.slots) - 1}")
        session_id = uuid.uuid4().hex
        with self._connect() as conn:
            bound = conn.execute("SELECT slot FROM annotators WHERE annotator_id = ?", (annotator_id,)).fetchone()
            if bound is None:
                conn.execute("INSERT INTO annotators VALUES (?, ?, ?)", (annotator_id, slot, _now()))
            elif bound[0] != slot:
                raise Refused(409, f"worker {annotator_id} already works on slot {bound[0]}; one worker takes one "
                                   "slot of a study")
            conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, NULL)",
                         (session_id, annotator_id, slot, _now(), user_agent[:300]))
            answered = [row[0] for row in conn.execute(
                "SELECT item_id FROM responses WHERE annotator_id = ? ORDER BY response_id", (annotator_id,))]
        return session_id, answered

    def _session(self, conn: sqlite3.Connection, session_id: Any) -> tuple[str, int]:
        row = conn.execute("SELECT annotator_id, slot FROM sessions WHERE session_id = ?",
                           (str(session_id),)).fetchone()
        if row is None:
            raise Refused(404, f"unknown session {session_id!r}; start again from the study page")
        return row[0], row[1]

    def _check_answer(self, slot: int, item_id: Any, answer: Any, watched: Any) -> None:
        if item_id not in self._slot_items[slot]:
            raise Refused(404, f"item {item_id!r} is not on slot {slot}'s card list")
        if answer not in self.study.answers:
            raise Refused(400, f"answer {answer!r}: expected one of {', '.join(self.study.answers)}")
        item = self._items[item_id]
        expected_videos = len(item.candidates) + (item.reference_media is not None)
        if (not isinstance(watched, list) or len(watched) != expected_videos
                or not all(isinstance(w, dict) and w.get("ended") is True for w in watched)):
            raise Refused(400, f"item {item_id}: an answer needs all {expected_videos} video(s) watched to the end")

    def record_answer(self, session_id: str, item_id: str, answer: str, watched: list[dict[str, Any]],
                      elapsed_ms: int | None = None) -> int:
        """Store one answer; returns its row id. Refuses (409) a second answer of the same item by the same worker."""
        with self._connect() as conn:
            annotator_id, slot = self._session(conn, session_id)
            self._check_answer(slot, item_id, answer, watched)
            elapsed = int(elapsed_ms) if isinstance(elapsed_ms, (int, float)) and elapsed_ms >= 0 else None
            try:
                cursor = conn.execute(
                    "INSERT INTO responses (annotator_id, slot, session_id, item_id, answer, elapsed_ms, watch_json, "
                    "received_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (annotator_id, slot, session_id, item_id, answer, elapsed, json.dumps(watched)[:4000], _now()))
            except sqlite3.IntegrityError:
                raise Refused(409, f"worker {annotator_id} already answered item {item_id}; the first answer "
                                   "stands") from None
            return int(cursor.lastrowid or 0)

    def complete(self, session_id: str) -> str:
        """The completion code, once every card of the session's slot is answered (409 before)."""
        with self._connect() as conn:
            annotator_id, slot = self._session(conn, session_id)
            done = {row[0] for row in conn.execute("SELECT item_id FROM responses WHERE annotator_id = ?",
                                                   (annotator_id,))}
            missing = self._slot_items[slot] - done
            if missing:
                raise Refused(409, f"{len(missing)} card(s) of slot {slot} are not answered yet")
            conn.execute("UPDATE sessions SET completed_utc = ? WHERE session_id = ?", (_now(), session_id))
        return completion_code(self.study, annotator_id, slot)

    def responses(self) -> pd.DataFrame:
        """Every stored answer, in arrival order (columns :data:`RESPONSE_COLUMNS`)."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {', '.join(RESPONSE_COLUMNS)} FROM responses ORDER BY response_id").fetchall()
        return pd.DataFrame(rows, columns=RESPONSE_COLUMNS)

    def sessions(self) -> pd.DataFrame:
        with self._connect() as conn:
            rows = conn.execute("SELECT session_id, annotator_id, slot, started_utc, completed_utc FROM sessions "
                                "ORDER BY started_utc").fetchall()
        return pd.DataFrame(rows, columns=["session_id", "annotator_id", "slot", "started_utc", "completed_utc"])
