"""``redlist-verify`` end to end, in-process: exit codes, JSON, refusals, tampering, state."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders import STANDARD_RULES, RuleSpec, Town, corrupt_signature
from tests.verifier.bundles import LogBuilder, new_log, replay, standard_log

from redlist.ledger import bundle, codec
from redlist.ledger.cores import most_workers
from redlist.ledger.crypto import ENTRY_DOMAIN, SigningKey, key_id
from redlist.ledger.entry import Award, KeyChange, Leaf
from redlist.ledger.errors import FormatError, VerificationError
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.points import CHECKS
from redlist.verifier.cli import main
from redlist.verifier.source import BundleSource, audit


def vkey(log: LogBuilder) -> str:
    return log.town.log_signer.verifier().encode()


def verify_json(
    capsys: pytest.CaptureFixture[str], directory: Path, *args: str, key: str | None
) -> tuple[int, dict[str, Any]]:
    argv = ["bundle", str(directory), "--json", *args]
    if key is not None:
        argv += ["--log-key", key]
    status = main(argv)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1, out  # exactly one JSON object
    return status, json.loads(lines[0])


# -- a good bundle ----------------------------------------------------------------


def test_good_bundle_verifies_and_json_balances_match_a_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert status == 0
    assert value["ok"] is True
    assert value["tree_size"] == len(log.leaves)
    assert value["root"] == log.root().hex()
    assert "error" not in value
    reference = replay(log)
    config = reference.config()
    assert config is not None
    expected = {
        account: {
            "score": config.base + balance.earned,
            "spendable": balance.spendable,
            "redeemed": balance.redeemed,
            "grade": config.grade_of(config.base + balance.earned),
        }
        for account, balance in reference.balances.items()
    }
    assert value["accounts"] == expected


def test_human_report_says_what_was_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    assert main(["bundle", str(directory), "--log-key", vkey(log)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no progress bar when stderr is not a terminal
    assert "Checked 20 entries, 5 staff keys, 6 rules; every signature valid" in out
    assert f"signed by {log.town.origin}" in out
    assert "AAA" in out and "total" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["bundle", str(directory), "--log-key", vkey(log), "--json"]) == 0
    assert "0/20 entries" in terminal.getvalue()
    assert json.loads(capsys.readouterr().out)["ok"] is True  # stdout stays clean


def test_account_statement_in_the_town_time_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    assert main(["bundle", str(directory), "--log-key", vkey(log), "--account", "res-003"]) == 0
    out = capsys.readouterr().out
    assert "Statement of account res-003" in out
    assert "Asia/Shanghai" in out
    # Entry 14 was integrated at 2026-01-01T14:00Z (13 hours after the town's start),
    # which is 22:00 in Shanghai.
    assert "2026-01-01 22:00" in out
    assert "council-li, council-zhao" in out
    assert "Now: score 980 (grade A)" in out


def test_account_statement_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    status, value = verify_json(capsys, directory, "--account", "res-001", key=vkey(log))
    assert status == 0
    assert [line["seq"] for line in value["statement"]] == [11, 12]
    assert value["statement"][-1]["score"] == 1035


def test_partial_bundle_says_balances_were_not_recomputed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle", start=10, previous=10)
    assert main(["bundle", str(directory), "--log-key", vkey(log), "--structure-only"]) == 0
    out = capsys.readouterr().out
    assert "balances were NOT recomputed" in out
    assert "could not be checked" in out  # start is even: the first link is not checkable
    status, value = verify_json(capsys, directory, "--structure-only", key=vkey(log))
    assert (status, value["balances_recomputed"], value["accounts"]) == (0, False, {})


# -- every refusal of the points rules, from a bundle -----------------------------

OTHER = SigningKey.from_seed(b"o" * 32)


def _setup() -> LogBuilder:
    log = new_log()
    log.extend(log.town.setup())
    return log


def _unknown_signer(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "clean-pond", signers=[OTHER]))


def _revoked_signer(log: LogBuilder, town: Town) -> None:
    log.append(town.revoke_key(town.grid))
    log.append(town.award("res-001", "clean-pond"))


def _bad_signature(log: LogBuilder, town: Town) -> None:
    log.append(corrupt_signature(town.award("res-001", "clean-pond")))


def _wrong_role(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "clean-pond", signers=[town.cashier]))


def _retired_rule(log: LogBuilder, town: Town) -> None:
    log.append(town.retire_rule("clean-pond"))
    log.append(town.award("res-001", "clean-pond"))


def _unknown_rule(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "sing-loudly"))


def _missing_quorum(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "mediate-dispute", signers=[town.council[0]]))


def _reverse_without_quorum(log: LogBuilder, town: Town) -> None:
    target = log.append(town.award("res-001", "clean-pond"))
    log.append(town.reverse(target, signers=[town.council[1]]))


def _overdraw(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "clean-pond"))  # 5 points
    log.append(town.redeem("res-001", 6))


def _award_beyond_range(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "clean-pond", 2**60))  # 5 × 2^60 points


def _double_reverse(log: LogBuilder, town: Town) -> None:
    target = log.append(town.award("res-001", "clean-pond"))
    log.append(town.reverse(target))
    log.append(town.reverse(target))


def _wrong_log(log: LogBuilder, town: Town) -> None:
    body = Award(
        "zhucheng.example/log",
        town.next_id(),
        town.now_ms,
        "res-001",
        "clean-pond",
        date=town.day(),
    )
    log.append(town.sign(body, town.grid))


def _second_genesis(log: LogBuilder, town: Town) -> None:
    log.append(town.genesis())


def _duplicate_id(log: LogBuilder, town: Town) -> None:
    entry_id = bytes(range(16))
    log.append(town.award("res-001", "clean-pond", entry_id=entry_id))
    log.append(town.award("res-002", "clean-pond", entry_id=entry_id))


def _future_at(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "clean-pond", at=town.now_ms + 10 * 60 * 1000 + 1))


def _deed_after_the_day(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "clean-pond", date=town.day(days_before=-1)))


def _deed_too_old(log: LogBuilder, town: Town) -> None:
    log.append(town.award("res-001", "clean-pond", date=town.day(days_before=93)))


PATROL = RuleSpec("patrol", "Night patrol", "public-safety", 4, max_qty=3, max_per_month=4)


def _over_max_qty(log: LogBuilder, town: Town) -> None:
    log.append(town.set_rule(PATROL))
    log.append(town.award("res-001", "patrol", 4))


def _over_max_per_month(log: LogBuilder, town: Town) -> None:
    log.append(town.set_rule(PATROL))
    log.append(town.award("res-001", "patrol", 3))
    log.append(town.award("res-001", "patrol", 2))


def _unknown_role(log: LogBuilder, town: Town) -> None:
    log.append(town.add_key(OTHER, "mayor-liu", ["mayor"]))


#: The identity point, a small-order key: R = B, S = 1 "verifies" under it on any
#: message for RFC 8032 and OpenSSL; libsodium and the rule of docs/format.md 3.1 refuse.
IDENTITY_KEY = bytes([1]) + bytes(31)
FORGERY = bytes.fromhex("58" + "66" * 31) + (1).to_bytes(32, "little")


def _small_order_key(log: LogBuilder, town: Town) -> None:
    body = KeyChange(
        town.origin, town.next_id(), town.now_ms, "add", IDENTITY_KEY, "mallory", ("grid",)
    )
    log.append(town.sign(body, *town.governors))


def _retire_inactive_rule(log: LogBuilder, town: Town) -> None:
    log.append(town.retire_rule("never-set"))


def _objection_to_a_rule(log: LogBuilder, town: Town) -> None:
    log.append(town.objection(5))


def _rule_by_the_admin_alone(log: LogBuilder, town: Town) -> None:
    log.append(town.set_rule(STANDARD_RULES[0], signers=(town.admin,)))


def _key_by_the_admin_alone(log: LogBuilder, town: Town) -> None:
    log.append(town.add_key(OTHER, "thief", ["admin"], signers=(town.admin,)))


def _undecodable_body(log: LogBuilder, town: Town) -> None:
    log.append(town.sign(codec.encode({"v": 1, "kind": "award"}), town.grid))


VIOLATIONS: list[tuple[str, Callable[[LogBuilder, Town], None], str]] = [
    ("unknown key", _unknown_signer, "signer-unknown"),
    ("revoked key", _revoked_signer, "signer-revoked"),
    ("bad signature", _bad_signature, "signature"),
    ("wrong role", _wrong_role, "signer-role"),
    ("retired rule", _retired_rule, "rule-inactive"),
    ("unknown rule", _unknown_rule, "rule-inactive"),
    ("missing council quorum", _missing_quorum, "quorum"),
    ("reversal without quorum", _reverse_without_quorum, "quorum"),
    ("rule set by the admin alone", _rule_by_the_admin_alone, "quorum"),
    ("key added by the admin alone", _key_by_the_admin_alone, "quorum"),
    ("overdraw", _overdraw, "overdraw"),
    ("award beyond range", _award_beyond_range, "range"),
    ("double reverse", _double_reverse, "double-reverse"),
    ("wrong log", _wrong_log, "log"),
    ("genesis after seq 0", _second_genesis, "genesis"),
    ("duplicate id", _duplicate_id, "duplicate-id"),
    ("future at", _future_at, "future"),
    ("deed date after the day of at", _deed_after_the_day, "deed-date"),
    ("deed date 93 days back", _deed_too_old, "deed-date"),
    ("qty over the rule's max_qty", _over_max_qty, "max-qty"),
    ("qty over the rule's max_per_month", _over_max_per_month, "max-per-month"),
    ("unknown role", _unknown_role, "key"),
    ("small-order key", _small_order_key, "key-point"),
    ("retire an inactive rule", _retire_inactive_rule, "rule"),
    ("objection to a rule entry", _objection_to_a_rule, "target"),
    ("undecodable body", _undecodable_body, "format"),
]


@pytest.mark.parametrize(
    ("build", "check"),
    [(build, check) for _, build, check in VIOLATIONS],
    ids=[name for name, _, _ in VIOLATIONS],
)
def test_each_refusal_names_the_seq_and_the_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    build: Callable[[LogBuilder, Town], None],
    check: str,
) -> None:
    log = _setup()
    build(log, log.town)
    bad_seq = len(log.leaves) - 1
    log.append(log.town.award("res-009", "clean-pond"))  # a good entry after the bad one
    directory = log.write_bundle(tmp_path / "bundle")
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert status == 1
    assert value["ok"] is False
    assert value["error"]["seq"] == bad_seq
    assert value["error"]["check"] == check
    assert value["error"]["message"]


def test_a_small_order_key_and_its_forgeries_are_refused_at_the_registration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attack of issue 11: an admin registers the identity key, then appends awards
    "signed" R = B, S = 1, which an auditor on OpenSSL alone would accept."""
    log = _setup()
    town = log.town
    _small_order_key(log, town)
    key_seq = len(log.leaves) - 1
    award = Award(
        town.origin, town.next_id(), town.now_ms, "res-001", "clean-pond", date=town.day()
    ).to_bytes()
    Ed25519PublicKey.from_public_bytes(IDENTITY_KEY).verify(FORGERY, ENTRY_DOMAIN + award)
    log.append(codec.encode([award, [[key_id(IDENTITY_KEY), FORGERY]]]))
    directory = log.write_bundle(tmp_path / "bundle")
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert status == 1
    assert (value["error"]["seq"], value["error"]["check"]) == (key_seq, "key-point")
    assert "point of small order" in value["error"]["message"]


