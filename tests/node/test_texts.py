"""Free texts beside the log (DESIGN 9.2): checked on Submit, kept in texts.lmdb before
the append, served to staff only, erased without a trace while the log still verifies."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.builders import (
    STANDARD_RULES,
    Town,
    create_log,
    send_with_texts,
    submit_request,
    texts_of,
)
from tests.node.serving import BIN, Running, metadata_of, rpc_error, run_node

from redlist.ledger.log import Log
from redlist.ledger.textcommit import EntryText
from redlist.ledger.textstore import TextStore
from redlist.node.texts import NodeTexts
from redlist.proto.client import read_signature
from redlist.v1 import ledger_pb2 as pb

SETUP_SIZE = 1 + 4 + len(STANDARD_RULES)
NOTE = "helped 王奶奶 at No. 3 East Lane"


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    with create_log(tmp_path / "data", town, setup=True) as opened:
        yield opened


def store_bytes(data: Path) -> bytes:
    """Every byte of every file of the text store (and anything beside it)."""
    return b"".join(
        path.read_bytes() for path in sorted(data.glob("texts.*/**/*")) if path.is_file()
    ) + b"".join(path.read_bytes() for path in sorted(data.glob("texts.*")) if path.is_file())


def test_a_wrong_text_refuses_the_batch_and_stores_nothing(log: Log, town: Town) -> None:
    good = town.redeem("resident-1", 1, "a thermos")
    wrong = send_with_texts(
        town.award("resident-1", "clean-pond", note=NOTE),
        {"note": EntryText("helped someone else", bytes(16))},
    )

    async def body(running: Running) -> None:
        error = await rpc_error(running.submit([good, wrong]))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (error.details() or "").startswith("envelope 1: the text sent for 'note'")
        assert metadata_of(error) == {"redlist-index": "1", "redlist-check": "text"}
        assert log.size == SETUP_SIZE

    run_node(log, body)
    data = log.data_dir
    assert b"thermos" not in store_bytes(data)
    assert b"someone else" not in store_bytes(data)
    with TextStore.open(data) as store:
        assert store.stored_keys() == []


def test_texts_are_checked_before_an_undecodable_envelope_is_refused(log: Log, town: Town) -> None:
    # Submit decodes the batch once, for the texts and the log: the texts of the
    # decodable envelopes are checked first, the log then names the undecodable one.
    undecodable = b"\x92\xc4\x01"
    wrong = send_with_texts(
        town.award("resident-1", "clean-pond", note=NOTE),
        {"note": EntryText("helped someone else", bytes(16))},
    )
    good = town.award("resident-2", "clean-pond", note="pond")

    async def body(running: Running) -> None:
        error = await rpc_error(running.submit([undecodable, wrong]))
        assert metadata_of(error) == {"redlist-index": "1", "redlist-check": "text"}
        error = await rpc_error(running.submit([good, undecodable]))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert metadata_of(error)["redlist-index"] == "1"
        assert (error.details() or "").startswith("envelope 1: ")
        assert log.size == SETUP_SIZE
        response = await running.submit([good])
        assert list(response.seqs) == [SETUP_SIZE]

    run_node(log, body)
    with TextStore.open(log.data_dir) as store:
        assert len(store.stored_keys()) == 1  # the good entry's note, stored once


@pytest.mark.parametrize(
    ("texts", "words"),
    [
        ({"note": pb.Text(text="ok\rhidden", salt=bytes(16))}, "control character"),
        ({"note": pb.Text(text="pond", salt=bytes(15))}, "salt must be 16 bytes"),
        ({"note": pb.Text(text="x" * 16_385, salt=bytes(16))}, "more than the 16384"),
    ],
)
def test_a_malformed_text_is_refused_naming_the_envelope_and_field(
    log: Log, town: Town, texts: dict[str, pb.Text], words: str
) -> None:
    envelope = town.award("resident-1", "clean-pond", note="pond")
    request = pb.SubmitRequest(envelopes=[envelope], texts=[pb.EntryTexts(fields=texts)])

    async def body(running: Running) -> None:
        error = await rpc_error(running.stub.Submit(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (error.details() or "")
        assert metadata_of(error) == {"redlist-index": "0", "redlist-check": "text"}
        assert log.size == SETUP_SIZE

    run_node(log, body)


def test_texts_must_be_aligned_with_the_envelopes(log: Log, town: Town) -> None:
    envelopes = [town.award("resident-1", "clean-pond", note="pond"), town.award("r-2", "litter")]
    request = pb.SubmitRequest(envelopes=envelopes, texts=[pb.EntryTexts()])

    async def body(running: Running) -> None:
        error = await rpc_error(running.stub.Submit(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "texts for 1 envelopes but has 2" in (error.details() or "")
        assert log.size == SETUP_SIZE

    run_node(log, body)


def test_a_text_for_a_field_the_entry_does_not_commit_to_is_refused(log: Log, town: Town) -> None:
    envelope = send_with_texts(
        town.award("resident-1", "clean-pond"), {"note": EntryText("pond", bytes(16))}
    )

    async def body(running: Running) -> None:
        error = await rpc_error(running.submit([envelope]))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "holds no commitment 'note'" in (error.details() or "")

    run_node(log, body)


def test_a_batch_the_log_refuses_leaves_no_text_behind(log: Log, town: Town) -> None:
    # The texts are stored before the append; the log refuses the batch (an unknown
    # rule), and the node removes what it stored for it.
    batch = [town.redeem("resident-1", 1, "soap"), town.award("resident-1", "V99", note=NOTE)]

    async def body(running: Running) -> None:
        error = await rpc_error(running.submit(batch))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        accepted = await running.submit([town.award("resident-1", "clean-pond", note="pond")])
        assert list(accepted.seqs) == [SETUP_SIZE]

    run_node(log, body)
    with TextStore.open(log.data_dir) as store:
        assert [key.field for key in store.stored_keys()] == ["note"]
    assert NodeTexts(log.data_dir, log).texts_for(SETUP_SIZE) == {"note": "pond"}


def test_a_resubmitted_envelope_keeps_its_text(log: Log, town: Town) -> None:
    award = town.award("resident-1", "clean-pond", note=NOTE)

    async def body(running: Running) -> None:
        first = await running.submit([award])
        # Again, in a batch the log refuses: the text of the entry in the log stays.
        await rpc_error(running.submit([award, town.award("resident-1", "V99")]))
        assert list((await running.submit([award])).seqs) == list(first.seqs)

    run_node(log, body)
    assert NodeTexts(log.data_dir, log).texts_for(SETUP_SIZE) == {"note": NOTE}


def _signed(town: Town, account: str, **changes: object) -> pb.GetAccountRequest:
    request = pb.GetAccountRequest(account=account)
    request.read_signature.CopyFrom(read_signature(town.grid, "GetAccount", account))
    for name, value in changes.items():
        setattr(request.read_signature, name, value)
    return request


def test_only_a_staff_signed_read_gets_the_texts(log: Log, town: Town) -> None:
    entries = [town.award("resident-1", "clean-pond", note=NOTE), town.redeem("resident-1", 2)]

    async def body(running: Running) -> None:
        await running.submit(entries)
        anonymous = await running.stub.GetAccount(pb.GetAccountRequest(account="resident-1"))
        assert anonymous.texts_withheld
        assert [(e.note, e.item, e.has_text) for e in anonymous.entries] == [
            ("", "", True),
            ("", "", True),
        ]
        staff = await running.stub.GetAccount(_signed(town, "resident-1"))
        assert not staff.texts_withheld
        assert [(e.note, e.item) for e in staff.entries] == [(NOTE, ""), ("", "rice, 5 kg")]
        # The leaves, public, hold neither text.
        leaves = [
            leaf.leaf
            async for leaf in running.stub.GetLeaves(pb.GetLeavesRequest(start=0, end=log.size))
        ]
        assert not any(NOTE.encode() in leaf or b"rice" in leaf for leaf in leaves)

    run_node(log, body)


@pytest.mark.parametrize(
    "case", ["expired", "from the future", "another account", "unregistered", "revoked"]
)
def test_a_bad_read_signature_is_refused(log: Log, town: Town, case: str) -> None:
    log.append([town.award("resident-1", "clean-pond", note=NOTE)], now_ms=town.now_ms)
    stranger = Town.generate()
    now = int(time.time())
    if case == "expired":
        request = _signed(town, "resident-1")
        request.read_signature.CopyFrom(
            pb.ReadSignature(
                key_id=town.grid.key_id,
                time=now - 301,
                signature=town.grid.sign(
                    b"redlist/read/v1\x00GetAccount\x00resident-1\x00" + str(now - 301).encode()
                ),
            )
        )
    elif case == "from the future":
        request = _signed(town, "resident-1", time=now + 400)
    elif case == "another account":  # a signature overheard, replayed for another resident
        request = _signed(town, "resident-1")
        request.account = "resident-2"
    elif case == "unregistered":
        request = pb.GetAccountRequest(account="resident-1")
        request.read_signature.CopyFrom(read_signature(stranger.grid, "GetAccount", "resident-1"))
    else:
        log.append([town.revoke_key(town.grid)], now_ms=town.now_ms)
        request = _signed(town, "resident-1")

    async def body(running: Running) -> None:
        error = await rpc_error(running.stub.GetAccount(request))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
        assert metadata_of(error) == {"redlist-check": "read-signature"}

    run_node(log, body)


def test_texts_of_entries_never_appended_are_removed_at_start(log: Log, town: Town) -> None:
    # As a crash between storing texts and the append leaves them.
    appended = town.award("resident-1", "clean-pond", note="kept")
    log.append([appended], now_ms=town.now_ms)
    orphan = town.award("resident-2", "clean-pond", note="never appended")
    texts = NodeTexts(log.data_dir, log)
    for envelope in (appended, orphan):
        texts.admit([envelope], [texts_of(envelope)])
    assert b"never appended" in store_bytes(log.data_dir)
    assert texts.clean_orphans() == 1
    assert texts.texts_for(SETUP_SIZE) == {"note": "kept"}
    with TextStore.open(log.data_dir) as store:
        assert len(store.stored_keys()) == 1


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120
    )


def test_erasure_keeps_the_log_verifiable_and_leaves_no_trace(tmp_path: Path, town: Town) -> None:
    data = tmp_path / "data"
    other_note = "cleaned the north canal"
    with create_log(data, town, setup=True) as log:
        entries = [
            town.award("resident-1", "clean-pond", note=NOTE),  # SETUP_SIZE
            town.award("resident-2", "clean-pond", note=other_note),
            town.redeem("resident-1", 1, "two bars of soap"),
        ]
        objection = town.objection(SETUP_SIZE, "王奶奶 says it was her son")
        texts = NodeTexts(data, log)
        batch = [*entries, objection]
        texts.admit(batch, [texts_of(envelope) for envelope in batch])
        log.append(batch, now_ms=town.now_ms)
        vkey = log.verifier_key.encode()

    def export_and_verify(name: str) -> str:
        out, texts = tmp_path / name, tmp_path / f"{name}-texts.jsonl"
        exported = run(
            BIN / "redlist-node", "export", "--data", data, "--out", out, "--full",
            "--texts", texts,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        assert texts.stat().st_mode & 0o777 == 0o600
        assert sorted(path.name for path in out.iterdir()) == [
            "checkpoint",
            "leaves",
            "manifest.json",
        ]
        verified = run(BIN / "redlist-verify", "bundle", out, "--log-key", vkey, "--texts", texts)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        return texts.read_text("utf-8")

    before = export_and_verify("before")
    assert NOTE in before and "soap" in before and "her son" in before

    refused = run(BIN / "redlist-node", "texts", "erase", "--data", data, "--seq", "3", "--yes")
    assert refused.returncode == 1 and "holds no free text" in refused.stderr
    erased = run(
        BIN / "redlist-node", "texts", "erase", "--data", data, "--account", "resident-1", "--yes"
    )
    assert erased.returncode == 0, erased.stderr
    assert "note of entry 11, item of entry 13, text of entry 14" in erased.stdout

    after = export_and_verify("after")
    assert other_note in after
    assert NOTE not in after and "soap" not in after and "her son" not in after
    stored = store_bytes(data)
    for gone in (NOTE, "two bars of soap", "王奶奶 says it was her son"):
        assert gone.encode() not in stored
    assert other_note.encode() in stored

    one = run(
        BIN / "redlist-node",
        "texts",
        "erase",
        "--data",
        data,
        "--seq",
        str(SETUP_SIZE + 1),
        "--field",
        "note",
        "--yes",
    )
    assert one.returncode == 0, one.stderr
    assert other_note.encode() not in store_bytes(data)
    assert "seq" not in export_and_verify("last")  # no text left at all

    # A resubmitted envelope does not bring an erased text back.
    with Log.open(data) as log:
        texts = NodeTexts(data, log)
        texts.admit(entries[:1], [texts_of(entries[0])])
        assert texts.texts_for(SETUP_SIZE) == {}


def test_an_erased_text_reads_as_erased_to_staff(log: Log, town: Town) -> None:
    award = town.award("resident-1", "clean-pond", note=NOTE)

    async def body(running: Running) -> None:
        await running.stub.Submit(submit_request([award]))
        erased = run(
            BIN / "redlist-node",
            "texts",
            "erase",
            "--data",
            log.data_dir,
            "--seq",
            str(SETUP_SIZE),
            "--yes",
        )
        assert erased.returncode == 0, erased.stderr
        staff = await running.stub.GetAccount(_signed(town, "resident-1"))
        assert not staff.texts_withheld
        (entry,) = staff.entries
        assert (entry.note, entry.has_text) == ("", True)

    run_node(log, body)
    assert NOTE.encode() not in store_bytes(log.data_dir)


def test_the_texts_go_to_a_new_file_outside_the_bundle(tmp_path: Path, town: Town) -> None:
    """The bundle is public and the texts are personal data: the texts file may not lie
    inside --out, nor replace a file, and a refusal writes neither."""
    data = tmp_path / "data"
    with create_log(data, town, setup=True) as log:
        envelope = town.award("resident-1", "clean-pond", note=NOTE)
        NodeTexts(data, log).admit([envelope], [texts_of(envelope)])
        log.append([envelope], now_ms=town.now_ms)

    def export(out: Path, texts: Path) -> subprocess.CompletedProcess[str]:
        return run(
            BIN / "redlist-node", "export", "--data", data, "--out", out, "--full", "--texts", texts
        )

    inside = export(tmp_path / "b1", tmp_path / "b1" / "texts.jsonl")
    assert inside.returncode != 0
    assert "lies inside the bundle" in inside.stderr and "b1-texts.jsonl" in inside.stderr
    assert not (tmp_path / "b1").exists()
    taken = tmp_path / "taken.jsonl"
    taken.write_text("mine\n")
    refused = export(tmp_path / "b2", taken)
    assert refused.returncode != 0 and "already exists" in refused.stderr
    assert taken.read_text() == "mine\n" and not (tmp_path / "b2").exists()
    nowhere = export(tmp_path / "b3", tmp_path / "no" / "such" / "t.jsonl")
    assert nowhere.returncode != 0 and "does not exist" in nowhere.stderr
    assert not (tmp_path / "b3").exists()

    written = export(tmp_path / "b4", tmp_path / "b4-texts.jsonl")
    assert written.returncode == 0, written.stderr
    assert NOTE in (tmp_path / "b4-texts.jsonl").read_text("utf-8")
    assert "never publish it" in written.stdout
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []
