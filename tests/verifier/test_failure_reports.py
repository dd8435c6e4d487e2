"""Reports of a failed verification, for people: the kind of failure, the resident and
award concerned, what held before, and one piece of advice (``redlist.verifier.failure``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.builders import RuleSpec
from tests.verifier.bundles import LogBuilder, new_log

from redlist.ledger import bundle, points
from redlist.ledger.errors import TEXT_CHECK
from redlist.ledger.validator import read_leaf
from redlist.verifier.checkwords import (
    CHECK_KINDS,
    KINDS,
    MISREPORTED,
    PLAIN,
    RULE_BROKEN,
    TAMPERED,
    UNCONFIRMED,
    advice,
)
from redlist.verifier.cli import main
from redlist.verifier.results import CHECKS

GOLDEN = Path(__file__).parent.parent / "data" / "golden"
PATROL = RuleSpec("patrol", "Night patrol", "public-safety", 4, max_qty=3)


def test_every_check_has_a_kind_and_plain_words() -> None:
    every = {*CHECKS, TEXT_CHECK}
    assert set(CHECK_KINDS) == every
    assert set(PLAIN) == every
    assert (
        set(CHECK_KINDS.values()) == set(KINDS) == {TAMPERED, RULE_BROKEN, MISREPORTED, UNCONFIRMED}
    )
    for check, words in PLAIN.items():
        assert words.endswith(".") and words[0].isupper(), check
        assert "'" not in words.replace("'s ", ""), check  # no code, no reprs


def test_bad_bytes_are_tampering_and_signed_refusals_are_rule_breaking() -> None:
    assert {check for check, kind in CHECK_KINDS.items() if kind == TAMPERED} >= {
        "signature",
        "format",
        "chain",
        "root",
        TEXT_CHECK,
    }
    signed_rules = set(points.CHECKS) - {"format", "signature"}
    assert {CHECK_KINDS[check] for check in signed_rules} == {RULE_BROKEN}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def golden_with_a_flipped_signature(tmp_path: Path) -> tuple[Path, int]:
    """The golden bundle with one bit flipped in the signature of its first award."""
    copy = tmp_path / "full"
    shutil.copytree(GOLDEN / "full", copy)
    data = (copy / bundle.LEAVES_FILE).read_bytes()
    decoder = bundle.LeafStreamDecoder()
    offset = 0
    for seq, leaf in enumerate(decoder.feed(data)):
        offset = data.index(leaf, offset)
        body = read_leaf(leaf).body
        if body is not None and body.kind == "award":
            position = offset + len(leaf) - 10  # inside the last signature
            changed = bytearray(data)
            changed[position] ^= 0x01
            (copy / bundle.LEAVES_FILE).write_bytes(bytes(changed))
            return copy, seq
        offset += len(leaf)
    raise AssertionError("the golden bundle has no award")


def test_a_tampered_golden_bundle_names_the_resident_and_says_tampering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, seq = golden_with_a_flipped_signature(tmp_path)
    key = str(GOLDEN / "log.pub")
    status, out, _ = _run(capsys, "bundle", str(directory), "--log-key", key, "--json")
    assert status == 1
    value = json.loads(out)
    error = value["error"]
    assert (error["seq"], error["check"], error["kind"]) == (seq, "signature", TAMPERED)
    entry = error["entry"]
    assert entry["account"] and entry["rule"] and entry["rule_title"] and entry["deed_date"]
    assert entry["signers"] and entry["points"] is not None
    assert value["tree_size"] is not None and len(value["root"]) == 64
    assert value["checked"]["entries"] == seq  # every entry before it held
    assert value["checked"]["signatures"] >= seq
    assert value["accounts"] == {}

    status, out, err = _run(capsys, "bundle", str(directory), "--log-key", key)
    assert status == 1 and err == ""
    assert out.startswith("VERIFICATION FAILED: The data was changed after it was signed")
    flat = " ".join(out.split())
    assert f"where: entry {seq}" in flat
    assert f"Resident: account {entry['account']}" in flat
    assert f"\u201c{entry['rule_title']}\u201d" in flat
    assert f"deed of {entry['deed_date']}" in flat
    assert "not what was signed" in flat
    assert " ".join(advice(TAMPERED).split()) in flat


def golden_with_a_signer_changed(tmp_path: Path, *, last: bool) -> tuple[Path, int]:
    """The golden bundle with one bit flipped in a signer's key id: of its first award's,
    or of its last entry's first signer. The entry then names a key the town never
    registered, which reads as a broken rule before any signature is checked."""
    copy = tmp_path / ("last" if last else "award")
    shutil.copytree(GOLDEN / "full", copy)
    data = (copy / bundle.LEAVES_FILE).read_bytes()
    found: tuple[int, int, bytes] | None = None
    offset = 0
    for seq, leaf in enumerate(bundle.LeafStreamDecoder().feed(data)):
        offset = data.index(leaf, offset)
        reading = read_leaf(leaf)
        award = reading.body is not None and reading.body.kind == "award"
        if reading.envelope is not None and (last or (award and found is None)):
            found = (seq, offset, leaf)
        offset += len(leaf)
    assert found is not None and found[2] is not None
    seq, start, leaf = found
    envelope = read_leaf(leaf).envelope
    assert envelope is not None
    key_id = envelope.signatures[0].key_id
    position = start + leaf.index(key_id) + len(key_id) - 1
    changed = bytearray(data)
    changed[position] ^= 0x01
    (copy / bundle.LEAVES_FILE).write_bytes(bytes(changed))
    return copy, seq


@pytest.mark.parametrize("last", [False, True], ids=["an-award", "the-last-entry"])
def test_a_changed_signer_is_tampering_not_a_broken_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], last: bool
) -> None:
    # The entry as it reads breaks the rule "signer-unknown"; but its bytes are not the
    # ones the checkpoint signed, so the node is not to blame: the file was changed.
    directory, seq = golden_with_a_signer_changed(tmp_path, last=last)
    key = str(GOLDEN / "log.pub")
    status, out, _ = _run(capsys, "bundle", str(directory), "--log-key", key, "--json")
    assert status == 1
    error = json.loads(out)["error"]
    assert (error["seq"], error["check"], error["kind"]) == (seq, "root", TAMPERED)
    assert "changed after the log signed it" in error["message"]
    assert "signer-unknown" in error["message"]  # what it would break as it reads now
    assert error["advice"] == advice(TAMPERED)

    status, out, err = _run(capsys, "bundle", str(directory), "--log-key", key)
    assert status == 1 and err == ""
    assert out.startswith("VERIFICATION FAILED: The data was changed after it was signed")
    flat = " ".join(out.split())
    assert f"where: entry {seq}" in flat and "check: root (tampered)" in flat
    assert "not what was signed" in flat
    assert " ".join(advice(TAMPERED).split()) in flat


def test_an_entry_over_the_cap_with_a_later_entry_changed_is_tampering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The checkpoint no longer covers what the bundle holds, so it cannot show that the
    # node signed the entry over the cap: the data must be fetched again first.
    log, directory, bad = _over_the_cap(tmp_path)
    leaves = directory / bundle.LEAVES_FILE
    data = bytearray(leaves.read_bytes())
    data[-3] ^= 0x01  # inside the last entry's signature
    leaves.write_bytes(bytes(data))
    key = log.town.log_signer.verifier().encode()
    status, out, _ = _run(capsys, "bundle", str(directory), "--log-key", key, "--json")
    error = json.loads(out)["error"]
    assert (status, error["seq"], error["check"], error["kind"]) == (1, bad, "root", TAMPERED)
    assert "this entry or a later one was changed" in error["message"]


def _over_the_cap(tmp_path: Path) -> tuple[LogBuilder, Path, int]:
    """A bundle built outside any node whose award is over its rule's max_qty."""
    log = new_log()
    log.extend(log.town.setup())
    log.append(log.town.set_rule(PATROL))
    log.append(log.town.award("res-007", "patrol", 4))
    bad = len(log.leaves) - 1
    log.append(log.town.award("res-008", "clean-pond"))
    return log, log.write_bundle(tmp_path / "bundle"), bad