def test_every_points_check_is_exercised_from_a_bundle() -> None:
    exercised = {check for _, _, check in VIOLATIONS} | {"genesis"}
    assert exercised == set(CHECKS)


def _first_entry_not_genesis(log: LogBuilder) -> None:
    log.leaves.clear()
    log.append(log.town.award("res-001", "clean-pond"))


def _genesis_signed_by_another_key(log: LogBuilder) -> None:
    town = log.town
    log.leaves.clear()
    log.append(town.sign(_genesis_body(town), OTHER))


def _genesis_body(town: Town) -> bytes:
    envelope = town.genesis()
    body, _ = codec.decode(envelope)
    assert isinstance(body, bytes)
    return body


@pytest.mark.parametrize(
    ("build", "check"),
    [(_first_entry_not_genesis, "genesis"), (_genesis_signed_by_another_key, "signer-role")],
)
def test_genesis_misuse_at_seq_0(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    build: Callable[[LogBuilder], None],
    check: str,
) -> None:
    log = new_log()
    build(log)
    directory = log.write_bundle(tmp_path / "bundle")
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, 0, check)


# -- structure: the chain, order, time, leaf bytes ---------------------------------


def _rewrite(log: LogBuilder, position: int, **changes: Any) -> None:
    leaf = Leaf.from_bytes(log.leaves[position])
    log.leaves[position] = leaf._replace(**changes).to_bytes()


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"seq": 99}, "seq"),
        ({"time": 0}, "time"),
        ({"prev": b"\x01" * 32}, "chain"),
        ({"envelope": b"\x92"}, "format"),
    ],
)
def test_structural_defects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], check: str
) -> None:
    log = standard_log()
    _rewrite(log, 13, **change)
    directory = log.write_bundle(tmp_path / "bundle")
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, 13, check)


