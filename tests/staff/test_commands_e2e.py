"""Every staff command end to end against a real node: ``redlist-node serve`` in a subprocess.

One town serves the whole module (starting a node takes a moment): the fixture creates
its staff keys, ``redlist-node init``s the log, starts ``serve --listen 127.0.0.1:0``,
registers the staff keys and loads a small catalogue, all through the commands under
test. Tests use their own account ids, so they do not depend on each other's entries.
Every refusal is checked to leave the log exactly as it was.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from tests.staff.running import redlist
from tests.staff.towns import (
    BIN,
    COUNCIL,
    ORIGIN,
    TODAY_AT_START,
    TWO_DAYS_AGO,
    Town,
    deed_date,
    entry_number,
    served_town,
    town_today,
)

from redlist.ledger import keyfile
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import Award, Envelope, Leaf
from redlist.ledger.errors import SourceError
from redlist.ledger.note.keys import NoteSigner
from redlist.staff import entries
from redlist.staff.client import LedgerClient, SubmitResult
from redlist.staff.commands import submit


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    with served_town(tmp_path_factory.mktemp("town")) as served:
        yield served


# ---------------------------------------------------------------------------
# The town log's key: given once, remembered, and proved by the node


def test_the_log_key_is_given_once_then_remembered(
    town: Town, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    known = tmp_path / "config" / "redlist" / "known-logs"
    unknown = redlist("account", "pin-1", "--node", town.address)
    assert unknown.code == 2
    assert f"does not know the log key of the node at {town.address}" in unknown.err
    first = redlist("account", "pin-1", "--node", town.address, "--log-key", str(town.log_pub))
    assert first.code == 0, first.err
    assert f"The node at {town.address} proved that it keeps log {ORIGIN}" in first.err
    assert f"Key remembered in {known}" in first.err
    later = redlist("account", "pin-1", "--node", town.address)
    assert (later.code, later.err) == (0, "")
    assert later.out == first.out
    stranger = NoteSigner.generate(ORIGIN).verifier().encode()
    mismatch = redlist("account", "pin-1", "--node", town.address, "--log-key", stranger)
    assert mismatch.code == 2
    assert "is not the one this computer remembers" in mismatch.err
    assert "Check the key with the town admin" in mismatch.err


def test_a_node_that_does_not_prove_the_town_key_gets_nothing(
    town: Town, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    stranger = NoteSigner.generate(ORIGIN).verifier().encode()
    before = town.size()
    argv = ["award", "--account", "pin-2", "--rule", "V01", "--node", town.address]
    result = redlist(*argv, "--signer", str(town.keys["grid"]), "--log-key", stranger)
    assert result.code == 1
    assert f"the node at {town.address} did not prove that it keeps the town's log" in result.err
    assert "Nothing was recorded" in result.err and result.err.rstrip().endswith("[checkpoint]")
    assert town.size() == before
    # A key the node did not prove is never remembered.
    assert not (tmp_path / "config" / "redlist" / "known-logs").exists()


# ---------------------------------------------------------------------------
# Keys


def test_key_add_and_revoke(town: Town) -> None:
    newcomer = town.root / "zhou.pem"
    key = SigningKey.generate()
    keyfile.write_key_files(newcomer, key, "Zhou Qiang")
    town.keys["zhou"] = newcomer
    added = town.run(
        "key", "add", "--pub", str(newcomer), "--name", "Zhou Qiang (grid)", "--roles", "grid",
        signer="admin", cosigners=COUNCIL,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert added.out.startswith(
        f"Registered key {key.key_id.hex()} of Zhou Qiang (grid) with the role grid (entry "
    )
    awarded = town.run("award", "--account", "key-1", "--rule", "V01", signer="zhou")
    assert awarded.code == 0, awarded.err

    revoked = town.run(
        "key", "revoke", "--pub", key.public.hex(), signer="admin", cosigners=COUNCIL
    )
    assert revoked.code == 0, revoked.err
    assert f"Revoked key {key.key_id.hex()} (entry {entry_number(added.out) + 2})" in revoked.out

    before = town.size()
    refused = town.run("award", "--account", "key-1", "--rule", "V01", signer="zhou")
    assert refused.code == 1
    assert f"key {key.key_id.hex()} (Zhou Qiang (grid)) was revoked" in refused.err
    # The account check before sending is the first to refuse the revoked key.
    assert refused.err.rstrip().endswith("[PERMISSION_DENIED, check read-signature]")
    assert town.size() == before
    assert town.account("key-1")["score"] == 1005


def test_only_an_admin_registers_keys(town: Town) -> None:
    before = town.size()
    nobody = SigningKey.from_seed(b"n" * 32).public.hex()
    refused = town.run(
        "key", "add", "--pub", nobody, "--name", "Nobody", "--roles", "admin", signer="grid"
    )
    assert refused.code == 1
    assert refused.err.startswith("error: the node refused the key registration: grid")
    assert "check signer-role" in refused.err
    assert town.size() == before


def test_a_key_is_registered_once(town: Town) -> None:
    before = town.size()
    pub = str(keyfile.public_path(town.keys["cashier"]))
    refused = town.run(
        "key",
        "add",
        "--pub",
        pub,
        "--name",
        "again",
        "--roles",
        "cashier",
        signer="admin",
        cosigners=COUNCIL,
    )
    assert refused.code == 1
    assert "is already registered" in refused.err
    assert town.size() == before


# ---------------------------------------------------------------------------
# Rules


def test_rule_set_then_retire(town: Town) -> None:
    set_rule = town.run(
        "rule", "set", "--code", "T01", "--title", "清理河道", "--module", "environment",
        "--points", "7", signer="admin", cosigners=COUNCIL,
    )  # fmt: skip
    assert set_rule.code == 0, set_rule.err
    assert set_rule.out.startswith("Set rule T01 “清理河道” (environment): awards 7 points (entry ")
    awarded = town.run("award", "--account", "rule-1", "--rule", "T01")
    assert "Awarded 7 points to rule-1 under rule T01" in awarded.out

    retired = town.run("rule", "retire", "--code", "T01", signer="admin", cosigners=COUNCIL)
    assert retired.code == 0, retired.err
    assert retired.out.startswith("Retired rule T01 (entry ")
    before = town.size()
    refused = town.run("award", "--account", "rule-1", "--rule", "T01")
    assert refused.code == 1
    assert f"rule 'T01' was retired at seq {entry_number(retired.out)}" in refused.err
    assert "[FAILED_PRECONDITION, check rule-inactive]" in refused.err
    assert town.size() == before
    assert town.account("rule-1")["score"] == 1007  # the earlier award keeps its points


def test_rules_load_is_atomic_and_idempotent(town: Town) -> None:
    catalogue = town.write(
        "more-rules.csv",
        "code,title,module,points,council\r\n"
        "L01,扶老携幼,family,8,否\r\n"
        "L02,Littering,environment,-5,no\r\n"
        "L03,Elder neglect,family,-100,yes\r\n",
        bom=True,
    )
    before = town.size()
    loaded = town.run("rules", "load", "--csv", str(catalogue), signer="admin", cosigners=COUNCIL)
    assert loaded.code == 0, loaded.err
    assert loaded.out == (
        f"Loaded 3 rules from more-rules.csv (entries {before} to {before + 2}).\n"
        "Read more-rules.csv as UTF-8 (with the byte order mark Excel writes).\n"
    )
    assert town.size() == before + 3

    again = town.run("rules", "load", "--csv", str(catalogue), signer="admin", cosigners=COUNCIL)
    assert again.code == 0, again.err
    assert "were already loaded by an earlier run" in again.out
    assert "nothing changed" in again.out
    assert town.size() == before + 3

    awarded = town.run("award", "--account", "rules-1", "--rule", "L01")
    assert "Awarded 8 points to rules-1 under rule L01" in awarded.out


def test_rules_load_bad_row_changes_nothing(town: Town) -> None:
    catalogue = town.write(
        "bad-rules.csv",
        "code,title,module,points,council\n"
        + "".join(f"B0{n},Rule {n},m,{n},no\n" for n in range(1, 6))
        + "B07,Broken,m,0,no\n",
    )
    before = town.size()
    refused = town.run("rules", "load", "--csv", str(catalogue), signer="admin", cosigners=COUNCIL)
    assert refused.code == 2
    assert "row 7, column points: points must be a non-zero integer" in refused.err
    assert "nothing was submitted" in refused.err
    assert town.size() == before


def test_rules_load_refused_by_the_node_loads_nothing(town: Town) -> None:
    catalogue = town.write("grid-rules.csv", "code,title,module,points,council\nG01,x,m,1,no\n")
    before = town.size()
    refused = town.run("rules", "load", "--csv", str(catalogue), signer="grid")
    assert refused.code == 1
    assert refused.err.startswith(
        "error: the node refused row 2 of grid-rules.csv (no rule of the file was loaded): "
    )
    assert "[PERMISSION_DENIED, check signer-role]" in refused.err
    assert town.size() == before


# ---------------------------------------------------------------------------
# Awards, redemptions, objections, reversals


def test_award_and_deduction(town: Town) -> None:
    awarded = town.run("award", "--account", "award-1", "--rule", "V01", "--qty", "2")
    assert awarded.code == 0, awarded.err
    seq = entry_number(awarded.out)
    day = deed_date(awarded.out)
    assert awarded.out == (
        f"Awarded 10 points to award-1 under rule V01 ×2 (deed of {day}, entry {seq}).\n"
        "award-1 now has a score of 1010 (grade A) and 10 points to spend.\n"
    )
    deducted = town.run(
        "award", "--account", "award-1", "--rule", "D01", "--note", "3 May",
        "--date", TWO_DAYS_AGO,
    )  # fmt: skip
    assert deducted.code == 0, deducted.err
    assert deducted.out.startswith(
        f"Deducted 20 points from award-1 under rule D01 (deed of {TWO_DAYS_AGO}, entry "
    )
    assert "score of 990 (grade A)" in deducted.out
    anonymous = town.account("award-1")
    assert anonymous["texts_withheld"] is True
    assert [entry["note"] for entry in anonymous["entries"]] == [None, None]
    document = town.account("award-1", reader="grid")  # signed with a staff key
    assert document["texts_withheld"] is False
    notes = [entry["note"] for entry in document["entries"]]
    assert notes == [None, "3 May"]
    table = town.run("account", "award-1", signer="council1")
    assert table.code == 0, table.err
    deduction = next(line for line in table.out.splitlines() if " D01 " in line)
    assert deduction.split()[-1] == "May" and "Burned straw in the open" in deduction
    assert "withheld" not in table.out


def test_a_deed_date_out_of_the_window_is_refused_by_the_node(town: Town) -> None:
    before = town.size()
    tomorrow = (date.fromisoformat(town_today()) + timedelta(days=2)).isoformat()
    refused = town.run("award", "--account", "date-1", "--rule", "V01", "--date", tomorrow)
    assert refused.code == 1
    assert f"the award to account date-1 is dated {tomorrow}, after the day it was " in refused.err
    assert "check deed-date]" in refused.err
    old = (date.fromisoformat(town_today()) - timedelta(days=94)).isoformat()
    refused = town.run("award", "--account", "date-1", "--rule", "V01", "--date", old)
    assert refused.code == 1
    assert "more than 92 days before the day it was signed" in refused.err
    assert town.size() == before
    typo = town.run("award", "--account", "date-1", "--rule", "V01", "--date", "2026-02-30")
    assert typo.code == 2
    assert "not a day of the calendar" in typo.err
    day = date.fromisoformat(TWO_DAYS_AGO)
    typed = f"{day.year}/{day.month}/{day.day}"  # as Excel saves a date in a Chinese locale
    accepted = town.run("award", "--account", "date-1", "--rule", "V01", "--date", typed)
    assert accepted.code == 0, accepted.err
    assert f"(deed of {TWO_DAYS_AGO}, entry" in accepted.out


def test_account_ids_are_case_folded_so_one_resident_is_one_account(town: Town) -> None:
    upper = town.run("award", "--account", "DGC-0019", "--rule", "V01")
    assert upper.code == 0, upper.err
    assert "to dgc-0019 under rule V01" in upper.out
    wide = town.run("award", "--account", "\uff24\uff27\uff23-0019", "--rule", "V01")
    assert wide.code == 0, wide.err
    assert town.account("DGC-0019") == town.account("dgc-0019")
    assert town.account("dgc-0019")["score"] == 1010
    path = town.write("folded.csv", "account,rule\nDgc-0019,V01\n")
    assert town.run("submit", "--csv", str(path)).code == 0
    redeemed = town.run(
        "redeem", "--account", "DGC-0019", "--points", "3", "--item", "soap", signer="cashier"
    )
    assert redeemed.code == 0, redeemed.err
    document = town.account("dgc-0019")
    assert (document["score"], document["spendable"]) == (1015, 12)
    refused = town.run("award", "--account", "Dgc 0019", "--rule", "V01")
    assert refused.code == 2
    assert "account id 'Dgc 0019' is not valid" in refused.err


def test_rule_caps_are_set_and_enforced_by_the_node(town: Town) -> None:
    set_rule = town.run(
        "rule", "set", "--code", "P01", "--title", "Night patrol", "--module", "safety",
        "--points", "4", "--max-qty", "3", "--max-per-month", "4",
        signer="admin", cosigners=COUNCIL,
    )  # fmt: skip
    assert set_rule.code == 0, set_rule.err
    assert "at most 3 per award; at most 4 per resident a month" in set_rule.out
    before = town.size()
    over = town.run("award", "--account", "cap-1", "--rule", "P01", "--qty", "4")
    assert over.code == 1
    assert "account cap-1 has qty 4 under rule 'P01', above the rule's limit of 3" in over.err
    assert "check max-qty]" in over.err
    assert town.size() == before
    first = town.run("award", "--account", "cap-1", "--rule", "P01", "--qty", "3")
    assert first.code == 0, first.err
    month = deed_date(first.out)[:7]
    again = town.run("award", "--account", "cap-1", "--rule", "P01", "--qty", "2")
    assert again.code == 1
    assert (
        f"account cap-1 already has qty 3 under rule 'P01' for deeds in {month}; 2 more "
        "would pass the rule's limit of 4 a month"
    ) in again.err
    assert "check max-per-month]" in again.err
    # A reversal frees the month: the reversed award counts nothing.
    reversed_ = town.run(
        "reverse", "--target", str(entry_number(first.out)), "--reason", "double entry",
        signer="council1", cosigners=("council2",),
    )  # fmt: skip
    assert reversed_.code == 0, reversed_.err
    assert town.run("award", "--account", "cap-1", "--rule", "P01", "--qty", "3").code == 0
    assert town.account("cap-1")["score"] == 1012


def test_rules_load_takes_the_caps_columns(town: Town) -> None:
    catalogue = town.write(
        "capped-rules.csv",
        "code,title,module,points,council,max_qty,max_per_month\n"
        "C01,Waste sorted (monthly check),environment,2,no,,1\n"
        "C02,Tree planting,environment,3,no,5,\n",
    )
    loaded = town.run("rules", "load", "--csv", str(catalogue), signer="admin", cosigners=COUNCIL)
    assert loaded.code == 0, loaded.err
    assert town.run("award", "--account", "cap-2", "--rule", "C01").code == 0
    second = town.run("award", "--account", "cap-2", "--rule", "C01")
    assert second.code == 1 and "check max-per-month]" in second.err
    assert town.run("award", "--account", "cap-2", "--rule", "C02", "--qty", "6").code == 1


def test_submit_takes_the_date_column(town: Town) -> None:
    path = town.write(
        "dated.csv",
        f"account,rule,qty,日期,note\ndated-1,V01,1,{TWO_DAYS_AGO},\ndated-2,V01,2,,north\n",
    )
    result = town.run("submit", "--csv", str(path))
    assert result.code == 0, result.err
    summary, read_as, advice, unchecked = result.out.splitlines()
    assert summary.endswith(f" 1 row had no date and got today's, {deed_day(summary)}.")
    assert read_as == "Read dated.csv as UTF-8."
    assert advice == submit.UNDATED_ADVICE
    assert unchecked == submit.UNCHECKED_NOTE  # this town keeps no resident register
    with town.client() as client:
        seqs = [entry.seq for entry in client.get_account("dated-1").entries]
        body = client.get_body(seqs[0])
    assert isinstance(body, Award) and body.date == TWO_DAYS_AGO


def deed_day(summary: str) -> str:
    day = summary.rstrip(".\n").rsplit(" ", 1)[-1]
    assert day in {town_today(), TODAY_AT_START}
    return day


def test_unknown_rule_is_refused_in_plain_words(town: Town) -> None:
    before = town.size()
    refused = town.run("award", "--account", "award-2", "--rule", "V99")
    assert refused.code == 1
    assert refused.out == ""
    assert refused.err == (
        "error: the node refused the award: rule 'V99' is not in the catalogue "
        "[FAILED_PRECONDITION, check rule-inactive]\n"
    )
    assert town.size() == before


def test_council_rule_needs_quorum(town: Town) -> None:
    before = town.size()
    refused = town.run("award", "--account", "council-1", "--rule", "H01", signer="council1")
    assert refused.code == 1
    assert "rule 'H01' needs 2 council signatures, it has 1" in refused.err
    assert "[PERMISSION_DENIED, check quorum]" in refused.err
    assert town.size() == before
    awarded = town.run(
        "award", "--account", "council-1", "--rule", "H01", signer="council1",
        cosigners=("council2",),
    )  # fmt: skip
    assert awarded.code == 0, awarded.err
    assert "Awarded 20 points to council-1 under rule H01" in awarded.out
    seq = entry_number(awarded.out)
    with town.client() as client:
        ((_, leaf),) = client.get_leaves(seq, seq + 1)
    assert len(Envelope.from_bytes(Leaf.from_bytes(leaf).envelope).signatures) == 2


def test_redeem_and_overdraw(town: Town) -> None:
    town.run("award", "--account", "shop-1", "--rule", "V02", "--qty", "3")
    redeemed = town.run(
        "redeem", "--account", "shop-1", "--points", "25", "--item", "大米 5 公斤", signer="cashier"
    )
    assert redeemed.code == 0, redeemed.err
    assert redeemed.out.startswith("Redeemed 25 points of shop-1 for “大米 5 公斤” (entry ")
    assert "shop-1 now has a score of 1030 (grade AA) and 5 points to spend." in redeemed.out

    before = town.size()
    refused = town.run(
        "redeem", "--account", "shop-1", "--points", "6", "--item", "oil", signer="cashier"
    )
    assert refused.code == 1
    assert "account shop-1 has 5 spendable points, cannot redeem 6" in refused.err
    assert "[FAILED_PRECONDITION, check overdraw]" in refused.err
    assert town.size() == before
    refused = town.run("redeem", "--account", "shop-1", "--points", "1", "--item", "oil")
    assert refused.code == 1 and "check signer-role" in refused.err
    assert town.size() == before


def test_objection_then_reversal(town: Town) -> None:
    awarded = town.run("award", "--account", "object-1", "--rule", "V02")
    target = entry_number(awarded.out)
    objected = town.run(
        "objection", "--target", str(target), "--text", "我那天不在村里", signer="cashier"
    )
    assert objected.code == 0, objected.err
    assert objected.out.startswith(f"Recorded the objection to entry {target} (entry ")

    before = town.size()
    refused = town.run("reverse", "--target", str(target), "--reason", "upheld", signer="council1")
    assert refused.code == 1
    assert "a reversal needs 2 council signatures, it has 1" in refused.err
    assert town.size() == before

    reversed_ = town.run(
        "reverse", "--target", str(target), "--reason", "objection upheld",
        signer="council1", cosigners=("council2",),
    )  # fmt: skip
    assert reversed_.code == 0, reversed_.err
    reversal = entry_number(reversed_.out)
    assert reversed_.out == (
        f"Reversed entry {target}, the award to object-1 under rule V02 (entry {reversal}): "
        "its points no longer count.\n"
        "object-1 now has a score of 1000 (grade A) and 0 points to spend.\n"
    )
    (entry,) = town.account("object-1")["entries"]
    assert (entry["seq"], entry["reversed"], entry["reversed_by"]) == (target, True, reversal)

    before = town.size()
    again = town.run(
        "reverse", "--target", str(target), "--reason", "twice",
        signer="council1", cosigners=("council2",),
    )  # fmt: skip
    assert again.code == 1
    assert f"seq {target} was already reversed at seq {reversal}" in again.err
    assert "check double-reverse" in again.err
    assert town.size() == before


def test_reversing_a_redemption_gives_the_points_back(town: Town) -> None:
    town.run("award", "--account", "refund-1", "--rule", "V02")
    redeemed = town.run(
        "redeem", "--account", "refund-1", "--points", "4", "--item", "soap", signer="cashier"
    )
    target = entry_number(redeemed.out)
    reversed_ = town.run(
        "reverse", "--target", str(target), "--reason", "wrong item",
        signer="council1", cosigners=("council2",),
    )  # fmt: skip
    assert reversed_.code == 0, reversed_.err
    reversal = entry_number(reversed_.out)
    assert reversed_.out == (
        f"Reversed entry {target}, the redemption of 4 points by refund-1 (entry {reversal}): "
        "the points are back to spend.\n"
        "refund-1 now has a score of 1010 (grade A) and 10 points to spend.\n"
    )


def test_objection_only_to_an_award(town: Town) -> None:
    before = town.size()
    refused = town.run("objection", "--target", "1", "--text", "this is a key entry")
    assert refused.code == 1
    assert "seq 1 is not an award, cannot object to it" in refused.err
    assert "check target" in refused.err
    assert town.size() == before
    beyond = town.run("objection", "--target", "999", "--text", "no such entry")
    assert beyond.code == 1
    assert "the log has no entry 999 before this one to object to" in beyond.err
    assert town.size() == before


# ---------------------------------------------------------------------------
# Bulk awards


def awards_file(
    town: Town, name: str, rows: int, prefix: str, rule: str = "V01", *, dated: bool = False
) -> Path:
    """A sheet of ``rows`` rows for 7 accounts; ``dated``: with two days ago as the date."""
    lines = ["account,rule,qty,date,note" if dated else "account,rule,qty,note"]
    for row in range(rows):
        qty = "" if row % 3 == 0 else str(row % 3)
        when = f"{TWO_DAYS_AGO}," if dated else ""
        lines.append(f"{prefix}-{row % 7},{rule},{qty},{when}第{row}行")
    return town.write(name, "\n".join(lines) + "\n", bom=True)


def points_of(rows: int) -> dict[int, int]:
    """Points of V01 (5 each) per account suffix, for ``awards_file`` rows."""
    totals: dict[int, int] = {}
    for row in range(rows):
        totals[row % 7] = totals.get(row % 7, 0) + 5 * (row % 3 or 1)
    return totals


def test_submit_records_every_row_and_a_rerun_records_none(
    town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = awards_file(town, "month.csv", 1200, "bulk")
    before = town.size()
    first = town.run("submit", "--csv", str(path))
    assert first.code == 0, first.err
    day = first.out.splitlines()[0].rstrip(".").rsplit(" ", 1)[-1]
    assert day in {town_today(), TODAY_AT_START}
    assert first.out == (
        f"Submitted 1200 of 1200 rows of month.csv: 1200 recorded now; "
        f"entries {before} to {before + 1199}. 1200 rows had no date and got today's, {day}.\n"
        "Read month.csv as UTF-8 (with the byte order mark Excel writes).\n"
        f"{submit.UNDATED_ADVICE}\n{submit.UNCHECKED_NOTE}\n"
    )
    assert first.err == ""  # no progress bar without a terminal
    assert town.size() == before + 1200
    for suffix, points in points_of(1200).items():
        assert town.account(f"bulk-{suffix}")["score"] == 1000 + points

    # Another run of the same file (an hour on, other batch sizes) records nothing. Only
    # the staff tool's clock moves, not the node's: where an hour on would start the
    # town's next day (undated rows would be new deeds, their time an hour ahead of the
    # node's), the run is an hour before instead.
    later = entries.now_ms() + 3_600_000
    if entries.today(later, "Asia/Shanghai") != day:
        later -= 2 * 3_600_000
    monkeypatch.setattr(entries, "now_ms", lambda: later)
    again = town.run("submit", "--csv", str(path), "--batch-size", "333")
    assert again.code == 0, again.err
    if town_today() == day:  # not run across midnight: the undated rows are the same deeds
        assert again.out == (
            "Submitted 1200 of 1200 rows of month.csv: 0 recorded now, 1200 already recorded; "
            f"entries {before} to {before + 1199}. 1200 rows had no date and got today's, "
            f"{day}.\nRead month.csv as UTF-8 (with the byte order mark Excel writes).\n"
        )
        assert town.size() == before + 1200


def test_submit_after_a_lost_answer_records_each_row_once(
    town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = awards_file(town, "crash.csv", 50, "crash", dated=True)
    real_submit = LedgerClient.submit
    calls = 0

    def answer_lost(self: LedgerClient, envelopes: list[bytes], **kwargs: object) -> SubmitResult:
        # The node commits the second batch, then the connection drops before the answer.
        nonlocal calls
        calls += 1
        result = real_submit(self, envelopes, **kwargs)  # type: ignore[arg-type]
        if calls == 2:
            raise SourceError("cannot reach the node at test: connection lost [UNAVAILABLE]")
        return result

    before = town.size()
    monkeypatch.setattr(LedgerClient, "submit", answer_lost)
    crashed = town.run("submit", "--csv", str(path), "--batch-size", "20")
    assert crashed.code == 2
    assert "connection lost" in crashed.err
    assert "Submitted 20 of 50 rows of crash.csv: 20 recorded now" in crashed.out
    assert "The rows sent last may or may not be recorded." in crashed.out
    assert town.size() == before + 40  # the second batch was committed all the same

    monkeypatch.setattr(LedgerClient, "submit", real_submit)
    later = entries.now_ms() + 60_000
    monkeypatch.setattr(entries, "now_ms", lambda: later)  # a re-run at another time
    rerun = town.run("submit", "--csv", str(path), "--batch-size", "20")
    assert rerun.code == 0, rerun.err
    assert rerun.out.startswith(
        "Submitted 50 of 50 rows of crash.csv: 10 recorded now, 40 already recorded; "
        f"entries {before} to {before + 49}."
    )
    assert town.size() == before + 50
    for suffix, points in points_of(50).items():
        assert town.account(f"crash-{suffix}")["score"] == 1000 + points


def test_submit_interrupted_by_ctrl_c_says_what_is_recorded_and_resumes(
    town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = awards_file(town, "ctrl-c.csv", 50, "ctrlc", dated=True)
    real_submit = LedgerClient.submit
    calls = 0

    def interrupted(self: LedgerClient, envelopes: list[bytes], **kwargs: object) -> SubmitResult:
        # Ctrl-C while the second batch is on its way: the node commits it regardless.
        nonlocal calls
        calls += 1
        result = real_submit(self, envelopes, **kwargs)  # type: ignore[arg-type]
        if calls == 2:
            raise KeyboardInterrupt
        return result

    before = town.size()
    monkeypatch.setattr(LedgerClient, "submit", interrupted)
    stopped = town.run("submit", "--csv", str(path), "--batch-size", "20")
    assert stopped.code == 130
    assert stopped.err == "\nerror: interrupted (Ctrl-C)\n"
    assert "Traceback" not in stopped.out
    assert stopped.out.startswith("Submitted 20 of 50 rows of ctrl-c.csv: 20 recorded now; ")
    assert "The rows sent last may or may not be recorded." in stopped.out
    assert town.size() == before + 40

    monkeypatch.setattr(LedgerClient, "submit", real_submit)
    rerun = town.run("submit", "--csv", str(path), "--batch-size", "20")
    assert rerun.code == 0, rerun.err
    assert "10 recorded now, 40 already recorded" in rerun.out
    assert town.size() == before + 50
    for suffix, points in points_of(50).items():
        assert town.account(f"ctrlc-{suffix}")["score"] == 1000 + points


def test_submit_refuses_an_unknown_rule_before_sending_and_takes_the_sheet_once_it_exists(
    town: Town,
) -> None:
    lines = ["account,rule,qty,note"] + [f"resume-{n},V01,1," for n in range(10)]
    lines[7] = "resume-6,N01,1,"  # row 8: a rule the catalogue does not have yet
    path = town.write("resume.csv", "\n".join(lines) + "\n")
    before = town.size()
    refused = town.run("submit", "--csv", str(path), "--batch-size", "5")
    assert refused.code == 2
    assert refused.err == (
        "error: resume.csv: 1 row cannot be used; nothing was submitted. Fix the file and run "
        "the command again:\n  row 8, column rule: rule N01 is not in the town's catalogue\n"
    )
    assert town.size() == before

    fixed = town.run(
        "rule", "set", "--code", "N01", "--title", "New", "--module", "m", "--points", "3",
        signer="admin", cosigners=COUNCIL,
    )  # fmt: skip
    assert fixed.code == 0, fixed.err
    resumed = town.run("submit", "--csv", str(path), "--batch-size", "5")
    assert resumed.code == 0, resumed.err
    assert "10 recorded now" in resumed.out
    assert town.size() == before + 11
    assert town.account("resume-6")["score"] == 1003
    assert town.account("resume-0")["score"] == 1005


def test_the_same_sheet_from_another_grid_worker_records_nothing(town: Town) -> None:
    path = awards_file(town, "other-keys.csv", 12, "keys", dated=True)
    before = town.size()
    assert town.run("submit", "--csv", str(path)).code == 0
    again = town.run("submit", "--csv", str(path), signer="council1")
    assert again.code == 0, again.err
    assert again.out == (
        "Submitted 12 of 12 rows of other-keys.csv: 0 recorded now, 12 already recorded; "
        f"entries {before} to {before + 11}.\n"
        "Read other-keys.csv as UTF-8 (with the byte order mark Excel writes).\n"
    )
    assert town.size() == before + 12


def test_submit_bad_rows_change_nothing(town: Town) -> None:
    path = town.write(
        "bad-awards.csv", "account,rule,qty,note\nok-1,V01,1,\n张三,V01,1,\nok-2,V01,0,\n"
    )
    before = town.size()
    refused = town.run("submit", "--csv", str(path))
    assert refused.code == 2
    assert "row 3, column account: account id '张三' is not valid" in refused.err
    assert "row 4, column qty: qty must be at least 1, not 0" in refused.err
    assert town.size() == before


def test_an_award_made_by_hand_is_not_a_row_of_a_sheet(town: Town) -> None:
    # An award identical to a sheet's row, made with 'redlist award', has a random id:
    # the sheet's row is another deed, recorded when the sheet is submitted.
    day = TWO_DAYS_AGO
    hand = town.run("award", "--account", "alike-1", "--rule", "V01", "--note", "n", "--date", day)
    assert hand.code == 0, hand.err
    path = town.write("alike.csv", f"account,rule,qty,date,note\nalike-1,V01,1,{day},n\n")
    result = town.run("submit", "--csv", str(path))
    assert result.code == 0 and "1 recorded now" in result.out, result.out
    assert town.account("alike-1")["score"] == 1010


# ---------------------------------------------------------------------------
# Accounts and the console script


def test_account_json_and_table(town: Town) -> None:
    town.run("award", "--account", "show-1", "--rule", "V02", "--qty", "6", "--note", "防疫")
    town.run("redeem", "--account", "show-1", "--points", "40", "--item", "油", signer="cashier")
    document = town.account("show-1", reader="cashier")
    assert {key: document[key] for key in ("score", "spendable", "redeemed", "grade")} == {
        "score": 1060,
        "spendable": 20,
        "redeemed": 40,
        "grade": "AAA",
    }
    assert document["log"] == ORIGIN and document["time_zone"] == "Asia/Shanghai"
    award, redemption = document["entries"]
    assert (award["kind"], award["rule"], award["qty"], award["points"]) == ("award", "V02", 6, 60)
    assert (redemption["kind"], redemption["item"], redemption["points"]) == ("redeem", "油", 40)
    assert award["date"].endswith("+08:00")

    table = town.run("account", "show-1", signer=None)
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].startswith(f"Account show-1 in log {ORIGIN}, as of entry ")
    assert "(grade AAA)" in lines[1]
    # entry, recorded, deed date, kind, rule, title, points, reversed, note
    assert re.search(
        rf"^\s*{award['seq']}\s+\S+ \S+\s+\S+\s+award\s+V02 ×6\s+Epidemic prevention duty\s+"
        r"\+60\s+\(withheld\)$",
        table.out,
        re.M,
    )
    assert re.search(r"redemption\s+\(withheld\)\s+-40$", table.out, re.M)
    staff = town.run("account", "show-1", signer="cashier")
    assert re.search(r"award\s+V02 ×6\s+Epidemic prevention duty\s+\+60\s+防疫$", staff.out, re.M)
    assert re.search(r"redemption\s+油\s+-40$", staff.out, re.M)


def test_account_of_nobody_yet(town: Town) -> None:
    document = town.account("nobody-1")
    assert (document["score"], document["grade"], document["entries"]) == (1000, "A", [])


def test_console_script_exit_codes(town: Town) -> None:
    # The log key this computer remembers for the town, given by nothing on the command line.
    remembered = {**os.environ, "XDG_CONFIG_HOME": str(town.configuration)}
    ok = subprocess.run(
        [BIN / "redlist", "account", "show-1", "--node", town.address, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=remembered,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["account"] == "show-1"
    unreachable = subprocess.run(
        [
            BIN / "redlist",
            "account",
            "show-1",
            "--node",
            "127.0.0.1:1",
            "--log-key",
            str(town.log_pub),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("error: cannot reach the node at 127.0.0.1:1")


# ---------------------------------------------------------------------------
# Governance: the catalogue and the staff list change only with the council


def test_the_admin_alone_changes_neither_the_catalogue_nor_the_staff_list(town: Town) -> None:
    before = town.size()
    rule = town.run(
        "rule", "set", "--code", "V01", "--title", "Pond", "--module", "environment",
        "--points", "10000", signer="admin",
    )  # fmt: skip
    assert rule.code == 1
    assert rule.err.startswith("error: the node refused rule V01: rule changes need 1 admin and 2")
    assert rule.err.rstrip().endswith("[PERMISSION_DENIED, check quorum]")
    thief = SigningKey.from_seed(b"t" * 32).public.hex()
    key = town.run(
        "key", "add", "--pub", thief, "--name", "Thief", "--roles", "admin", signer="admin"
    )
    assert key.code == 1
    assert "key changes need 2 admins, or 1 admin and 2 council members" in key.err
    one_council = town.run("rule", "retire", "--code", "V02", signer="admin", cosigners=COUNCIL[:1])
    assert one_council.code == 1
    assert "check quorum" in one_council.err
    assert town.size() == before


def test_rules_load_takes_the_decided_column_and_rules_list_shows_it(town: Town) -> None:
    catalogue = town.write(
        "voted-rules.csv",
        "code,title,module,points,council,decided\r\n"
        "M01,Night patrol,public-safety,4,no,村民代表大会 2026-05-03\r\n"
        "M02,Sorted the rubbish,environment,2,no,\r\n",
    )
    loaded = town.run("rules", "load", "--csv", str(catalogue), signer="admin", cosigners=COUNCIL)
    assert loaded.code == 0, loaded.err
    listed = town.run("rules", "list", signer=None)
    assert listed.code == 0, listed.err
    assert listed.out.startswith(f"Rules of log {ORIGIN} as of entry ")
    header = listed.out.splitlines()[1].split()
    assert header == [
        "code", "title", "points", "module", "council", "max_qty", "max_per_month", "decided",
        "status",
    ]  # fmt: skip
    line = next(line for line in listed.out.splitlines() if line.startswith("M01"))
    assert line.split()[-3:] == ["村民代表大会", "2026-05-03", "active"]
    as_json = json.loads(town.run("rules", "list", "--json", signer=None).out)
    rules = {rule["code"]: rule for rule in as_json["rules"]}
    assert rules["M01"]["decided"] == "村民代表大会 2026-05-03"
    assert rules["M02"]["decided"] is None
    assert rules["V01"] == {
        "code": "V01",
        "title": "Cleaned the village pond",
        "points": 5,
        "module": "environment",
        "council": False,
        "max_qty": None,
        "max_per_month": None,
        "decided": None,
        "active": True,
        "seq": rules["V01"]["seq"],
    }


def test_keys_list_shows_every_key_with_its_roles_and_seqs(town: Town) -> None:
    listed = town.run("keys", "list", signer=None)
    assert listed.code == 0, listed.err
    assert listed.out.startswith(f"Staff keys of log {ORIGIN} as of entry ")
    assert listed.out.splitlines()[1].split() == ["key", "id", "name", "roles", "added", "at",
                                                  "revoked", "at"]  # fmt: skip
    admin_id = keyfile.read_signing_key(town.keys["admin"]).key_id.hex()
    admin_line = next(line for line in listed.out.splitlines() if line.startswith(admin_id))
    assert admin_line.split() == [admin_id, "admin", "admin", "0"]
    keys = json.loads(town.run("keys", "list", "--json", signer=None).out)["keys"]
    council1 = keyfile.read_signing_key(town.keys["council1"])
    (entry,) = [key for key in keys if key["key_id"] == council1.key_id.hex()]
    assert entry == {
        "key_id": council1.key_id.hex(),
        "public_key": council1.public.hex(),
        "name": "council1",
        "roles": ["council", "grid"],
        "added": entry["added"],
        "revoked": None,
        "active": True,
    }
    assert [key["key_id"] for key in keys] == sorted(key["key_id"] for key in keys)
