"""The witness's durable heads (``redlist.ledger.witnessstore``) on a real LMDB environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.witness import Refusal, WitnessedHead, WitnessRefusal
from redlist.ledger.witnessstore import WITNESS_ENV_NAME, WitnessStore

LOG = NoteSigner.generate("town.example/log")
OTHER = NoteSigner.generate("other.example/log")


def head(size: int) -> WitnessedHead:
    return WitnessedHead(size, bytes([size]) * 32, f"note of size {size}\n")


def test_swap_is_a_compare_and_swap_on_the_old_size_and_survives_reopening(
    tmp_path: Path,
) -> None:
    store = WitnessStore.open(tmp_path)
    try:
        assert store.head(LOG.verifier()) is None
        store.swap(LOG.verifier(), 0, head(5))
        with pytest.raises(WitnessRefusal) as caught:
            store.swap(LOG.verifier(), 0, head(9))  # another head was stored meanwhile
        assert caught.value.reason is Refusal.OLD_SIZE_MISMATCH
        assert caught.value.stored_size == 5
        store.swap(LOG.verifier(), 5, head(9))
        assert store.head(OTHER.verifier()) is None  # one head per log key
    finally:
        store.close()
    assert (tmp_path / WITNESS_ENV_NAME / "data.mdb").is_file()
    reopened = WitnessStore.open(tmp_path)
    try:
        assert reopened.head(LOG.verifier()) == head(9)
    finally:
        reopened.close()