def _bundle_with_leaves(tmp_path: Path, log: LogBuilder, leaves: list[bytes]) -> Path:
    directory = log.write_bundle(tmp_path / "bundle")
    (directory / bundle.LEAVES_FILE).write_bytes(bundle.encode_leaves(leaves))
    return directory


@pytest.mark.parametrize("seq", [0, 1, 7, 18])
def test_deleting_an_entry_is_detected_at_its_seq(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seq: int
) -> None:
    log = standard_log()
    leaves = log.leaves[:seq] + log.leaves[seq + 1 :]
    status, value = verify_json(capsys, _bundle_with_leaves(tmp_path, log, leaves), key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, seq, "seq")


def test_deleting_the_last_entry_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    leaves = log.leaves[:-1]
    status, value = verify_json(capsys, _bundle_with_leaves(tmp_path, log, leaves), key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, 19, "size")
    # A missing entry has no bytes to describe: the report names no resident for it.
    assert value["error"]["entry"] is None and value["error"]["kind"] == "tampered"
    assert value["checked"]["entries"] == 19


@pytest.mark.parametrize("seq", [0, 5, 18])
def test_swapping_two_entries_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seq: int
) -> None:
    log = standard_log()
    leaves = list(log.leaves)
    leaves[seq], leaves[seq + 1] = leaves[seq + 1], leaves[seq]
    status, value = verify_json(capsys, _bundle_with_leaves(tmp_path, log, leaves), key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, seq, "seq")


