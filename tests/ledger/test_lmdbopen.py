"""Every LMDB environment is opened durable, through ``lmdbopen`` alone."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import lmdb
import pytest

from redlist.ledger.errors import StoreError
from redlist.ledger.lmdbopen import open_durable, open_tables

ROOT = Path(__file__).resolve().parents[2]
DURABLE = {"sync": True, "metasync": True, "map_async": False, "writemap": False}


def test_an_environment_commits_durably_and_writes_no_stale_memory(tmp_path: Path) -> None:
    env = open_durable(tmp_path, map_size=1 << 20, max_dbs=1)
    try:
        flags = env.flags()
        assert {name: flags[name] for name in DURABLE} == DURABLE
        assert flags["meminit"] is True and flags["lock"] is True
    finally:
        env.close()


def test_tables_are_opened_and_made(tmp_path: Path) -> None:
    path = tmp_path / "queue.lmdb"
    env, tables = open_tables(path, tables=(b"a", b"b"), map_size=1 << 20, what="the queue")
    try:
        with env.begin(write=True) as txn:
            txn.put(b"k", b"v", db=tables[b"b"])
        with env.begin(db=tables[b"b"]) as txn:
            assert txn.get(b"k") == b"v"
        with env.begin(db=tables[b"a"]) as txn:
            assert txn.get(b"k") is None
    finally:
        env.close()


def test_personal_data_is_the_node_users_alone_and_read_only_unless_made(tmp_path: Path) -> None:
    path = tmp_path / "register.lmdb"
    env, _ = open_tables(path, tables=(b"r",), map_size=1 << 20, what="the register", personal=True)
    env.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / "data.mdb").stat().st_mode) == 0o600
    env, tables = open_tables(
        path, tables=(b"r",), map_size=1 << 20, what="the register", create=False, personal=True
    )
    try:
        assert env.flags()["readonly"] is True
        with pytest.raises(lmdb.ReadonlyError), env.begin(write=True) as txn:
            txn.put(b"k", b"v", db=tables[b"r"])
    finally:
        env.close()


def test_refusals_name_what_was_opened_and_make_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "state.lmdb"
    with pytest.raises(StoreError, match=r"^cannot create the witness state at .*state\.lmdb"):
        open_tables(missing, tables=(b"h",), map_size=1 << 20, what="the witness state")
    absent = tmp_path / "texts.lmdb"
    with pytest.raises(StoreError, match=r"^cannot open the texts at .*texts\.lmdb"):
        open_tables(
            absent, tables=(b"t",), map_size=1 << 20, what="the texts", create=False, personal=True
        )
    assert not absent.exists() and not missing.parent.exists()
    # A table the environment lacks, opened without creating it.
    made = tmp_path / "queue.lmdb"
    open_tables(made, tables=(b"a",), map_size=1 << 20, what="the queue")[0].close()
    with pytest.raises(StoreError, match=r"^the queue at .*queue\.lmdb is not usable"):
        open_tables(made, tables=(b"a", b"b"), map_size=1 << 20, what="the queue", create=False)


def test_no_source_opens_an_environment_any_other_way() -> None:
    """The durable flags hold only if every store opens through ``lmdbopen``."""
    opening = re.compile(r"\blmdb\.(open|Environment)\(")
    elsewhere = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(ROOT.glob("*/src/redlist/**/*.py"))
        if path.name != "lmdbopen.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if opening.search(line)
    ]
    assert sorted(ROOT.glob("*/src/redlist/ledger/lmdbopen.py")), "the scan found no sources"
    assert elsewhere == []