def test_an_entry_over_the_cap_is_a_broken_rule_naming_resident_award_and_signer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, directory, bad = _over_the_cap(tmp_path)
    key = log.town.log_signer.verifier().encode()
    status, out, err = _run(capsys, "bundle", str(directory), "--log-key", key)
    assert status == 1 and err == ""
    flat = " ".join(out.split())
    assert out.startswith("VERIFICATION FAILED: An entry is intact as signed, but it breaks")
    assert f"where: entry {bad}" in flat
    assert "check: max-qty (rule-broken)" in flat
    assert "Resident: account res-007" in flat
    assert "rule patrol \u201cNight patrol\u201d, +16 points" in flat
    assert "Signed by: grid-wang." in flat
    assert "more than its rule allows in one award" in flat

    status, out, err = _run(capsys, "bundle", str(directory), "--log-key", key, "--json")
    value = json.loads(out)
    error: dict[str, Any] = value["error"]
    assert (status, error["kind"], error["check"], error["seq"]) == (1, RULE_BROKEN, "max-qty", bad)
    assert error["entry"]["account"] == "res-007"
    assert error["entry"]["rule_title"] == "Night patrol"
    assert error["entry"]["signers"] == ["grid-wang"]
    assert value["tree_size"] == len(log.leaves)
    assert value["root"] == log.root().hex()
    # The same advice, word for word, on stdout (JSON) and stderr.
    assert err == f"redlist-verify: verification failed (rule-broken). {error['advice']}\n"
    assert error["advice"] == advice(RULE_BROKEN)