def test_duplicating_an_entry_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    leaves = [*log.leaves[:9], log.leaves[8], *log.leaves[9:]]
    status, value = verify_json(capsys, _bundle_with_leaves(tmp_path, log, leaves), key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, 9, "seq")


@pytest.mark.parametrize("cut", [1, 40, 200])
def test_truncating_the_leaves_file_names_the_cut_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: int
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    data = (directory / bundle.LEAVES_FILE).read_bytes()
    (directory / bundle.LEAVES_FILE).write_bytes(data[:-cut])
    # The last leaf is at least 200 bytes, so every cut lands inside it.
    assert len(log.leaves[-1]) > 200
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, 19, "format")


def test_appending_garbage_to_the_leaves_file_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    with (directory / bundle.LEAVES_FILE).open("ab") as stream:
        stream.write(b"\x00")
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, 20, "format")


# -- every single-byte change to leaves, checkpoint and manifest -----------------


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    log = new_log(b"tamper")
    town = log.town
    # Staff registered by the admin alone (no rule yet), then a rule signed by the admin and
    # the council (the default governance): a small log that verifies.
    log.append(town.add_key(town.grid, "grid-wang", ["grid"], signers=(town.admin,)))
    for number, member in enumerate(town.council):
        log.append(town.add_key(member, f"council-{number}", ["council"], signers=(town.admin,)))
    log.append(town.set_rule(STANDARD_RULES[0]))
    log.append(town.award("res-001", "clean-pond", 2))
    log.append(town.award("res-002", "clean-pond"))
    directory = log.write_bundle(tmp_path_factory.mktemp("small") / "bundle", start=0)
    return directory, vkey(log)


