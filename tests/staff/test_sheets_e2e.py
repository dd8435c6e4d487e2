"""The clerk's month against a real node: sheets saved again, corrected, repeated and
refused, each recording exactly the rows it should (``redlist submit``), and the node's
look-ups the staff tools ask before sending (``FindEntries``, ``GetRules``,
``GetMonthCounts``).

The town is ``redlist-node serve`` in a subprocess on 127.0.0.1:0 (``tests.staff.towns``),
with a few capped and retired rules beside the usual catalogue. Tests use their own
account ids; every refusal is checked to leave the log exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from tests.staff.towns import COUNCIL, ORIGIN, TODAY_AT_START, Town, served_town

from redlist.ledger import keyfile
from redlist.ledger.entry import Award
from redlist.ledger.textcommit import commit
from redlist.proto.errors import NodeError
from redlist.staff import entries, signing
from redlist.staff.commands import submit
from redlist.staff.problems import PROBLEM_COLUMNS
from redlist.staff.rowids import Deed

#: Capped and retired rules, loaded beside the usual catalogue.
MORE_RULES = (
    "code,title,module,points,council,max_qty,max_per_month\n"
    "P01,Night patrol,public safety,4,no,3,4\n"
    "R01,Old rule,environment,2,no,,\n"
)


def days_ago(days: int) -> str:
    return (date.fromisoformat(TODAY_AT_START) - timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    with served_town(tmp_path_factory.mktemp("sheets")) as served:
        more = served.write("more.csv", MORE_RULES)
        loaded = served.run("rules", "load", "--csv", str(more), signer="admin", cosigners=COUNCIL)
        assert loaded.code == 0, loaded.err
        retired = served.run("rule", "retire", "--code", "R01", signer="admin", cosigners=COUNCIL)
        assert retired.code == 0, retired.err
        yield served


def sheet(town: Town, name: str, rows: list[str], *, crlf: bool = False, bom: bool = False) -> Path:
    newline = "\r\n" if crlf else "\n"
    text = newline.join(["account,rule,qty,date,note", *rows]) + newline
    return town.write(name, text, bom=bom)


def submitted(town: Town, path: Path, *args: str, signer: str = "grid") -> str:
    result = town.run("submit", "--csv", str(path), *args, signer=signer)
    assert result.code == 0, result.err
    return result.out


# ---------------------------------------------------------------------------
# Rows are known by what they say


def test_a_sheet_saved_again_records_nothing(town: Town) -> None:
    day = date.fromisoformat(days_ago(3))
    rows = [
        f"save-1,V01,1,{day.isoformat()},pond",
        f"save-2,V02,2,{day.isoformat()},",
        f"save-3,D01,,{day.isoformat()},north canal",
    ]
    before = town.size()
    assert "3 recorded now" in submitted(town, sheet(town, "saved.csv", rows))
    # Excel's save: CRLF, a byte order mark, spaces, other case, its own date format,
    # qty 1 written out, the rows sorted another way.
    excel_day = f"{day.year}/{day.month}/{day.day}"
    resaved = [
        f" SAVE-3 ,D01,1,{excel_day}, north canal ",
        f"save-1,V01,1.0,{excel_day},pond   ",
        f"save-2 , V02 ,2,{day.isoformat()},",
    ]
    path = sheet(town, "saved.csv", resaved, crlf=True, bom=True)
    out = submitted(town, path)
    assert out.startswith(
        f"Submitted 3 of 3 rows of saved.csv: 0 recorded now, 3 already recorded; "
        f"entries {before} to {before + 2}."
    )
    assert town.size() == before + 3


def test_identical_rows_are_separate_deeds_counted_by_occurrence(town: Town) -> None:
    row = f"twice-1,V01,1,{days_ago(1)},pond"
    before = town.size()
    assert "2 recorded now" in submitted(town, sheet(town, "twice.csv", [row, row]))
    assert town.account("twice-1")["score"] == 1010
    again = submitted(town, sheet(town, "twice.csv", [row, row]))
    assert "0 recorded now, 2 already recorded" in again
    thrice = submitted(town, sheet(town, "twice.csv", [row, "twice-2,V01,,,", row, row]))
    assert "2 recorded now, 2 already recorded" in thrice  # the third deed and twice-2
    assert town.size() == before + 4
    assert town.account("twice-1")["score"] == 1015


def test_the_same_rows_with_next_months_dates_are_recorded(town: Town) -> None:
    rows = ["month-1,V01,1,{day},", "month-2,V02,1,{day},patrol"]
    first = [row.format(day=days_ago(40)) for row in rows]
    later = [row.format(day=days_ago(10)) for row in rows]
    before = town.size()
    assert "2 recorded now" in submitted(town, sheet(town, "april.csv", first))
    out = submitted(town, sheet(town, "may.csv", later))
    assert out.startswith("Submitted 2 of 2 rows of may.csv: 2 recorded now;")
    assert town.size() == before + 4


def test_correcting_one_row_of_a_long_sheet_records_that_row_alone(town: Town) -> None:
    day = days_ago(5)
    rows = [f"fix-{n % 400},V01,{n % 3 + 1},{day},row {n}" for n in range(2000)]
    before = town.size()
    assert "2000 recorded now" in submitted(town, sheet(town, "long.csv", rows))
    assert town.size() == before + 2000
    typo_account = rows[1499].split(",")[0]
    score_before = town.account("fix-corrected")["score"]
    rows[1499] = rows[1499].replace(typo_account, "fix-corrected", 1)  # the typo fixed
    out = submitted(town, sheet(town, "long.csv", rows))
    lines = out.splitlines()
    assert lines[0].startswith(
        "Submitted 2000 of 2000 rows of long.csv: 1 recorded now, 1999 already recorded;"
    )
    assert lines[1] == "Read long.csv as UTF-8."
    assert lines[2] == submit.CORRECTED_ADVICE
    assert town.size() == before + 2001
    assert town.account("fix-corrected")["score"] == score_before + 5 * (1499 % 3 + 1)


def test_a_row_whose_id_holds_another_entry_is_a_conflict_not_success(town: Town) -> None:
    # Someone recorded an award under the id of a row, saying something else (qty 2):
    # the sheet is refused as a conflict, and nothing of it is sent.
    day = days_ago(1)
    deed = Deed(ORIGIN, "clash-1", "V01", 1, day, "")
    forged = Award(ORIGIN, deed.entry_id(1), entries.now_ms(), "clash-1", "V01", 2, date=day)
    grid = keyfile.read_signing_key(town.keys["grid"])
    with town.client() as client:
        client.submit([signing.seal(forged, [grid])])
    before = town.size()
    rows = [f"clash-1,V01,1,{day},", f"clash-2,V01,1,{day},"]
    result = town.run("submit", "--csv", str(sheet(town, "clash.csv", rows)))
    assert result.code == 1
    assert result.err.startswith(
        "error: clash.csv: the log holds an entry under the id of row 2 that does not say what "
        "the row says; nothing was submitted."
    )
    assert f"row 2 (clash-1, rule V01): entry {before - 1} has its id but says an award" in (
        result.err
    )
    assert town.size() == before


# ---------------------------------------------------------------------------
# Everything is checked before anything is sent


def test_bad_rows_anywhere_are_all_listed_and_nothing_is_sent(town: Town, tmp_path: Path) -> None:
    good = [f"check-{n},V01,1,{days_ago(2)}," for n in range(300)]
    rows = list(good)
    rows[0] = f"check-a,V99,1,{days_ago(2)},"  # row 2: an unknown rule
    rows[150] = f"check-b,R01,1,{days_ago(2)},"  # row 152: a retired rule
    rows[151] = f"check-c,P01,5,{days_ago(2)},"  # row 153: over max_qty and the month's cap
    rows[152] = f"check-d,H01,1,{days_ago(2)},"  # row 154: a council rule, one signer
    rows[153] = f"check-e,V01,1,{days_ago(-3)},"  # row 155: a date after today
    rows[154] = f"check-f,V01,1,{days_ago(100)},"  # row 156: older than the town allows
    rows[155] = f"check-g,P01,3,{days_ago(2)},"  # row 157: fine alone ...
    rows[156] = f"check-g,P01,2,{days_ago(2)},"  # row 158: ... over the month's 4 with it
    rows[-1] = f"check-h,v01,1,{days_ago(2)},"  # row 301: a rule code in the wrong case
    before = town.size()
    errors = tmp_path / "errors.csv"
    result = town.run("submit", "--csv", str(sheet(town, "bad.csv", rows)), "--errors", str(errors))
    assert result.code == 2
    assert town.size() == before
    assert result.err.startswith(
        "error: bad.csv: 8 rows (9 problems) cannot be used; nothing was submitted. Fix the "
        "file and run the command again:\n"
    )
    for line in (
        "row 2, column rule: rule V99 is not in the town's catalogue",
        "row 152, column rule: rule R01 was retired (entry ",
        "row 153, column qty: qty 5 is more than rule P01 allows in one award (3)",
        "row 154, column rule: rule H01 needs the council: an award under it needs 2 council "
        "members' signatures, and this sheet is signed by 1",
        f"row 155, column date: the date {days_ago(-3)} is after today",
        f"row 156, column date: the date {days_ago(100)} is more than 92 days ago",
        "row 158, column qty: check-g would get qty 5 under rule P01 for deeds in "
        f"{days_ago(2)[:7]} (0 already recorded, 3 in the rows above, 2 in this row); the "
        "rule allows 4 a month",
        "row 301, column rule: rule v01 is not in the town's catalogue (did you mean V01?)",
    ):
        assert line in result.err
    written = errors.read_bytes()
    assert written.startswith(b"\xef\xbb\xbf" + ",".join(PROBLEM_COLUMNS).encode())
    assert written.decode("utf-8-sig").count("\r\n") == 1 + 9
    assert "All 9 problems are listed in" in result.out


def test_the_monthly_cap_counts_what_the_log_already_has(town: Town) -> None:
    day = days_ago(1)
    assert "1 recorded now" in submitted(town, sheet(town, "cap-1.csv", [f"cap-1,P01,3,{day},"]))
    before = town.size()
    result = town.run("submit", "--csv", str(sheet(town, "cap-2.csv", [f"cap-1,P01,2,{day},x"])))
    assert result.code == 2
    assert "(3 already recorded, 0 in the rows above, 2 in this row)" in result.err
    assert town.size() == before


def test_a_long_list_of_problems_is_cut_short(town: Town) -> None:
    rows = [f"many-{n},X{n:02d},1,," for n in range(70)]
    result = town.run("submit", "--csv", str(sheet(town, "many.csv", rows)))
    assert result.code == 2
    assert result.err.count("\n  row ") == 50
    assert "... and 20 more (--errors FILE writes them all)" in result.err


# ---------------------------------------------------------------------------
# --dry-run


def test_dry_run_says_what_would_be_recorded_and_sends_nothing(town: Town) -> None:
    day = days_ago(2)
    assert "1 recorded now" in submitted(town, sheet(town, "dry-0.csv", [f"dry-1,V02,1,{day},"]))
    rows = [
        f"dry-1,V02,1,{day},",  # recorded above
        f"dry-1,V02,2,{day},",  # 1010 -> 1030: grade A to AA
        f"dry-2,V01,1,{day},",
        f"dry-3,D01,1,{day},",  # 1000 -> 980: stays A
    ]
    before = town.size()
    result = town.run("submit", "--csv", str(sheet(town, "dry.csv", rows)), "--dry-run")
    assert result.code == 0, result.err
    assert town.size() == before
    assert result.out.splitlines() == [
        "Dry run: nothing was signed or sent. Of the 4 rows of dry.csv, 3 would be recorded "
        "now and 1 is already recorded.",
        "Points per rule, of the rows to record:",
        "  D01       -20       1 row  Burned straw in the open",
        "  V01        +5       1 row  Cleaned the village pond",
        "  V02       +20       1 row  Epidemic prevention duty",
        "Residents whose grade would change (1):",
        "  dry-1  A -> AA  (score 1010 -> 1030)",
        "Read dry.csv as UTF-8.",
        submit.UNCHECKED_NOTE,  # this town keeps no resident register
    ]


# ---------------------------------------------------------------------------
# The node's look-ups


def test_the_node_answers_the_look_ups_and_refuses_malformed_ones(town: Town) -> None:
    day = days_ago(1)
    assert "1 recorded now" in submitted(town, sheet(town, "look.csv", [f"look-1,P01,2,{day},"]))
    with town.client() as client:
        rules = client.get_rules()
        assert rules["P01"].max_qty == 3 and rules["P01"].max_per_month == 4
        assert rules["V01"].max_qty is None and rules["V01"].active
        assert not rules["R01"].active
        assert client.month_counts([("look-1", "P01", day[:7]), ("look-2", "P01", day[:7])]) == [
            2,
            0,
        ]
        assert client.find_entries([b"\x01" * 16]) == {}
        with pytest.raises(NodeError, match="an entry id is 16 bytes, not 5") as short:
            client.find_entries([b"short"])
        assert short.value.code == "INVALID_ARGUMENT"
        with pytest.raises(NodeError, match="not of the form YYYY-MM") as month:
            client.month_counts([("look-1", "P01", "May 2026")])
        assert month.value.code == "INVALID_ARGUMENT"


# ---------------------------------------------------------------------------
# Bulk reversal


def test_a_sheet_submitted_by_mistake_is_reversed_whole_once(town: Town) -> None:
    day = days_ago(4)
    rows = [f"undo-{n % 3},V01,{n % 2 + 1},{day},mistake" for n in range(6)]
    path = sheet(town, "mistake.csv", rows)
    assert "6 recorded now" in submitted(town, path)
    assert town.account("undo-0")["score"] == 1000 + 5 * 3
    before = town.size()
    argv = ["reverse", "--sheet", str(path), "--reason", "sheet sent twice, council 5 May"]

    unconfirmed = town.run(*argv, signer="council1", cosigners=("council2",))
    assert unconfirmed.code == 2
    assert "nothing was reversed: confirm the 6 reversals by running the command again with " in (
        unconfirmed.err
    )
    assert "mistake.csv: 6 entries to reverse." in unconfirmed.out
    assert f"  {before - 6:>5}  undo-0                V01               +5  {day}" in (
        unconfirmed.out
    )
    one_signer = town.run(*argv, "--yes", signer="council1")
    assert one_signer.code == 1
    assert "needs 2 council signatures" in one_signer.err or "quorum" in one_signer.err
    assert town.size() == before

    done = town.run(*argv, "--yes", signer="council1", cosigners=("council2",))
    assert done.code == 0, done.err
    assert (
        f"Reversed 6 entries (entries {before} to {before + 5}): their points no longer count."
        in done.out
    )
    assert town.size() == before + 6
    for account in ("undo-0", "undo-1", "undo-2"):
        assert town.account(account)["score"] == 1000

    again = town.run(*argv, "--yes", signer="council1", cosigners=("council2",))
    assert again.code == 0, again.err
    assert again.out == (
        "mistake.csv: 0 entries to reverse; 6 already reversed, left as they are.\n"
        "Read mistake.csv as UTF-8.\nNothing to reverse.\n"
    )
    assert town.size() == before + 6


def test_reversals_from_a_list_of_entry_numbers(town: Town) -> None:
    day = days_ago(4)
    path = sheet(town, "list-src.csv", [f"list-{n},V02,1,{day}," for n in range(3)])
    assert "3 recorded now" in submitted(town, path)
    first = town.size() - 3
    by_hand = town.run(
        "reverse", "--target", str(first), "--reason", "objection upheld",
        signer="council1", cosigners=("council2",),
    )  # fmt: skip
    assert by_hand.code == 0, by_hand.err
    listing = town.write(
        "reversals.csv",
        f"序号,原因\n{first},objection upheld\n{first + 1},\n{first + 2},wrong resident\n",
        bom=True,
    )
    before = town.size()
    result = town.run(
        "reverse", "--csv", str(listing), "--reason", "council 5 May", "--yes",
        signer="council1", cosigners=("council2",),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "reversals.csv: 2 entries to reverse; 1 already reversed, left as they are." in (
        result.out
    )
    assert town.size() == before + 2
    with town.client() as client:
        bodies = [client.get_body(seq) for seq in (before, before + 1)]
    # The bodies hold commitments; the reasons are the node's, under salts derived from
    # the first signer's key (entries.derived_salt).
    salt = entries.derived_salt(keyfile.read_signing_key(town.keys["council1"]))
    assert [
        getattr(body, "reason", None) == commit(reason, salt(body.id, "reason"))
        for body, reason in zip(bodies, ("council 5 May", "wrong resident"), strict=True)
    ] == [True, True]


def test_a_reversal_list_with_bad_rows_reverses_nothing(town: Town) -> None:
    listing = town.write("bad-reversals.csv", "seq,reason\n0,x\n1,y\n99999999,z\nabc,w\n")
    before = town.size()
    result = town.run(
        "reverse", "--csv", str(listing), "--yes", signer="council1", cosigners=("council2",)
    )
    assert result.code == 2
    assert "row 2, column seq: the target must be the entry number of an award, not 0" in (
        result.err
    )
    assert "row 5, column seq: seq must be a whole number, not 'abc'" in result.err
    fixed = town.write("bad-reversals.csv", "seq,reason\n1,y\n99999999,z\n")
    result = town.run(
        "reverse", "--csv", str(fixed), "--yes", signer="council1", cosigners=("council2",)
    )
    assert result.code == 2
    assert "row 2, column seq: entry 1 is a key entry: only awards and redemptions" in result.err
    assert "row 3, column seq: entry 99999999 is not in the log" in result.err
    assert town.size() == before