def test_texts_that_do_not_match_are_tampering_after_the_audit_held(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = tmp_path / "texts.jsonl"
    lines = (GOLDEN / "full-texts.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["text"] += "!"
    texts.write_text("\n".join([json.dumps(first, ensure_ascii=False), *lines[1:]]) + "\n")
    argv = ["bundle", str(GOLDEN / "full"), "--log-key", str(GOLDEN / "log.pub")]
    status, out, _ = _run(capsys, *argv, "--texts", str(texts), "--json")
    value = json.loads(out)
    assert status == 1
    assert (value["error"]["check"], value["error"]["kind"]) == (TEXT_CHECK, TAMPERED)
    assert value["error"]["seq"] == first["seq"]
    assert value["error"]["entry"]["kind"] is not None  # read back from the bundle
    assert value["checked"]["passed"] == ["checkpoint", "entries", "root"]
    assert value["tree_size"] == json.loads((GOLDEN / "full.verify.json").read_text())["tree_size"]


def test_a_cut_leaves_file_is_tampering_with_an_unreadable_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "full"
    shutil.copytree(GOLDEN / "full", copy)
    leaves = (copy / bundle.LEAVES_FILE).read_bytes()
    (copy / bundle.LEAVES_FILE).write_bytes(leaves[: len(leaves) - 7])
    argv = ["bundle", str(copy), "--log-key", str(GOLDEN / "log.pub")]
    status, out, _ = _run(capsys, *argv)
    assert status == 1
    flat = " ".join(out.split())
    assert "check: format (tampered)" in flat
    assert "cannot be read as an entry" in flat
    assert "The entry cannot be read, so it cannot say whose it is." in flat
    status, out, _ = _run(capsys, *argv, "--json")
    error = json.loads(out)["error"]
    assert (error["kind"], error["entry"]["readable"]) == (TAMPERED, False)