def test_the_small_bundle_verifies_untouched(small_bundle: tuple[Path, str]) -> None:
    # The tamper tests below expect exit 1 for a change and 0 for none: from a valid bundle.
    directory, key = small_bundle
    assert main(["bundle", str(directory), "--log-key", key]) == 0


def _verify_flipped(small: tuple[Path, str], name: str, position: int, xor: int) -> int:
    directory, key = small
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "bundle"
        shutil.copytree(directory, copy)
        data = bytearray((copy / name).read_bytes())
        data[position % len(data)] ^= xor
        (copy / name).write_bytes(bytes(data))
        return main(["bundle", str(copy), "--log-key", key, "--json"])


TAMPER = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
positions = st.integers(min_value=0, max_value=1 << 16)
xors = st.integers(min_value=1, max_value=255)


@TAMPER
@given(position=positions, xor=xors)
def test_any_byte_changed_in_leaves_fails_with_exit_1(
    small_bundle: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    position: int,
    xor: int,
) -> None:
    assert _verify_flipped(small_bundle, bundle.LEAVES_FILE, position, xor) == 1
    assert json.loads(capsys.readouterr().out)["error"]["check"]


@TAMPER
@given(position=positions, xor=xors)
def test_any_byte_changed_in_the_checkpoint_fails_with_exit_1(
    small_bundle: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    position: int,
    xor: int,
) -> None:
    assert _verify_flipped(small_bundle, bundle.CHECKPOINT_FILE, position, xor) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["seq"], error["check"]) == (None, "checkpoint")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=positions, xor=xors)
def test_a_byte_changed_in_the_manifest_fails_unless_it_still_says_the_same(
    small_bundle: tuple[Path, str], capsys: pytest.CaptureFixture[str], position: int, xor: int
) -> None:
    # The manifest is unsigned and its JSON layout free: a change of spacing that
    # leaves every field alone may pass; any other change must fail with exit 1.
    directory, _ = small_bundle
    data = bytearray((directory / bundle.MANIFEST_FILE).read_bytes())
    data[position % len(data)] ^= xor
    try:
        same = bundle.decode_manifest(bytes(data)) == bundle.decode_manifest(
            (directory / bundle.MANIFEST_FILE).read_bytes()
        )
    except FormatError:
        same = False
    status = _verify_flipped(small_bundle, bundle.MANIFEST_FILE, position, xor)
    assert status == (0 if same else 1)
    capsys.readouterr()


def test_every_byte_of_the_leaves_file_is_covered(small_bundle: tuple[Path, str]) -> None:
    # The hypothesis tests sample; this walks every position once with one xor value,
    # through the audit loop directly (the CLI would take too long for every byte).
    directory, key = small_bundle
    data = (directory / bundle.LEAVES_FILE).read_bytes()
    log_key = VerifierKey.parse(key)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "bundle"
        shutil.copytree(directory, copy)
        for position in range(len(data)):
            changed = bytearray(data)
            changed[position] ^= 0x80
            (copy / bundle.LEAVES_FILE).write_bytes(bytes(changed))
            with pytest.raises(VerificationError):
                audit(BundleSource(copy), log_key, workers=1)


# -- bundles with a left file and a previous checkpoint ----------------------------


