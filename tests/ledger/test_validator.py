"""The one validator: a pure state machine over leaf bytes, shared by the node's append and
the auditor, so that a node refuses exactly what an auditor refuses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.builders import RuleSpec, Town, corrupt_signature, create_log
from tests.verifier.bundles import LogBuilder, standard_log

from redlist.ledger import crypto, merkle
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import ZERO_HASH, Envelope, Leaf, decode_body
from redlist.ledger.errors import BatchError, RuleViolation, VerificationError
from redlist.ledger.state import MemoryState
from redlist.ledger.validator import CHECKS, KeyLookahead, LogValidator, Verdicts, read_leaf
from redlist.verifier.audit import Auditor

STRANGER = SigningKey.from_seed(b"s" * 32)
#: A rule with both caps; ``_good`` awards res-001 qty 3 of it.
PATROL = RuleSpec("patrol", "Night patrol", "public-safety", 4, max_qty=3, max_per_month=4)

#: Entries a node must refuse, each after the town's genesis, setup and three awards.
REFUSED: dict[str, Callable[[Town], bytes]] = {
    "forged signature": lambda town: corrupt_signature(town.award("res-001", "clean-pond")),
    "unknown signer": lambda town: town.award("res-001", "clean-pond", signers=[STRANGER]),
    "wrong role": lambda town: town.award("res-001", "clean-pond", signers=[town.cashier]),
    "no quorum": lambda town: town.award("res-001", "mediate-dispute", signers=[town.grid]),
    "unknown rule": lambda town: town.award("res-001", "no-such-rule"),
    "overdraw": lambda town: town.redeem("res-001", 10_000),
    "second genesis": lambda town: town.genesis(),
    "other log": lambda town: Town.from_seed(b"other", "other.example/log").award("r", "x"),
    "objection to a rule": lambda town: town.objection(3),
    "future": lambda town: town.award("res-001", "clean-pond", at=town.now_ms + 10**9),
    "deed date after the day of at": lambda town: town.award(
        "res-001", "clean-pond", date=town.day(days_before=-1)
    ),
    "deed date 93 days back": lambda town: town.award(
        "res-001", "clean-pond", date=town.day(days_before=93)
    ),
    "qty over max_qty": lambda town: town.award("res-002", "patrol", 4),
    "qty over max_per_month": lambda town: town.award("res-001", "patrol", 2),
}


def _good(town: Town) -> list[bytes]:
    awards = [town.award(f"res-00{n}", "clean-pond") for n in range(1, 4)]
    return [*awards, town.set_rule(PATROL), town.award("res-001", "patrol", 3)]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_node_refuses_what_the_auditor_refuses_in_the_same_words(
    tmp_path: Path, case: str
) -> None:
    node_town = Town.from_seed(b"one-validator")
    with create_log(tmp_path / "data", node_town, setup=True) as log:
        log.append(_good(node_town), now_ms=node_town.now_ms)
        with pytest.raises(BatchError) as refused:
            log.append([REFUSED[case](node_town)], now_ms=node_town.now_ms)
        node_seq = log.size
    cause = refused.value.cause
    assert isinstance(cause, RuleViolation)

    audit_town = Town.from_seed(b"one-validator")
    built, now = LogBuilder(audit_town), audit_town.now_ms
    envelopes = [audit_town.genesis(), *audit_town.setup(), *_good(audit_town)]
    envelopes.append(REFUSED[case](audit_town))
    for envelope in envelopes:
        seq = built.append(envelope, time=now)
    auditor = Auditor(audit_town.log_signer.verifier())
    with pytest.raises(VerificationError) as failed:
        for leaf in built.leaves:
            auditor.feed(leaf)
    assert (failed.value.seq, failed.value.check, failed.value.message) == (
        seq,
        cause.check,
        cause.message,
    )
    assert seq == node_seq
    assert cause.check in CHECKS


def test_an_upper_case_account_is_malformed_for_the_node_and_the_auditor(tmp_path: Path) -> None:
    """Account ids are lower case in format v1: ``RES-001`` is not ``res-001``, it is no
    account at all, refused by the decoder on both sides with the same words."""
    node_town = Town.from_seed(b"one-validator")
    with create_log(tmp_path / "data", node_town, setup=True) as log:
        with pytest.raises(BatchError) as refused:
            log.append([node_town.award("RES-001", "clean-pond")], now_ms=node_town.now_ms)
        assert log.size == 11
    words = refused.value.cause.diagnostics()
    assert "account id 'RES-001' is not valid (lower-case letters" in words

    audit_town = Town.from_seed(b"one-validator")
    built = LogBuilder(audit_town)
    for envelope in [audit_town.genesis(), *audit_town.setup()]:
        built.append(envelope, time=audit_town.now_ms)
    seq = built.append(audit_town.award("RES-001", "clean-pond"), time=audit_town.now_ms)
    auditor = Auditor(audit_town.log_signer.verifier())
    with pytest.raises(VerificationError) as failed:
        for leaf in built.leaves:
            auditor.feed(leaf)
    assert (failed.value.seq, failed.value.check) == (seq, "format")
    assert failed.value.message == words


def test_append_makes_the_leaf_apply_accepts() -> None:
    built = standard_log()
    node = LogValidator(built.town.origin)
    auditor = LogValidator(built.town.origin)
    for seq, raw in enumerate(built.leaves):
        leaf = Leaf.from_bytes(raw)
        envelope = Envelope.from_bytes(leaf.envelope)
        made = node.append(leaf.envelope, envelope, decode_body(envelope.body), leaf.time)
        assert made == raw
        auditor.apply(read_leaf(made))
        assert node.size == auditor.size == seq + 1
        assert node.root() == auditor.root() == built.root(seq + 1)
    assert node.signatures_checked == auditor.signatures_checked == 34


def test_a_refused_leaf_changes_nothing_and_the_next_good_one_is_taken() -> None:
    built = standard_log()
    validator = LogValidator(built.town.origin)
    for raw in built.leaves[:-1]:
        validator.apply(read_leaf(raw))
    state = validator.state
    assert isinstance(state, MemoryState)
    before = (validator.size, validator.root(), validator.last_time, dict(state.balances))
    last = Leaf.from_bytes(built.leaves[-1])
    forged = Leaf(last.seq, last.time, last.prev, corrupt_signature(last.envelope)).to_bytes()
    with pytest.raises(RuleViolation) as refused:
        validator.apply(read_leaf(forged))
    assert (refused.value.seq, refused.value.check) == (last.seq, "signature")
    assert (validator.size, validator.root(), validator.last_time, state.balances) == before
    validator.apply(read_leaf(built.leaves[-1]))
    assert validator.root() == built.root()


@pytest.mark.parametrize(
    ("change", "check", "words"),
    [
        (lambda leaf: b"\xc1", "format", "the leaf cannot be read"),
        (lambda leaf: Leaf(leaf.seq + 1, leaf.time, leaf.prev, leaf.envelope), "seq", "says"),
        (lambda leaf: Leaf(leaf.seq, 0, leaf.prev, leaf.envelope), "time", "goes back"),
        (lambda leaf: Leaf(leaf.seq, leaf.time, bytes(32), leaf.envelope), "chain", "prev"),
        (lambda leaf: Leaf(leaf.seq, leaf.time, leaf.prev, b"\x90"), "format", "the envelope"),
    ],
)
def test_the_structural_checks_come_in_order(
    change: Callable[[Leaf], Leaf | bytes], check: str, words: str
) -> None:
    built = standard_log()
    validator = LogValidator(built.town.origin)
    for raw in built.leaves[:5]:
        validator.apply(read_leaf(raw))
    changed = change(Leaf.from_bytes(built.leaves[5]))
    raw = changed if isinstance(changed, bytes) else changed.to_bytes()
    reading = read_leaf(raw)  # reading never raises: the refusal waits for the leaf's turn
    with pytest.raises(RuleViolation) as refused:
        validator.apply(reading)
    assert (refused.value.seq, refused.value.check) == (5, check)
    assert words in refused.value.message


def test_a_partial_copy_checks_the_structure_and_the_log_name_only() -> None:
    built = standard_log()
    left = merkle.CompactRange()
    left.extend(merkle.leaf_hash(raw) for raw in built.leaves[:9])
    validator = LogValidator(built.town.origin, partial=True, tree=left, last_leaf_hash=None)
    for raw in built.leaves[9:]:
        assert validator.signatures(read_leaf(raw)) == []
        assert validator.apply(read_leaf(raw)) is None
    assert validator.root() == built.root()
    assert validator.signatures_checked == 0
    other = LogValidator("other.example/log", partial=True, tree=left, last_leaf_hash=None)
    with pytest.raises(RuleViolation) as refused:
        other.apply(read_leaf(built.leaves[9]))
    assert refused.value.check == "log"


def test_the_lookahead_learns_keys_from_the_entries_read() -> None:
    built = standard_log()
    validator = LogValidator(built.town.origin)
    wanted = [validator.signatures(read_leaf(raw)) for raw in built.leaves]
    # Every signature's key is known ahead: the genesis and key entries register them all.
    assert sum(len(triples) for triples in wanted) == 34
    assert all(crypto.verify_entry(*triple) for triples in wanted for triple in triples)
    stored_only = KeyLookahead(stored=lambda key_id: None)
    award = Envelope.from_bytes(Leaf.from_bytes(built.leaves[-1]).envelope)
    assert stored_only.triples(award, decode_body(award.body)) == []


def test_verdicts_count_only_for_what_they_were_computed_for() -> None:
    key = SigningKey.from_seed(bytes(32))
    body = b"body"
    signature = crypto.sign_entry(key, body)
    verdicts = Verdicts()
    verdicts.add([(key.public, body, signature)], [False])  # a verdict, believed as given
    assert verdicts(key.public, body, signature) is False
    assert verdicts(key.public, b"other body", signature) is False  # verified on the spot
    fresh = Verdicts()
    fresh.add([(key.public, body, signature)], [False, True])  # wrong count: ignored
    fresh.add([(key.public, body, signature)], None)
    assert fresh(key.public, body, signature) is True


def test_a_new_validator_starts_at_the_empty_tree() -> None:
    validator = LogValidator("town.example/log")
    assert (validator.size, validator.last_leaf_hash, validator.root()) == (
        0,
        ZERO_HASH,
        merkle.EMPTY_ROOT,
    )
    with pytest.raises(ValueError, match="partial"):
        LogValidator("town.example/log", partial=True, state=MemoryState())
