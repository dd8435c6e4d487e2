"""The grades this node recognised from other towns, read for ``GetAccount`` (DESIGN 8.6).

``redlist-node recognise`` writes them into ``DIR/recognition.lmdb``, possibly while
the node serves; the node opens that environment once it exists (a node that never
recognised anything creates nothing) and reads it on every ``GetAccount`` first page.
An expired recognition is still listed, marked ``expired`` by the node's clock: a clerk
sees that the resident's grade from that town has lapsed and can ask for a new one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from redlist.ledger.recognitionstore import RECOGNITION_ENV_NAME, Recognition, RecognitionStore
from redlist.v1 import ledger_pb2 as pb


class RecognisedGrades:
    """Read access to a data directory's recognitions; thread-safe; close when done."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self._data_dir = data_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._store: RecognitionStore | None = None
        self._closed = False

    def messages(self, account: str) -> list[pb.RecognisedGrade]:
        """The recognitions of ``account`` as the wire states them (none when there are none)."""
        store = self._open()
        if store is None:
            return []
        now = self._clock()
        return [_message(recognition, now) for recognition in store.for_account(account)]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._store is not None:
                self._store.close()
                self._store = None

    def _open(self) -> RecognitionStore | None:
        with self._lock:
            exists = (self._data_dir / RECOGNITION_ENV_NAME).is_dir()
            if self._store is None and not self._closed and exists:
                self._store = RecognitionStore.open(self._data_dir)
            return self._store


def _message(recognition: Recognition, now: float) -> pb.RecognisedGrade:
    return pb.RecognisedGrade(
        origin=recognition.origin,
        foreign_account=recognition.foreign_account,
        grade=recognition.grade,
        equivalent=recognition.equivalent,
        score=recognition.score,
        auditor=recognition.auditor,
        tree_size=recognition.tree_size,
        expires=recognition.expires,
        recognised_at=recognition.recognised_at,
        expired=now >= recognition.expires,
    )
