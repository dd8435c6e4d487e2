"""The resident register in its own LMDB environment: writes all or nothing, what publicity
will ask of it, locking, and an erasure that leaves no trace in its files (real LMDB)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from redlist.ledger.errors import RegisterError, StoreError
from redlist.ledger.registerstore import (
    REGISTER_ENV_NAME,
    RegisterConflictError,
    RegisterStore,
)
from redlist.ledger.residents import Household, MaskedResident, Resident

NOW = 1_773_532_800_000  # 2026-03-15


def resident(account: str, name: str = "张三", **fields: str) -> Resident:
    values = {
        "id_number": "",
        "phone": "",
        "village": "东村",
        "household": "",
        "basis": "consent",
        "basis_date": "2025-01-02",
    } | fields
    return Resident(account=account, name=name, changed_ms=NOW, **values)


def every_byte(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    directory = tmp_path / "town"
    directory.mkdir()
    return directory


def test_an_absent_register_reads_as_empty_and_creates_nothing(data: Path) -> None:
    with RegisterStore.open(data) as store:
        assert store.get("dgc-0001") is None
        assert store.residents() == []
        assert not store.publishable("dgc-0001")
    assert not (data / REGISTER_ENV_NAME).exists()


def test_add_then_read_back_in_account_order(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        result = store.add([resident("dgc-0002", "李四"), resident("dgc-0001")])
        assert (result.added, result.updated, result.unchanged) == (2, 0, 0)
    with RegisterStore.open(data) as store:
        assert [r.account for r in store.residents()] == ["dgc-0001", "dgc-0002"]
        assert store.get("dgc-0002") == resident("dgc-0002", "李四")


def test_which_accounts_the_register_holds(data: Path) -> None:
    with RegisterStore.open(data) as store:  # never imported: not kept, nothing held
        assert not store.kept()
        assert store.unknown(["dgc-0001"]) == ["dgc-0001"]
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001"), resident("dgc-0002", "李四")])
        store.erase("dgc-0002", 1)
    with RegisterStore.open(data) as store:
        assert store.kept()
        assert store.unknown(["dgc-0003", "dgc-0001", "dgc-0002"]) == ["dgc-0003", "dgc-0002"]
    with RegisterStore.open(data, write=True) as store:
        store.erase("dgc-0001", 2)
    with RegisterStore.open(data) as store:  # everyone erased: still a register
        assert store.kept()
        assert store.unknown(["dgc-0001"]) == ["dgc-0001"]


def test_a_write_with_any_conflict_stores_nothing(data: Path) -> None:
    id_number = "11010519491231002X"
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001", id_number=id_number)])
        with pytest.raises(RegisterConflictError) as refused:
            store.add(
                [
                    resident("dgc-0002"),
                    resident("dgc-0001", "张四"),
                    resident("dgc-0003", id_number=id_number),
                ]
            )
        assert [(c.index, c.account) for c in refused.value.conflicts] == [
            (1, "dgc-0001"),
            (2, "dgc-0003"),
        ]
        assert "--update" in refused.value.conflicts[0].message
        assert "already belongs to dgc-0001" in refused.value.conflicts[1].message
        assert store.get("dgc-0002") is None
        assert store.get("dgc-0001") == resident("dgc-0001", id_number=id_number)


def test_update_replaces_and_counts_what_did_not_change(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001"), resident("dgc-0002")])
        later = [resident("dgc-0001", "张四"), resident("dgc-0002"), resident("dgc-0003")]
        result = store.add(later, update=True)
        assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
        assert store.get("dgc-0001") == resident("dgc-0001", "张四")
        with pytest.raises(RegisterError, match="holds no such resident"):
            store.replace(resident("dgc-0009"))


def test_a_replaced_value_leaves_no_trace_either(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001", phone="13812345678"), resident("dgc-0002", "李四")])
        store.replace(resident("dgc-0001", phone="13900000000"))
    stored = every_byte(data)
    assert b"13812345678" not in stored
    assert b"13900000000" in stored


def test_publicity_questions(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        store.add(
            [
                resident("dgc-0001", "欧阳娜娜", household="12"),
                resident("dgc-0002", "李四光", household="12"),
                resident("dgc-0003", "王五", basis="", basis_date="", household="12"),
                resident("dgc-0004", "赵六", village="西村", household="12"),
                resident("dgc-0005", "孙七"),
            ]
        )
    with RegisterStore.open(data) as store:
        assert store.publishable("dgc-0001")
        assert not store.publishable("dgc-0003")  # no legal basis
        assert not store.publishable("dgc-0099")  # not registered
        assert store.left_out() == 1
        assert store.roster()[:2] == (
            MaskedResident("dgc-0001", "欧**娜", "东村", "12"),
            MaskedResident("dgc-0002", "李*光", "东村", "12"),
        )
        assert [m.account for m in store.roster()] == [
            "dgc-0001",
            "dgc-0002",
            "dgc-0004",
            "dgc-0005",
        ]
        # a household is named within its village
        assert store.household_of("dgc-0003") == Household(
            "东村", "12", ("dgc-0001", "dgc-0002", "dgc-0003")
        )
        assert store.household_of("dgc-0004") == Household("西村", "12", ("dgc-0004",))
        assert store.household_of("dgc-0005") is None
        assert [r.account for r in store.residents("西村")] == ["dgc-0004"]


def test_erase_leaves_no_trace_in_the_registers_files(data: Path) -> None:
    secrets = ["欧阳娜娜", "11010519491231002X", "13812345678", "0631-5201234", "马家屯"]
    with RegisterStore.open(data, write=True) as store:
        store.add(
            [
                resident("dgc-0001", "欧阳娜娜", id_number=secrets[1], phone=secrets[2]),
                resident("dgc-0002", "李四", phone=secrets[3], village=secrets[4]),
            ]
        )
        for n in range(300):  # enough records for several pages, and a few updates
            store.add([resident(f"x-{n:04}", "王五")])
        store.add(
            [
                resident(
                    "dgc-0001", "欧阳娜娜", id_number=secrets[1], phone=secrets[2], household="1"
                )
            ],
            update=True,
        )
    before = every_byte(data)
    assert all(secret.encode() in before for secret in secrets)

    with RegisterStore.open(data, write=True) as store:
        tombstone = store.erase("dgc-0001", NOW)
        store.erase("dgc-0002", NOW)
        assert store.get("dgc-0001") is None
        assert store.tombstone("dgc-0001") == tombstone
        assert [t.account for t in store.tombstones()] == ["dgc-0001", "dgc-0002"]
        assert not store.publishable("dgc-0001")
        assert len(store.residents()) == 300
        with pytest.raises(RegisterError, match="already erased"):
            store.erase("dgc-0001", NOW)
        with pytest.raises(RegisterConflictError, match="erased on"):
            store.add([resident("dgc-0001")], update=True)
    after = every_byte(data)
    for secret in secrets:
        assert secret.encode() not in after, secret
    assert "王五".encode() in after
    assert sorted(p.name for p in data.iterdir()) == [REGISTER_ENV_NAME, "register.lock"]


def test_a_scrub_cut_short_is_finished_by_the_next_writer(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001", "欧阳娜娜"), resident("dgc-0002", "李四")])
    # The process dies right after the erasure's commit: the record is gone, its bytes
    # are still in freed pages, and the scrub is marked pending.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from redlist.ledger import registerstore as rs\n"
        "rs.RegisterStore._scrub = lambda self: os._exit(9)\n"
        "store = rs.RegisterStore.open(Path(sys.argv[1]), write=True)\n"
        "store.erase('dgc-0001', 1)\n"
    )
    died = subprocess.run([sys.executable, "-c", script, str(data)], check=False)
    assert died.returncode == 9
    with RegisterStore.open(data) as store:
        assert store.get("dgc-0001") is None
    assert "欧阳娜娜".encode() in every_byte(data)  # why the scrub exists
    with RegisterStore.open(data, write=True):
        pass
    assert "欧阳娜娜".encode() not in every_byte(data)
    with RegisterStore.open(data) as store:
        assert [r.account for r in store.residents()] == ["dgc-0002"]


def test_a_swap_cut_between_its_two_renames_is_finished(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001"), resident("dgc-0002", "李四")])
        store.erase("dgc-0001", NOW)
    env = data / REGISTER_ENV_NAME
    # As if the writer died after moving the old environment aside.
    env.rename(data / "register.lmdb.new")
    (data / "register.lmdb.old").mkdir()
    (data / "register.lmdb.old" / "data.mdb").write_bytes("欧阳娜娜".encode())
    with RegisterStore.open(data) as store:  # a reader reads the finished copy meanwhile
        assert [r.account for r in store.residents()] == ["dgc-0002"]
    with RegisterStore.open(data, write=True) as store:
        assert [r.account for r in store.residents()] == ["dgc-0002"]
    assert sorted(p.name for p in data.iterdir()) == [REGISTER_ENV_NAME, "register.lock"]


def test_readers_share_writers_wait(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001")])
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from redlist.ledger.registerstore import RegisterStore\n"
            "with RegisterStore.open(Path(sys.argv[1])):\n"
            "    print('reading', flush=True); sys.stdin.readline()\n",
            str(data),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "reading\n"
        with RegisterStore.open(data) as store:  # readers share
            assert store.get("dgc-0001") is not None
        with pytest.raises(StoreError, match="another command is reading or changing"):
            RegisterStore.open(data, write=True, wait_s=0.2)
    finally:
        reader.communicate("\n", timeout=30)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from redlist.ledger.registerstore import RegisterStore\n"
            "with RegisterStore.open(Path(sys.argv[1]), write=True):\n"
            "    print('held', flush=True); time.sleep(1.5)\n",
            str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StoreError, match="another command is changing"):
            RegisterStore.open(data, wait_s=0.1)
        started = time.monotonic()
        with RegisterStore.open(data, write=True, wait_s=30) as store:  # waits its turn
            assert time.monotonic() - started > 0.2
            store.add([resident("dgc-0002")])
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0


def test_the_register_is_private_to_its_owner(data: Path) -> None:
    with RegisterStore.open(data, write=True) as store:
        store.add([resident("dgc-0001"), resident("dgc-0002")])
    env = data / REGISTER_ENV_NAME
    modes = [path.stat().st_mode & 0o077 for path in (env, *env.iterdir())]
    with RegisterStore.open(data, write=True) as store:
        store.erase("dgc-0001", NOW)  # a fresh environment swapped in
    modes += [path.stat().st_mode & 0o077 for path in (env, *env.iterdir())]
    assert modes == [0] * 6
