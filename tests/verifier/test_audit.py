"""The Auditor as a state machine over bytes: results, ordering of failures, chunking."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.verifier.bundles import LogBuilder, new_log, replay, standard_log

from redlist.ledger import codec, merkle
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import Award, Leaf
from redlist.ledger.errors import VerificationError
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.sigschedule import SignatureScheduler, check_leaves
from redlist.ledger.sigworkers import verify_here
from redlist.ledger.state import Balance
from redlist.verifier.audit import Auditor
from redlist.verifier.results import CHECKS, AuditResult, TrustedHead


def run(
    log: LogBuilder,
    *,
    start: int = 0,
    checkpoint: str | None = None,
    chunk_size: int = 512,
    account: str | None = None,
    trusted: tuple[TrustedHead, ...] = (),
    workers: int | None = None,
) -> AuditResult:
    left = log.left(start) if start else None
    text = log.checkpoint() if checkpoint is None else checkpoint
    auditor = Auditor(
        log.town.log_signer.verifier(), keep_statements_for=account, left=left, trusted=trusted
    )
    auditor.check_checkpoint(text)
    with SignatureScheduler(workers) as scheduler:
        check_leaves(auditor, log.leaves[start:], scheduler, chunk_size=chunk_size)
    return auditor.finish(text)


def failure(log: LogBuilder, **options: object) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        run(log, **options)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 512])
def test_balances_match_an_independent_replay(chunk_size: int) -> None:
    log = standard_log()
    result = run(log, chunk_size=chunk_size, workers=2)
    reference = replay(log)
    config = reference.config()
    assert config is not None
    assert result.balances_recomputed
    assert result.tree_size == len(log.leaves) == result.entries
    assert result.root == log.root()
    assert set(result.accounts) == set(reference.balances) == {"res-001", "res-002", "res-003"}
    for account, balance in reference.balances.items():
        summary = result.accounts[account]
        assert summary.score == config.base + balance.earned
        assert summary.spendable == balance.spendable
        assert summary.redeemed == balance.redeemed
        assert summary.grade == config.grade_of(summary.score)
    assert result.staff_keys == 5
    assert result.rules == 6
    # six rule entries carry three signatures each (the admin and the council: governance),
    # two council awards two each
    assert result.signatures_checked == 34


def test_the_accounts_of_a_result_read_as_a_sorted_mapping_fixed_at_the_end() -> None:
    log = standard_log()
    auditor = Auditor(log.town.log_signer.verifier())
    auditor.check_checkpoint(log.checkpoint())
    for leaf in log.leaves:
        auditor.feed(leaf)
    result = auditor.finish(log.checkpoint())
    accounts = result.accounts
    assert list(accounts) == sorted(accounts) == ["res-001", "res-002", "res-003"]
    assert "res-002" in accounts and "res-009" not in accounts and len(accounts) == 3
    as_dict = dict(accounts.items())
    assert accounts == as_dict and as_dict == accounts  # compares as the dict it replaces
    with pytest.raises(KeyError):
        accounts["res-009"]
    # The state moving on (an audit resuming from it) leaves the result as it was.
    state = auditor.resume_point().state
    state.put_balance("res-001", Balance(10**6, 0, 99))
    state.put_balance("res-004", state.balance("res-004"))
    assert dict(result.accounts.items()) == as_dict and "res-004" not in result.accounts


def test_known_balances_of_the_standard_log() -> None:
    accounts = run(standard_log()).accounts
    assert (accounts["res-001"].score, accounts["res-001"].grade) == (1035, "AA")
    assert (accounts["res-002"].score, accounts["res-002"].spendable) == (1065, 40)
    assert (accounts["res-002"].redeemed, accounts["res-003"].score) == (25, 980)


def test_statement_lists_every_entry_of_the_account_with_running_totals() -> None:
    log = standard_log()
    result = run(log, account="res-003")
    assert result.statement is not None
    lines = [(line.seq, line.kind, line.rule, line.points, line.score) for line in result.statement]
    assert lines == [
        (14, "award", "burn-straw", -20, 980),
        (15, "award", "litter", -10, 970),
        (17, "objection", "litter", 0, 970),
        (18, "reverse", "litter", 10, 980),
    ]
    assert result.statement[3].signers == ("council-li", "council-zhao")
    assert result.statement[3].target == 15
    assert run(log).statement is None
    assert run(log, account="nobody").statement == ()


def test_redemption_lines_carry_the_redeemed_points() -> None:
    result = run(standard_log(), account="res-002")
    assert result.statement is not None
    redeem = [line for line in result.statement if line.kind == "redeem"]
    assert [(line.redeemed, line.points, line.spendable) for line in redeem] == [(25, 0, 35)]


def test_empty_log_verifies() -> None:
    log = new_log()
    log.leaves.clear()
    result = run(log)
    assert result.tree_size == 0
    assert result.root == merkle.EMPTY_ROOT
    assert result.accounts == {}


def test_forged_checkpoint_fails_before_any_leaf() -> None:
    log = standard_log()
    forger = NoteSigner(log.town.origin, SigningKey.from_seed(b"f" * 32))
    # Verified, but with the forger's key: the audit takes only its own log key's.
    forged = sign_checkpoint(Checkpoint(log.town.origin, len(log.leaves), log.root()), forger)
    auditor = Auditor(log.town.log_signer.verifier())
    with pytest.raises(VerificationError) as caught:
        auditor.check_checkpoint(forged)
    assert (caught.value.seq, caught.value.check) == (None, "checkpoint")
    assert forger.verifier().describe() in caught.value.message
    assert "not with this log's key" in caught.value.message
    with pytest.raises(VerificationError):  # a spent auditor refuses everything
        auditor.feed(log.leaves[0])


def test_checkpoint_over_other_leaves_fails_at_the_root() -> None:
    log = standard_log()
    wrong = log.checkpoint(root=bytes(32))
    error = failure(log, checkpoint=wrong)
    # The chain pins every leaf but the newest, so the newest is the one named.
    assert (error.seq, error.check) == (len(log.leaves) - 1, "root")


def test_a_changed_time_in_the_newest_leaf_is_named() -> None:
    log = standard_log()
    checkpoint = log.checkpoint()
    last = Leaf.from_bytes(log.leaves[-1])
    log.leaves[-1] = Leaf(last.seq, last.time + 1, last.prev, last.envelope).to_bytes()
    error = failure(log, checkpoint=checkpoint)
    assert (error.seq, error.check) == (len(log.leaves) - 1, "root")


def test_extra_leaves_are_caught_as_they_arrive() -> None:
    log = standard_log()
    short = log.checkpoint(size=15)
    error = failure(log, checkpoint=short)
    assert (error.seq, error.check) == (15, "size")


def test_missing_leaves_name_the_first_missing_seq() -> None:
    log = standard_log()
    text = log.checkpoint()
    auditor = Auditor(log.town.log_signer.verifier())
    auditor.check_checkpoint(text)
    for leaf in log.leaves[:-3]:
        auditor.feed(leaf)
    with pytest.raises(VerificationError) as caught:
        auditor.finish(text)
    assert (caught.value.seq, caught.value.check) == (len(log.leaves) - 3, "size")


@pytest.mark.parametrize("chunk_size", [1, 4, 512])
def test_the_first_bad_seq_is_named_even_when_a_later_one_breaks_structure(
    chunk_size: int,
) -> None:
    log = new_log()
    town = log.town
    log.extend(town.setup())
    log.append(town.award("res-001", "no-such-rule"))  # seq 11: semantics
    log.append(town.award("res-001", "clean-pond"), prev=bytes(32))  # seq 12: chain
    error = failure(log, chunk_size=chunk_size)
    assert (error.seq, error.check) == (11, "rule-inactive")


def test_a_reused_signature_on_another_body_is_verified_for_real() -> None:
    # The precomputed results are looked up by signature; the lookup must not let a
    # signature that verified over one body stand for a different body.
    log = new_log()
    town = log.town
    log.extend(town.setup())
    good = town.award("res-001", "clean-pond")
    log.append(good)
    _, signatures = codec.decode(good)
    other = Award(
        town.origin, town.next_id(), town.now_ms, "res-001", "epidemic-duty", date=town.day()
    )
    log.append(codec.encode([other.to_bytes(), signatures]))
    error = failure(log)
    assert (error.seq, error.check) == (12, "signature")


def test_checks_are_documented() -> None:
    for check in ("format", "seq", "time", "chain", "root", "size", "checkpoint", "rollback"):
        assert CHECKS[check]
    assert "overdraw" in CHECKS  # the points rules are included


# -- bundles that start after the genesis ---------------------------------------


@pytest.mark.parametrize("start", [1, 6, 7, 11, 20])
def test_partial_audit_checks_structure_and_root_but_not_balances(start: int) -> None:
    log = standard_log()
    result = run(log, start=start)
    assert result.start == start
    assert result.entries == len(log.leaves) - start
    assert not result.balances_recomputed
    assert result.accounts == {}
    assert result.first_prev_checked == (start % 2 == 1)


def test_partial_audit_checks_the_first_link_when_left_ends_with_that_leaf() -> None:
    log = standard_log()
    leaf = Leaf.from_bytes(log.leaves[7])
    log.leaves[7] = Leaf(leaf.seq, leaf.time, bytes(32), leaf.envelope).to_bytes()
    error = failure(log, start=7, checkpoint=log.checkpoint())
    assert (error.seq, error.check) == (7, "chain")


def test_partial_audit_refuses_an_entry_for_another_log() -> None:
    log = standard_log()
    town = log.town
    body = Award(
        "elsewhere.example/log",
        town.next_id(),
        town.now_ms,
        "res-001",
        "clean-pond",
        date=town.day(),
    )
    log.append(town.sign(body, town.grid))
    error = failure(log, start=12)
    assert (error.seq, error.check) == (len(log.leaves) - 1, "log")


def test_partial_audit_with_wrong_left_fails_at_the_root() -> None:
    log = standard_log()
    text = log.checkpoint()
    wrong_left = merkle.CompactRange.from_hashes(8, [bytes(32)])
    auditor = Auditor(log.town.log_signer.verifier(), left=wrong_left)
    auditor.check_checkpoint(text)
    for leaf in log.leaves[8:]:
        auditor.feed(leaf)
    with pytest.raises(VerificationError) as caught:
        auditor.finish(text)
    assert (caught.value.seq, caught.value.check) == (None, "root")


# -- trusted heads (state file, previous checkpoint) ------------------------------


def _head(log: LogBuilder, size: int, source: str = "the state file") -> TrustedHead:
    return TrustedHead(size, log.root(size), source)


@pytest.mark.parametrize("size", [0, 1, 5, 16, 20])
def test_log_extending_a_trusted_head_verifies(size: int) -> None:
    log = standard_log()
    assert run(log, trusted=(_head(log, size),)).trusted_heads == (_head(log, size),)


def test_head_with_another_root_is_a_rewritten_history() -> None:
    log = standard_log()
    head = TrustedHead(12, bytes(32), "the state file")
    error = failure(log, trusted=(head,))
    assert (error.seq, error.check) == (None, "consistency")


def test_head_larger_than_the_checkpoint_is_a_rollback() -> None:
    log = standard_log()
    error = failure(log, trusted=(_head(log, 20),), checkpoint=log.checkpoint(size=19))
    assert error.check == "rollback"
    # The same from a bundle's own previous checkpoint is an inconsistency of the bundle.
    head = _head(log, 20, "previous-checkpoint")
    assert failure(log, trusted=(head,), checkpoint=log.checkpoint(size=19)).check == (
        "consistency"
    )


def test_partial_audit_matches_a_head_at_its_start_from_left_alone() -> None:
    log = standard_log()
    assert run(log, start=9, trusted=(_head(log, 9),)).entries == len(log.leaves) - 9
    error = failure(log, start=9, trusted=(TrustedHead(9, bytes(32), "the state file"),))
    assert error.check == "consistency"


def test_partial_audit_cannot_prove_a_head_before_its_start() -> None:
    log = standard_log()
    error = failure(log, start=9, trusted=(_head(log, 4),))
    assert (error.seq, error.check) == (None, "consistency")
    assert "entries in between" in error.message


def test_a_callers_executor_is_used_and_left_running() -> None:
    log = standard_log()
    text = log.checkpoint()
    with ThreadPoolExecutor(max_workers=3) as executor:
        auditor = Auditor(log.town.log_signer.verifier())
        auditor.check_checkpoint(text)
        with SignatureScheduler(3, executor=executor) as scheduler:
            check_leaves(auditor, log.leaves, scheduler)
        result = auditor.finish(text)
        assert result.signatures_checked == 34
        assert executor.submit(len, b"still running").result() == 13
    # What a process pool needs: the work function and its arguments pickle.
    triples = [(b"p" * 32, b"body", b"s" * 64)]
    assert pickle.loads(pickle.dumps((verify_here, triples))) == (verify_here, triples)  # noqa: S301