@pytest.mark.parametrize("name", [bundle.LEFT_FILE, bundle.PREVIOUS_CHECKPOINT_FILE])
def test_changed_left_or_previous_checkpoint_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle", start=12, previous=12)
    data = bytearray((directory / name).read_bytes())
    data[len(data) // 2] ^= 0x04
    (directory / name).write_bytes(bytes(data))
    status, value = verify_json(capsys, directory, "--structure-only", key=vkey(log))
    assert status == 1
    assert value["error"]["check"] in {"left", "root", "previous-checkpoint", "consistency"}


def test_previous_checkpoint_of_another_history_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle", start=12)
    (directory / bundle.PREVIOUS_CHECKPOINT_FILE).write_text(log.checkpoint(12, bytes(32)).note)
    status, value = verify_json(capsys, directory, "--structure-only", key=vkey(log))
    assert (status, value["error"]["check"]) == (1, "consistency")


def test_missing_left_file_is_a_defect_of_the_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle", start=12)
    (directory / bundle.LEFT_FILE).unlink()
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert (status, value["error"]["check"]) == (1, "left")


def test_unknown_files_are_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    (directory / bundle.PUBLICITY_CSV_FILE).write_text("\ufeffaccount,name\n")
    (directory / "notes.txt").write_text("anything")
    assert verify_json(capsys, directory, key=vkey(log))[0] == 0


# -- the state file ---------------------------------------------------------------


def _grow(log: LogBuilder, count: int) -> None:
    for number in range(count):
        log.append(log.town.award(f"res-{100 + number}", "clean-pond"))


def test_state_second_run_and_growth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = standard_log()
    state = tmp_path / "state.json"
    first = log.write_bundle(tmp_path / "first")
    assert main(["bundle", str(first), "--log-key", vkey(log), "--state", str(state)]) == 0
    pinned = json.loads(state.read_text())
    assert (pinned["tree_size"], pinned["root"]) == (20, log.root().hex())
    # The same bundle again, now with the key taken from the state file.
    assert main(["bundle", str(first), "--state", str(state)]) == 0
    _grow(log, 5)
    second = log.write_bundle(tmp_path / "second")
    assert main(["bundle", str(second), "--state", str(state)]) == 0
    assert json.loads(state.read_text())["tree_size"] == 25
    _grow(log, 3)
    monthly = log.write_bundle(tmp_path / "monthly", start=25, previous=25)
    assert main(["bundle", str(monthly), "--state", str(state)]) == 0
    assert json.loads(state.read_text())["tree_size"] == 28
    capsys.readouterr()


def _pinned_run(tmp_path: Path, log: LogBuilder) -> Path:
    state = tmp_path / "state.json"
    directory = log.write_bundle(tmp_path / "pinned")
    assert main(["bundle", str(directory), "--log-key", vkey(log), "--state", str(state)]) == 0
    return state


def test_rewritten_history_after_an_audit_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)
    before = state.read_bytes()
    # The operator rewrites entry 13 (a different award) and re-signs everything after it.
    rewritten = LogBuilder(log.town, log.leaves[:13])
    log.town.now_ms -= 1  # any different bytes will do
    rewritten.append(log.town.award("res-002", "epidemic-duty", 1))
    _grow(rewritten, 10)
    directory = rewritten.write_bundle(tmp_path / "rewritten")
    capsys.readouterr()
    status, value = verify_json(capsys, directory, "--state", str(state), key=None)
    assert (status, value["error"]["check"]) == (1, "consistency")
    assert state.read_bytes() == before  # nothing pinned after a failure


def test_same_size_with_another_root_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)
    forked = LogBuilder(log.town, log.leaves[:19])
    forked.append(log.town.award("res-001", "litter"))
    capsys.readouterr()
    status, value = verify_json(
        capsys, forked.write_bundle(tmp_path / "fork"), "--state", str(state), key=None
    )
    assert (status, value["error"]["check"]) == (1, "consistency")


def test_rollback_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)
    older = LogBuilder(log.town, log.leaves[:15])
    capsys.readouterr()
    status, value = verify_json(
        capsys, older.write_bundle(tmp_path / "older"), "--state", str(state), key=None
    )
    assert (status, value["error"]["check"]) == (1, "rollback")


def test_monthly_bundle_after_a_gap_cannot_be_proven(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)
    _grow(log, 6)
    directory = log.write_bundle(tmp_path / "later", start=23, previous=23)
    capsys.readouterr()
    status, value = verify_json(capsys, directory, "--state", str(state), key=None)
    assert (status, value["error"]["check"]) == (1, "consistency")


def test_key_mismatch_with_the_state_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)
    other = NoteSigner(log.town.origin, SigningKey.from_seed(b"k" * 32)).verifier().encode()
    capsys.readouterr()
    directory = tmp_path / "pinned"
    assert main(["bundle", str(directory), "--log-key", other, "--state", str(state)]) == 2
    assert "not the key pinned in the state file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: "{",
        lambda text: text.replace('"tree_size": 20', '"tree_size": 21'),
        lambda text: text.replace("redlist-verify-state/1", "redlist-verify-state/9"),
        lambda text: json.dumps({"format": "redlist-verify-state/1"}),
    ],
)
def test_damaged_state_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[str], str]
) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)
    state.write_text(damage(state.read_text()))
    capsys.readouterr()
    assert main(["bundle", str(tmp_path / "pinned"), "--state", str(state)]) == 2
    assert "state file" in capsys.readouterr().err


