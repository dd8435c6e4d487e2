"""The Log on real LMDB files: create/open, atomic batches, chain, proofs, accounts, limits."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.builders import (
    ORIGIN,
    WENDENG_CONFIG,
    RuleSpec,
    Town,
    corrupt_signature,
    create_log,
    leaf_at,
    signed_root,
    town_config,
)
from tests.rawstore import ENV_DIR_NAME, META_CHECKPOINT, raw_tables

from redlist.ledger import merkle
from redlist.ledger.append import Incoming, Submitted, decode_each
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import MAX_FUTURE_MS, ZERO_HASH, Envelope, Leaf, decode_body
from redlist.ledger.errors import (
    BatchError,
    ConflictError,
    FormatError,
    IntegrityError,
    KeyFileError,
    ProofError,
    RuleViolation,
    StoreError,
)
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.points import apply_entry
from redlist.ledger.state import MemoryState


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    opened = create_log(tmp_path / "data", town, setup=True)
    yield opened
    opened.close()


def all_leaves(log: Log) -> list[bytes]:
    return [leaf for _, leaf in log.leaves(0, log.size)]


def replay(log: Log) -> MemoryState:
    """What an auditor computes: every leaf through the semantics, in memory."""
    state = MemoryState()
    state.keep_account_entries = True
    for seq, leaf_bytes in log.leaves(0, log.size):
        leaf = Leaf.from_bytes(leaf_bytes)
        apply_entry(
            state,
            origin=log.origin,
            seq=seq,
            time=leaf.time,
            envelope=Envelope.from_bytes(leaf.envelope),
        )
    return state


def snapshot(log: Log, accounts: tuple[str, ...] = ("resident-1", "resident-2")) -> object:
    """Everything a failed batch must leave untouched."""
    return (
        log.size,
        log.checkpoint(),
        all_leaves(log),
        [log.account(account) for account in accounts],
    )


# ---------------------------------------------------------------------------
# Create and open


def test_create_then_open_round_trip(tmp_path: Path, town: Town) -> None:
    data = tmp_path / "data"
    created = create_log(data, town)
    checkpoint = created.checkpoint()
    assert created.size == 1
    assert created.origin == ORIGIN
    assert created.verifier_key == town.log_signer.verifier()
    created.close()

    reopened = Log.open(data)
    assert reopened.size == 1
    assert reopened.origin == ORIGIN
    assert reopened.verifier_key == town.log_signer.verifier()
    assert reopened.checkpoint() == checkpoint
    assert reopened.checkpoint_at(1) == checkpoint
    assert town_config(reopened) == WENDENG_CONFIG
    genesis = Leaf.from_bytes(leaf_at(reopened, 0))
    assert (genesis.seq, genesis.time, genesis.prev) == (0, town.now_ms, ZERO_HASH)
    reopened.append(town.setup(), now_ms=town.now_ms)
    assert reopened.size == 11
    reopened.close()


def test_create_writes_the_log_key_files(tmp_path: Path, town: Town) -> None:
    data = tmp_path / "data"
    create_log(data, town).close()
    key_file = data / "log.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert NoteSigner.parse(key_file.read_text().strip()) == town.log_signer
    assert (data / "log.pub").read_text().strip() == town.log_signer.verifier().encode()
    assert sorted(path.name for path in data.iterdir()) == ["ledger.lmdb", "log.key", "log.pub"]


def test_create_refuses_a_non_empty_directory(tmp_path: Path, town: Town) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not an empty directory"):
        create_log(data, town)
    assert [path.name for path in data.iterdir()] == ["notes.txt"]


def test_create_refuses_a_log_key_named_after_another_log(tmp_path: Path, town: Town) -> None:
    with pytest.raises(KeyFileError, match="origin"):
        Log.create(
            tmp_path / "data",
            origin=ORIGIN,
            log_signer=NoteSigner("other.example/log", SigningKey.generate()),
            genesis=town.genesis(),
            now_ms=town.now_ms,
        )
    assert not (tmp_path / "data").exists()


def test_a_refused_genesis_leaves_no_trace(tmp_path: Path, town: Town) -> None:
    data = tmp_path / "data"
    data.mkdir()
    impostor = dataclasses.replace(town, admin=SigningKey.generate())
    genesis_body = Envelope.from_bytes(town.genesis()).body  # it names town.admin
    forged = impostor.sign(genesis_body, impostor.admin)
    with pytest.raises(BatchError) as refused:
        Log.create(
            data,
            origin=ORIGIN,
            log_signer=town.log_signer,
            genesis=forged,
            now_ms=town.now_ms,
        )
    assert refused.value.index == 0
    assert isinstance(refused.value.cause, RuleViolation)
    assert refused.value.cause.check == "signer-role"
    assert list(data.iterdir()) == []
    create_log(data, town).close()  # the directory is usable again


def test_create_refuses_a_first_entry_that_is_not_a_genesis(tmp_path: Path, town: Town) -> None:
    with pytest.raises(BatchError) as refused:
        Log.create(
            tmp_path / "data",
            origin=ORIGIN,
            log_signer=town.log_signer,
            genesis=town.add_key(town.grid, "grid-wang", ["grid"]),
            now_ms=town.now_ms,
        )
    assert isinstance(refused.value.cause, RuleViolation)
    assert refused.value.cause.check == "genesis"
    assert not (tmp_path / "data").exists()


def test_open_explains_what_is_missing(tmp_path: Path, town: Town) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Log.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a redlist data directory"):
        Log.open(tmp_path / "empty")
    data = tmp_path / "data"
    create_log(data, town).close()
    (data / "log.key").unlink()
    with pytest.raises(StoreError, match=r"log\.key is missing"):
        Log.open(data)
    with Log.open(data, readonly=True) as readonly:  # reading needs no private key
        assert readonly.size == 1


def test_open_refuses_another_logs_key(tmp_path: Path, town: Town) -> None:
    data = tmp_path / "data"
    create_log(data, town).close()
    stranger = NoteSigner(ORIGIN, SigningKey.generate())
    (data / "log.key").write_text(stranger.encode() + "\n")
    with pytest.raises(KeyFileError, match="not this log's key"):
        Log.open(data)


def test_a_read_only_log_cannot_be_appended_to(tmp_path: Path, town: Town) -> None:
    data = tmp_path / "data"
    create_log(data, town).close()
    with Log.open(data, readonly=True) as readonly, pytest.raises(StoreError, match="read-only"):
        readonly.append(town.setup(), now_ms=town.now_ms)


# ---------------------------------------------------------------------------
# Appending


def test_append_returns_seqs_and_a_checkpoint_of_the_new_tree(log: Log, town: Town) -> None:
    result = log.append(
        [town.award("resident-1", "clean-pond"), town.award("resident-2", "litter")],
        now_ms=town.now_ms,
    )
    assert result.seqs == (11, 12)
    assert result.checkpoint == log.checkpoint() == log.checkpoint_at(13)
    checkpoint = result.checkpoint
    assert checkpoint.log_key == log.verifier_key
    assert open_checkpoint(checkpoint.note, log.verifier_key) == checkpoint
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, 13)
    leaf_hashes = [merkle.leaf_hash(leaf) for leaf in all_leaves(log)]
    assert checkpoint.root == merkle.root_of(leaf_hashes) == signed_root(log, 13)


def test_leaves_form_a_hash_chain_over_the_submitted_bytes(log: Log, town: Town) -> None:
    submitted = [town.award("resident-1", "clean-pond", qty=n) for n in range(1, 6)]
    log.append(submitted[:2], now_ms=town.now_ms)
    log.append(submitted[2:], now_ms=town.now_ms + 1)
    previous = ZERO_HASH
    for seq, leaf_bytes in log.leaves(0, log.size):
        leaf = Leaf.from_bytes(leaf_bytes)
        assert leaf.seq == seq
        assert leaf.prev == previous
        assert leaf.to_bytes() == leaf_bytes
        previous = merkle.leaf_hash(leaf_bytes)
    stored = [Leaf.from_bytes(leaf).envelope for leaf in all_leaves(log)[11:]]
    assert stored == submitted


def test_leaf_time_never_decreases(log: Log, town: Town) -> None:
    start = town.now_ms + 60_000
    log.append([town.award("resident-1", "clean-pond")], now_ms=start)
    log.append(
        [town.award("resident-1", "clean-pond")], now_ms=start - 30_000
    )  # clock stepped back
    log.append(
        [town.award("resident-1", "clean-pond"), town.award("resident-2", "clean-pond")],
        now_ms=start + 5,
    )
    times = [Leaf.from_bytes(leaf).time for leaf in all_leaves(log)[11:]]
    assert times == [start, start, start + 5, start + 5]


def test_resubmitting_an_envelope_returns_its_seq_and_writes_nothing(log: Log, town: Town) -> None:
    award = town.award("resident-1", "clean-pond")
    first = log.append([award], now_ms=town.now_ms)
    before = snapshot(log)
    again = log.append([award], now_ms=town.now_ms + 1000)
    assert again.seqs == first.seqs == (11,)
    assert again.checkpoint == first.checkpoint
    assert snapshot(log) == before
    assert log.checkpoint_at(12) == first.checkpoint

    # Mixed with new entries, and twice within one batch.
    fresh = town.award("resident-2", "clean-pond")
    mixed = log.append([fresh, award, fresh], now_ms=town.now_ms)
    assert mixed.seqs == (12, 11, 12)
    assert log.size == 13
    assert log.account("resident-1").earned == 5


def test_the_same_id_with_other_bytes_is_a_conflict(log: Log, town: Town) -> None:
    award = town.award("resident-1", "clean-pond")
    log.append([award], now_ms=town.now_ms)
    changed = town.award("resident-1", "epidemic-duty", entry_id=_id_of(award))
    assert changed != award
    before = snapshot(log)
    with pytest.raises(BatchError) as refused:
        log.append([town.award("resident-2", "clean-pond"), changed], now_ms=town.now_ms)
    assert refused.value.index == 1
    assert isinstance(refused.value.cause, ConflictError)
    assert "seq 11" in str(refused.value)
    assert snapshot(log) == before

    # Within one batch too.
    twin_id = town.next_id()
    twins = [
        town.award("resident-2", "clean-pond", entry_id=twin_id),
        town.award("resident-2", "litter", entry_id=twin_id),
    ]
    with pytest.raises(BatchError) as refused:
        log.append(twins, now_ms=town.now_ms)
    assert refused.value.index == 1
    assert isinstance(refused.value.cause, ConflictError)
    assert snapshot(log) == before


def _id_of(envelope: bytes) -> bytes:
    return decode_body(Envelope.from_bytes(envelope).body).id


def _elsewhere(town: Town) -> bytes:
    other = dataclasses.replace(town, origin="elsewhere.example/log")
    return other.award("resident-1", "clean-pond")


#: name -> (make the bad envelope, expected cause type, expected RuleViolation check)
BAD_ENVELOPES: dict[str, tuple[Callable[[Town], bytes], type[Exception], str | None]] = {
    "bad signature": (
        lambda town: corrupt_signature(town.award("resident-1", "clean-pond")),
        RuleViolation,
        "signature",
    ),
    "bad council signature": (
        lambda town: corrupt_signature(town.award("resident-1", "mediate-dispute"), 1),
        RuleViolation,
        "signature",
    ),
    "unknown rule": (
        lambda town: town.award("resident-1", "no-such-rule"),
        RuleViolation,
        "rule-inactive",
    ),
    "overdraw": (lambda town: town.redeem("resident-1", 10_000), RuleViolation, "overdraw"),
    "wrong log": (_elsewhere, RuleViolation, "log"),
    "future at": (
        lambda town: town.award("resident-1", "clean-pond", at=town.now_ms + MAX_FUTURE_MS + 1),
        RuleViolation,
        "future",
    ),
    "unregistered signer": (
        lambda town: town.award("resident-1", "clean-pond", signers=[SigningKey.generate()]),
        RuleViolation,
        "signer-unknown",
    ),
    "wrong role": (
        lambda town: town.award("resident-1", "clean-pond", signers=[town.cashier]),
        RuleViolation,
        "signer-role",
    ),
    "no quorum": (
        lambda town: town.award("resident-1", "mediate-dispute", signers=[town.council[0]]),
        RuleViolation,
        "quorum",
    ),
    "second genesis": (lambda town: town.genesis(), RuleViolation, "genesis"),
    "not msgpack": (lambda town: b"\xc1", FormatError, None),
    "oversized": (
        lambda town: town.set_rule(RuleSpec("big", "x" * 70_000, "m", 5)),
        FormatError,
        None,
    ),
}


@pytest.mark.parametrize("decoded", [False, True], ids=["bytes", "decoded-first"])
@pytest.mark.parametrize("name", list(BAD_ENVELOPES))
def test_one_bad_envelope_refuses_the_whole_batch(
    log: Log, town: Town, name: str, decoded: bool
) -> None:
    make_bad, cause_type, check = BAD_ENVELOPES[name]
    log.append([town.award("resident-1", "epidemic-duty", qty=3)], now_ms=town.now_ms)
    before = snapshot(log)
    good = [
        town.award("resident-2", "clean-pond"),
        town.redeem("resident-1", 10),
    ]
    after = [town.award("resident-1", "burn-straw"), town.award("resident-2", "clean-pond")]
    batch: list[Incoming] = [*good, make_bad(town), *after]
    if decoded:  # as the node's Submit hands it over: the same refusal, in the same words
        batch = decode_each([item for item in batch if isinstance(item, bytes)])
    with pytest.raises(BatchError) as refused:
        log.append(batch, now_ms=town.now_ms)
    assert refused.value.index == 2
    assert isinstance(refused.value.cause, cause_type)
    if check is not None:
        assert isinstance(refused.value.cause, RuleViolation)
        assert refused.value.cause.check == check
    assert str(refused.value).startswith("envelope 2: ")
    assert snapshot(log) == before
    # Nothing of the batch was recorded: its good entries go in as new ones.
    assert log.append([*good, *after], now_ms=town.now_ms).seqs == (12, 13, 14, 15)


def test_envelopes_decoded_first_are_appended_as_their_bytes(log: Log, town: Town) -> None:
    batch = [town.award(f"resident-{n}", "clean-pond") for n in range(3)]
    undecodable = b"\x92\xc4\x01"  # an envelope cut short
    incoming = decode_each([batch[0], undecodable, batch[1], batch[2]])
    assert incoming[1] == undecodable  # left to the log, which names it
    decoded = [item for item in incoming if isinstance(item, Submitted)]
    assert [item.raw for item in decoded] == batch
    assert [item.body for item in decoded] == [
        decode_body(Envelope.from_bytes(raw).body) for raw in batch
    ]
    with pytest.raises(BatchError) as refused:
        log.append(incoming, now_ms=town.now_ms)
    assert refused.value.index == 1 and isinstance(refused.value.cause, FormatError)
    seqs = log.append(decoded, now_ms=town.now_ms).seqs
    assert [Leaf.from_bytes(leaf_at(log, seq)).envelope for seq in seqs] == batch
    # Resubmitted, decoded or not, they are recognised by their bytes.
    assert log.append(decode_each(batch), now_ms=town.now_ms).seqs == seqs


def test_a_bad_signature_deep_in_a_large_batch_is_found(log: Log, town: Town) -> None:
    batch = [town.award(f"resident-{n}", "clean-pond") for n in range(60)]
    batch[41] = corrupt_signature(batch[41])
    before = snapshot(log)
    with pytest.raises(BatchError) as refused:
        log.append(batch, now_ms=town.now_ms)
    assert refused.value.index == 41
    assert isinstance(refused.value.cause, RuleViolation)
    assert refused.value.cause.check == "signature"
    assert snapshot(log) == before
    del batch[41]
    assert log.append(batch, now_ms=town.now_ms).seqs == tuple(range(11, 70))


def test_keys_registered_in_a_batch_sign_later_entries_of_it(log: Log, town: Town) -> None:
    newcomer = SigningKey.generate()
    batch = [
        town.add_key(newcomer, "grid-chen", ["grid"]),
        *[town.award(f"resident-{n}", "clean-pond", signers=[newcomer]) for n in range(6)],
    ]
    assert log.append(batch, now_ms=town.now_ms).seqs == tuple(range(11, 18))

    revoked_then_used = [
        town.revoke_key(newcomer),
        town.award("resident-1", "clean-pond", signers=[newcomer]),
    ]
    with pytest.raises(BatchError) as refused:
        log.append(revoked_then_used, now_ms=town.now_ms)
    assert refused.value.index == 1
    assert isinstance(refused.value.cause, RuleViolation)
    assert refused.value.cause.check == "signer-revoked"


def test_an_empty_batch_changes_nothing(log: Log, town: Town) -> None:
    before = snapshot(log)
    result = log.append([], now_ms=town.now_ms)
    assert result.seqs == ()
    assert result.checkpoint == log.checkpoint()
    assert snapshot(log) == before


def test_concurrent_appends_get_distinct_seqs(log: Log, town: Town) -> None:
    lock = threading.Lock()
    seqs: list[int] = []
    batches = [
        [town.award(f"resident-{worker}", "clean-pond") for _ in range(3)]
        for worker in range(4)
        for _ in range(5)
    ]
    failures: list[BaseException] = []

    def submit(my_batches: list[list[bytes]]) -> None:
        try:
            for batch in my_batches:
                result = log.append(batch, now_ms=town.now_ms)
                with lock:
                    seqs.extend(result.seqs)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=submit, args=(batches[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(seqs) == list(range(11, 71))
    assert log.size == 71
    assert log.checkpoint().root == merkle.root_of(
        [merkle.leaf_hash(leaf) for leaf in all_leaves(log)]
    )


# ---------------------------------------------------------------------------
# Reading: leaves, proofs, checkpoints


@pytest.fixture
def forty(log: Log, town: Town) -> Log:
    """A log of 40 entries appended in batches of growing size."""
    batch_size = 1
    while log.size < 40:
        count = min(batch_size, 40 - log.size)
        log.append(
            [town.award(f"resident-{n % 3}", "clean-pond") for n in range(count)],
            now_ms=town.now_ms,
        )
        batch_size += 1
    return log


def test_inclusion_proofs_verify_for_every_seq_and_size(forty: Log) -> None:
    leaf_hashes = [merkle.leaf_hash(leaf) for leaf in all_leaves(forty)]
    for size in range(1, 41):
        # The root hashed from the leaves: the proofs come from the stored nodes.
        root = merkle.root_of(leaf_hashes[:size])
        for seq in range(size):
            proof = forty.inclusion_proof(seq, size)
            merkle.verify_inclusion(leaf_hashes[seq], seq, size, proof, root)


def test_consistency_proofs_verify_for_every_pair_of_sizes(forty: Log) -> None:
    leaf_hashes = [merkle.leaf_hash(leaf) for leaf in all_leaves(forty)]
    roots = [merkle.root_of(leaf_hashes[:size]) for size in range(41)]
    assert roots[0] == merkle.EMPTY_ROOT
    for second in range(41):
        for first in range(second + 1):
            proof = forty.consistency_proof(first, second)
            merkle.verify_consistency(first, second, proof, roots[first], roots[second])


def test_the_latest_checkpoint_is_verified_once_and_kept(log: Log, town: Town) -> None:
    first = log.checkpoint()
    assert log.checkpoint() is first  # the same stored note: not verified again
    result = log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
    assert log.checkpoint() is result.checkpoint


def test_a_stored_checkpoint_that_does_not_verify_is_refused(log: Log) -> None:
    data, size = log.data_dir, log.size
    log.close()
    with raw_tables(data / ENV_DIR_NAME) as tables:
        note = (tables.get("meta", META_CHECKPOINT) or b"").decode("utf-8")
        damaged = note.replace(f"\n{size}\n", f"\n{size + 1}\n")
        tables.put("meta", META_CHECKPOINT, damaged.encode("utf-8"))
    with (
        Log.open(data, readonly=True) as reopened,
        pytest.raises(IntegrityError, match="does not verify with the log's own key"),
    ):
        reopened.checkpoint()


def test_every_committed_size_has_its_checkpoint(forty: Log) -> None:
    committed = [1, 11, 12, 14, 17, 21, 26, 32, 39, 40]
    leaf_hashes = [merkle.leaf_hash(leaf) for leaf in all_leaves(forty)]
    for size in range(45):
        checkpoint = forty.checkpoint_at(size)
        if size not in committed:
            assert checkpoint is None
            continue
        assert checkpoint is not None
        opened = open_checkpoint(checkpoint.note, forty.verifier_key)
        assert opened.size == size
        assert opened.root == merkle.root_of(leaf_hashes[:size])


def test_out_of_range_reads_are_refused(forty: Log) -> None:
    with pytest.raises(StoreError, match="not in the log"):
        forty.leaves(30, 41)
    with pytest.raises(StoreError, match="not in the log"):
        forty.leaves(5, 4)
    with pytest.raises(StoreError, match=r"entries \[40, 41\) are not in the log"):
        leaf_at(forty, 40)
    with pytest.raises(ProofError):
        forty.inclusion_proof(3, 41)
    with pytest.raises(ProofError):
        forty.inclusion_proof(40, 40)
    with pytest.raises(ProofError):
        forty.consistency_proof(5, 41)
    with pytest.raises(ProofError):
        forty.consistency_proof(6, 5)
    assert forty.checkpoint_at(41) is None


def test_leaves_stream_lazily_from_one_snapshot(forty: Log, town: Town) -> None:
    stream = forty.leaves(0, 40)
    first = next(stream)
    forty.append([town.award("resident-9", "clean-pond")], now_ms=town.now_ms)
    rest = list(stream)
    assert [seq for seq, _ in [first, *rest]] == list(range(40))
    assert forty.size == 41


# ---------------------------------------------------------------------------
# Accounts


def test_account_views_match_a_replay_of_the_log(log: Log, town: Town) -> None:
    log.append(
        [
            town.award("resident-1", "epidemic-duty", qty=5),
            town.award("resident-1", "mediate-dispute"),
            town.award("resident-2", "burn-straw"),
            town.award("resident-3", "clean-pond", qty=2),
        ],
        now_ms=town.now_ms,
    )  # seqs 11..14
    log.append([town.redeem("resident-1", 30), town.objection(13)], now_ms=town.now_ms)
    log.append([town.reverse(13), town.reverse(15)], now_ms=town.now_ms)  # undo 13, 15
    log.append([town.award("resident-2", "elder-neglect")], now_ms=town.now_ms)

    replayed = replay(log)
    assert replayed.balances  # the replay saw the accounts
    for account in ("resident-1", "resident-2", "resident-3", "resident-4"):
        view = log.account(account)
        balance = replayed.balance(account)
        score = WENDENG_CONFIG.base + balance.earned
        assert (view.earned, view.redeemed, view.spendable) == (
            balance.earned,
            balance.redeemed,
            balance.spendable,
        )
        assert view.score == score
        assert view.grade == WENDENG_CONFIG.grade_of(score)
        assert view.checkpoint == log.checkpoint().note
        # Its awards and redemptions: what it touched, less objections and reversals.
        targets = {
            seq: replayed.targets[seq]
            for seq in replayed.account_entries.get(account, [])
            if seq in replayed.targets
        }
        assert [(entry.seq, entry.points, entry.reversed_by) for entry in view.entries] == [
            (seq, target.points, target.reversed_by) for seq, target in targets.items()
        ]

    resident_2 = log.account("resident-2")
    assert (resident_2.earned, resident_2.score, resident_2.grade) == (-100, 900, "B")
    assert [(entry.seq, entry.kind, entry.rule) for entry in resident_2.entries] == [
        (13, "award", "burn-straw"),
        (19, "award", "elder-neglect"),
    ]
    assert resident_2.entries[0].reversed_by == 17
    assert log.account("resident-4").grade == "A"  # never seen: the base score
    assert log.account("resident-4").entries == ()


def test_account_ids_are_checked(log: Log) -> None:
    with pytest.raises(FormatError, match="not valid"):
        log.account("bad\x00id")
    with pytest.raises(FormatError, match="not valid"):
        log.account("")


# ---------------------------------------------------------------------------
# Another process reading; a full map


READER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from redlist.ledger import merkle
    from redlist.ledger.log import Log

    with Log.open(Path(sys.argv[1]), readonly=True) as log:
        size = log.size
        print(json.dumps({
            "size": size,
            "checkpoint": log.checkpoint().note,
            "root": merkle.root_of(
                [merkle.leaf_hash(leaf) for _, leaf in log.leaves(0, size)]
            ).hex(),
            "leaves": [leaf.hex() for _, leaf in log.leaves(0, size)],
        }))
    """
)