def test_state_is_not_written_when_verification_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    _rewrite(log, 3, time=0)
    state = tmp_path / "state.json"
    directory = log.write_bundle(tmp_path / "bad")
    assert main(["bundle", str(directory), "--log-key", vkey(log), "--state", str(state)]) == 1
    assert not state.exists()
    assert list(tmp_path.glob(".state.json.*")) == []


# -- arguments and missing inputs exit 2 -------------------------------------------


def test_bad_arguments_and_missing_inputs_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    key = vkey(log)
    assert main([]) == 2
    assert main(["bundle"]) == 2
    assert main(["frobnicate", str(directory)]) == 2
    assert main(["bundle", str(directory)]) == 2  # no key at all
    assert main(["bundle", str(tmp_path / "nowhere"), "--log-key", key]) == 2
    assert main(["bundle", str(tmp_path / ("n" * 300)), "--log-key", key]) == 2
    assert main(["bundle", str(directory), "--log-key", "not-a-key"]) == 2
    assert main(["bundle", str(directory), "--log-key", "x/" + "y" * 300 + "+00+AA"]) == 2
    assert main(["bundle", str(directory), "--log-key", "a\x00b"]) == 2
    assert main(["bundle", str(directory), "--log-key", key, "--account", "bad account"]) == 2
    assert main(["bundle", str(directory), "--log-key", key, "--workers", "0"]) == 2
    too_many = str(most_workers() + 1)
    assert main(["bundle", str(directory), "--log-key", key, "--workers", too_many]) == 2
    witness = log.town.log_signer.cosignature_verifier().encode()
    assert main(["bundle", str(directory), "--log-key", witness]) == 2
    for name in (bundle.LEAVES_FILE, bundle.CHECKPOINT_FILE, bundle.MANIFEST_FILE):
        copy = tmp_path / f"without-{name}"
        shutil.copytree(directory, copy)
        (copy / name).unlink()
        assert main(["bundle", str(copy), "--log-key", key]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "cannot verify" in err


def test_could_not_start_in_json_is_still_one_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, value = verify_json(capsys, tmp_path / "nowhere", key=vkey(standard_log()))
    assert status == 2
    assert value["ok"] is False
    assert value["error"]["check"] == "input"


def test_log_key_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    key_file = tmp_path / "log.pub"
    key_file.write_text(vkey(log) + "\n")
    assert main(["bundle", str(directory), "--log-key", str(key_file)]) == 0
    key_file.write_text("garbage\n")
    assert main(["bundle", str(directory), "--log-key", str(key_file)]) == 2
    capsys.readouterr()


def log_key_refusal(capsys: pytest.CaptureFixture[str], directory: Path, given: str) -> str:
    assert main(["bundle", str(directory), "--log-key", given]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("redlist-verify: cannot ")
    return captured.err


def test_a_staff_key_file_as_log_key_says_where_the_log_key_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = standard_log().write_bundle(tmp_path / "bundle")
    staff = tmp_path / "admin.pem.pub"
    staff.write_text(
        "# redlist staff key (public part; safe to share)\n# name: Liu Jun\n"
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    )
    err = log_key_refusal(capsys, directory, str(staff))
    assert f"{staff} is a PEM file" in err
    assert "not the town log's key; that is log.pub in the node's data directory" in err
    assert "control characters" not in err


def test_a_directory_or_a_missing_file_as_log_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = standard_log().write_bundle(tmp_path / "bundle")
    data = tmp_path / "town"
    data.mkdir()
    err = log_key_refusal(capsys, directory, str(data))
    assert f"--log-key {data} is a directory; give the log key file" in err
    assert str(data / "log.pub") in err
    missing = tmp_path / "log.pub"
    err = log_key_refusal(capsys, directory, str(missing))
    assert f"the log key file {missing} does not exist" in err
    assert "two '+' separators" not in err


def test_a_damaged_log_key_is_explained_in_the_auditors_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key's own problem comes translated too, not only the sentence around it."""
    directory = standard_log().write_bundle(tmp_path / "bundle")
    assert main(["bundle", str(directory), "--log-key", "town+1234+abc", "--lang", "zh_CN"]) == 2
    err = capsys.readouterr().err
    assert "不是日志验证公钥" in err and "密钥 town：密钥哈希必须是 8 位小写十六进制数字" in err
    assert not re.search(r"\b(is|the|must|key)\b", err), err


def test_an_unreadable_log_key_file_is_named_without_python_details(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    key_file = tmp_path / "log.pub"
    key_file.write_text(vkey(log) + "\n")

    real_open = os.open

    def denied(path: object, *args: Any, **kwargs: Any) -> int:
        if Path(str(path)) == key_file:  # root reads any file: deny it here instead
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    err = log_key_refusal(capsys, directory, str(key_file))
    assert err == f"redlist-verify: cannot read the log key file {key_file}: Permission denied\n"


def test_an_unreachable_node_is_not_reported_as_cannot_verify_cannot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = vkey(standard_log())
    assert main(["node", "127.0.0.1:1", "--log-key", key, "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("redlist-verify: cannot reach the node at 127.0.0.1:1")
    assert "cannot verify: cannot" not in err


class ClosedPipe(io.StringIO):
    """Standard output whose reader went away (``redlist-verify ... | head``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_went_away_ends_the_report_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["bundle", str(directory), "--log-key", vkey(log)]) == 141
    assert capsys.readouterr().err == ""


def test_wrong_town_key_is_a_verification_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    other = NoteSigner(log.town.origin, SigningKey.from_seed(b"w" * 32)).verifier().encode()
    status, value = verify_json(capsys, directory, key=other)
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, None, "checkpoint")


def test_another_logs_key_cannot_start_and_names_both_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A key of another log is the auditor's mistake to put right (exit 2), not tampering.
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    other = NoteSigner("other.example/redlist", SigningKey.from_seed(b"w" * 32)).verifier()
    status, value = verify_json(capsys, directory, key=other.encode())
    assert (status, value["ok"]) == (2, False)
    message = value["error"]["message"]
    assert f"is a bundle of log {log.town.origin}" in message
    assert "the log key given is of log other.example/redlist" in message


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "bundle" in capsys.readouterr().out


# -- monthly bundles, month after month --------------------------------------------


def test_a_monthly_bundle_without_earlier_state_is_refused_not_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "month", start=12, previous=12)
    status, value = verify_json(capsys, directory, key=vkey(log))
    assert status == 2
    assert value["ok"] is False
    assert "--state" in value["error"]["message"]


def test_monthly_bundles_resume_from_the_state_and_recheck_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)  # month 1: the full log so far
    first_end = len(log.leaves)
    _grow(log, 5)
    month = log.write_bundle(tmp_path / "month2", start=first_end, previous=first_end)
    capsys.readouterr()
    status, value = verify_json(capsys, month, "--state", str(state), key=None)
    assert status == 0, value
    assert value["balances_recomputed"] is True
    full = log.write_bundle(tmp_path / "full")
    _, whole = verify_json(capsys, full, key=vkey(log))
    assert value["accounts"] == whole["accounts"]
    # Month 3 resumes from what month 2 left in the state file.
    second_end = len(log.leaves)
    _grow(log, 3)
    month3 = log.write_bundle(tmp_path / "month3", start=second_end, previous=second_end)
    status, value = verify_json(capsys, month3, "--state", str(state), key=None)
    assert (status, value["tree_size"]) == (0, second_end + 3)


def test_a_forged_entry_in_a_monthly_bundle_is_caught_with_the_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = standard_log()
    state = _pinned_run(tmp_path, log)
    start = len(log.leaves)
    log.append(log.town.award("res-001", "clean-pond", signers=(OTHER,)))  # unregistered key
    month = log.write_bundle(tmp_path / "month", start=start, previous=start)
    capsys.readouterr()
    status, value = verify_json(capsys, month, "--state", str(state), key=None)
    assert (status, value["error"]["seq"], value["error"]["check"]) == (1, start, "signer-unknown")