def read_in_another_process(data: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", READER, str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_another_process_reads_while_the_writer_is_open(log: Log, town: Town) -> None:
    log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
    seen = read_in_another_process(log.data_dir)
    assert seen["size"] == 12
    assert seen["checkpoint"] == log.checkpoint().note
    assert seen["root"] == signed_root(log).hex()
    assert seen["leaves"] == [leaf.hex() for leaf in all_leaves(log)]

    log.append([town.award("resident-2", "clean-pond")], now_ms=town.now_ms)
    seen = read_in_another_process(log.data_dir)
    assert seen["size"] == 13
    assert seen["checkpoint"] == log.checkpoint().note


def test_a_second_open_in_the_same_process_is_refused(log: Log) -> None:
    with pytest.raises(StoreError, match="already open"):
        Log.open(log.data_dir, readonly=True)


def test_a_full_map_refuses_the_batch_and_a_bigger_map_continues(
    tmp_path: Path, town: Town
) -> None:
    data = tmp_path / "data"
    small = create_log(data, town, setup=True, map_size=256 << 10)

    def big(number: int) -> list[bytes]:
        """A rule with a 20,000-character title (free texts are off the log) and an award."""
        rule = RuleSpec(f"big-{number}", "x" * 20_000, "m", 5)
        return [town.set_rule(rule), town.award("resident-1", "clean-pond")]

    with pytest.raises(StoreError, match=r"storage is full \(map size 262144 bytes\)"):
        for number in range(100):
            before = snapshot(small)
            small.append(big(number), now_ms=town.now_ms)
    assert snapshot(small) == before  # the refused batch left nothing
    size = small.size
    small.close()

    with Log.open(data, map_size=1 << 26) as bigger:
        assert bigger.size == size
        result = bigger.append(
            [envelope for number in range(100, 105) for envelope in big(number)],
            now_ms=town.now_ms,
        )
        assert result.seqs == tuple(range(size, size + 10))
        leaf_hashes = [merkle.leaf_hash(leaf) for leaf in all_leaves(bigger)]
        assert result.checkpoint.root == merkle.root_of(leaf_hashes)
        awards = (size - 11) // 2 + 5
        assert bigger.account("resident-1").earned == 5 * awards
        assert replay(bigger).balance("resident-1").earned == 5 * awards
