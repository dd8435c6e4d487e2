"""CSV files from a spreadsheet: row ids, catalogues and bulk awards (redlist.staff.csvfiles)."""

from __future__ import annotations

import csv
import io
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import i18n
from redlist.ledger.entry import RuleChange
from redlist.ledger.errors import FormatError
from redlist.ledger.text import REFUSED_CATEGORIES
from redlist.staff import csvfiles, entries
from redlist.staff.problems import MAX_SHOWN_PROBLEMS, Problem, SheetError, problems_csv

LOG = "wendeng.example/redlist"
STAMP = entries.Stamp(LOG, bytes(range(16)), 1_767_225_600_000)
BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------------------
# Row ids


def test_row_ids_are_stable_and_differ_by_file_row_and_purpose() -> None:
    digest = csvfiles.file_digest(b"account,rule\ndgc-1,V01\n")
    other = csvfiles.file_digest(b"account,rule\ndgc-1,V02\n")
    first = csvfiles.row_entry_id(digest, "awards", 2)
    assert first == csvfiles.row_entry_id(digest, "awards", 2)
    assert len(first) == 16
    assert first != csvfiles.row_entry_id(digest, "awards", 3)
    assert first != csvfiles.row_entry_id(other, "awards", 2)
    assert first != csvfiles.row_entry_id(digest, "rules", 2)


@settings(max_examples=200)
@given(st.binary(max_size=64), st.binary(max_size=64), st.integers(1, 10**6))
def test_different_files_never_share_row_ids(a: bytes, b: bytes, row: int) -> None:
    if a != b:
        assert csvfiles.row_entry_id(
            csvfiles.file_digest(a), "awards", row
        ) != csvfiles.row_entry_id(csvfiles.file_digest(b), "awards", row)


# ---------------------------------------------------------------------------
# CSV files


def rules_file(*rows: str, bom: bool = False) -> bytes:
    text = "code,title,module,points,council\n" + "".join(row + "\n" for row in rows)
    return (BOM if bom else b"") + text.encode("utf-8")


def test_rules_csv_with_bom_and_every_council_word() -> None:
    words = ["true", "FALSE", "yes", "No", "1", "0", "是", "否"]
    data = rules_file(
        *(f"R{n},Rule {n},m,{n + 1},{word}" for n, word in enumerate(words)), bom=True
    )
    rows = csvfiles.parse_rules_csv(data, "rules.csv")
    assert [row.council for row in rows] == [True, False, True, False, True, False, True, False]
    assert rows[0] == csvfiles.RuleRow(2, "R0", "Rule 0", "m", 1, True)
    assert [row.row for row in rows] == list(range(2, 10))


def test_rules_csv_columns_in_any_order_and_case() -> None:
    data = "Points,COUNCIL,code,module,title\r\n-20,否,D01,environment,焚烧秸秆\r\n".encode()
    (row,) = csvfiles.parse_rules_csv(data, "rules.csv")
    assert row == csvfiles.RuleRow(2, "D01", "焚烧秸秆", "environment", -20, False)
    body = row.body(STAMP).body
    assert isinstance(body, RuleChange) and body.points == -20 and body.council is False


def test_rules_csv_names_the_bad_row_as_a_spreadsheet_numbers_it() -> None:
    data = rules_file(
        "V01,Pond,environment,5,no",
        "V02,Duty,service,10,no",
        "",  # blank lines are skipped but still counted, as in a spreadsheet
        "V03,Other,service,10,no",
        "V04,Dispute,harmony,20,是",
        "V05,Broken,harmony,zero,no",
    )
    with pytest.raises(FormatError) as refused:
        csvfiles.parse_rules_csv(data, "rules.csv")
    message = refused.value.diagnostics()
    assert "row 7, column points: points must be a non-zero integer" in message
    assert "nothing was submitted" in message


def test_rules_csv_reports_every_bad_row() -> None:
    data = rules_file(
        "V01,Pond,environment,0,no",
        "V02,,service,10,no",
        "V03,Other,service,10,maybe",
        "V04,Ok,service,5,no",
        "V05,Short,service",
    )
    with pytest.raises(FormatError) as refused:
        csvfiles.parse_rules_csv(data, "rules.csv")
    message = refused.value.diagnostics()
    assert "4 rows cannot be used" in message
    assert "row 2, column points: points must be a non-zero integer, not '0'" in message
    assert "row 3, column title: title must not be empty" in message
    assert "row 4, column council: council must be one of true/false/yes/no/1/0/是/否" in message
    assert "row 6: has 3 cells, the header has 5" in message
    assert "row 5" not in message


def test_rules_csv_refuses_a_code_twice() -> None:
    data = rules_file("V01,Pond,environment,5,no", "V02,Duty,service,10,no", "V01,Again,x,1,no")
    with pytest.raises(FormatError, match="row 4: rule code 'V01' already appears in row 2"):
        csvfiles.parse_rules_csv(data, "rules.csv")


def test_long_lists_of_problems_are_cut_short_and_kept_whole() -> None:
    data = rules_file(*(f"V{n},Pond,environment,0,no" for n in range(80)))
    with pytest.raises(SheetError) as refused:
        csvfiles.parse_rules_csv(data, "rules.csv")
    message = refused.value.diagnostics()
    assert "80 rows cannot be used" in message
    assert "... and 30 more (--errors FILE writes them all)" in message
    assert message.count("\n  row ") == MAX_SHOWN_PROBLEMS
    assert [problem.row for problem in refused.value.problems] == list(range(2, 82))


def test_problems_are_written_as_a_csv_file_excel_opens() -> None:
    problems = [Problem(3, "account", "account id 'x y' is not valid"), Problem(9, "", "a, b")]
    data = problems_csv(problems)
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig") == (
        "row,column,problem\r\n3,account,account id 'x y' is not valid\r\n9,,\"a, b\"\r\n"
    )


def test_the_problems_file_speaks_the_clerks_language() -> None:
    """A clerk working in Chinese opens a file headed 行,列,问题 whose columns are named
    as the sheet's Chinese headers and the messages name them."""
    i18n.setup(i18n.CHINESE)
    data = problems_csv([Problem(3, "account", "账户号无效"), Problem(9, "", "有 3 个单元格")])
    assert data.decode("utf-8-sig") == "行,列,问题\r\n3,账户,账户号无效\r\n9,,有 3 个单元格\r\n"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "is empty"),
        (b"code,title,module,points,council\n", "no rows below its header"),
        (b"code,title,module,points\nV01,a,b,1\n", "missing: council"),
        (b"code,title,module,points,council,extra\n", "'extra' is not among them"),
        (b"code,code,title,module,points,council\n", "names column 'code' twice"),
        (b"code,title,module,points,council\nV01,\xff,m,1,no\n", "neither UTF-8 nor GB18030"),
        (b'code,title,module,points,council\nV01,"open quote,m,1,no\n', "never closed"),
    ],
)
def test_unusable_files(data: bytes, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        csvfiles.parse_rules_csv(data, "rules.csv")


def excel_file(*rows: str, encoding: str = "utf-8") -> bytes:
    """Rows as Excel saves them: CRLF line ends, a BOM (for UTF-8), spaces in the header
    and empty rows of commas at the end."""
    header = " Account , Rule ,QTY, Note "
    text = "\r\n".join((header, *rows, ",,,", ",,,")) + "\r\n"
    return (BOM if encoding == "utf-8" else b"") + text.encode(encoding)


def test_awards_csv_as_excel_saves_it() -> None:
    data = excel_file("dgc-0001,V01,2.0,池塘 5月3日", "dgc-0002,D01,,", "dgc-0003, V02 , 3 ,")
    assert csvfiles.parse_awards_csv(data, "may.csv") == (
        csvfiles.AwardRow(2, "dgc-0001", "V01", 2, "池塘 5月3日"),
        csvfiles.AwardRow(3, "dgc-0002", "D01", 1, None),
        csvfiles.AwardRow(4, "dgc-0003", "V02", 3, None),
    )


def test_rules_csv_points_as_excel_writes_them() -> None:
    (row,) = csvfiles.parse_rules_csv(rules_file("V01,Pond,environment,5.00,no"), "rules.csv")
    assert row.points == 5
    with pytest.raises(
        FormatError, match=r"row 2, column points: points must be a non-zero integer, not '0\.0'"
    ):
        csvfiles.parse_rules_csv(rules_file("V01,Pond,environment,0.0,no"), "rules.csv")
    with pytest.raises(
        FormatError, match=r"row 2, column points: points must be a non-zero integer, not '2\.5'"
    ):
        csvfiles.parse_rules_csv(rules_file("V01,Pond,environment,2.5,no"), "rules.csv")


def test_csv_in_the_chinese_windows_encoding_reads_as_the_same_rows() -> None:
    """Excel's plain "CSV" on a Chinese Windows writes GB18030 (GBK): the same rows as the
    sheet saved as "CSV UTF-8", and the summary line says how it was read."""
    rows = ("dgc-0001,V01,1,", "dgc-0002,V01,1,池塘（东头）", "dgc-0003,V02,2,防疫值守")
    utf8, gbk = excel_file(*rows), excel_file(*rows, encoding="gbk")
    assert csvfiles.parse_awards_csv(gbk, "may.csv") == csvfiles.parse_awards_csv(utf8, "may.csv")
    assert csvfiles.parse_awards_csv(gbk, "may.csv")[1].note == "池塘（东头）"
    assert csvfiles.read_as(gbk, "may.csv") == (
        "Read may.csv as GB18030 (the Chinese Windows encoding)."
    )
    assert csvfiles.read_as(utf8, "may.csv") == (
        "Read may.csv as UTF-8 (with the byte order mark Excel writes)."
    )
    assert csvfiles.read_as(utf8[len(BOM) :], "may.csv") == "Read may.csv as UTF-8."


def test_catalogues_and_reversal_lists_in_the_chinese_windows_encoding() -> None:
    rules = "代码,名称,模块,分值,需评议\r\nV01,清理村塘,环境,5,否\r\n".encode("gb18030")
    assert csvfiles.parse_rules_csv(rules, "规则.csv") == (
        csvfiles.RuleRow(2, "V01", "清理村塘", "环境", 5, False),
    )
    reversals = "序号,原因\r\n57,异议成立\r\n".encode("gb18030")
    assert csvfiles.parse_reversals_csv(reversals, "撤销.csv") == (
        csvfiles.ReversalRow(2, 57, "异议成立"),
    )


def test_csv_saved_as_unicode_text_is_refused_with_the_way_out() -> None:
    with pytest.raises(FormatError) as refused:
        csvfiles.parse_awards_csv(b"\xff\xfe\x00\x80\x81", "x.csv")
    assert refused.value.diagnostics() == (
        "x.csv is saved as 'Unicode text' (UTF-16); in Excel use Save As, 'CSV UTF-8 "
        "(comma delimited) (*.csv)'"
    )


def test_csv_that_is_no_text_at_all_names_the_row() -> None:
    data = b"account,rule\r\ndgc-1,V01\r\ndgc-2,V\xff01\r\n"
    with pytest.raises(FormatError, match=r"^x\.csv is neither UTF-8 nor GB18030 .*in row 3\)"):
        csvfiles.parse_awards_csv(data, "x.csv")


def test_csv_with_semicolons_says_so() -> None:
    with pytest.raises(FormatError, match="separated by ';' or tabs: save the file as CSV"):
        csvfiles.parse_awards_csv(b"account;rule;qty;note\r\ndgc-1;V01;1;\r\n", "may.csv")


def test_csv_meant_for_the_other_command_says_which() -> None:
    with pytest.raises(
        FormatError, match="looks like a rule catalogue: load it with 'redlist rules"
    ):
        csvfiles.parse_awards_csv(rules_file("V01,Pond,environment,5,no"), "rules.csv")
    with pytest.raises(FormatError, match="are not among them; this file looks like awards"):
        csvfiles.parse_rules_csv(b"account,rule,qty,note\ndgc-1,V01,1,\n", "may.csv")


def test_empty_columns_right_of_the_table_are_no_columns() -> None:
    data = b"account,rule,qty,note,,\r\ndgc-1,V01,1,x,,\r\n,,,,,\r\n"
    assert csvfiles.parse_awards_csv(data, "may.csv") == (
        csvfiles.AwardRow(2, "dgc-1", "V01", 1, "x"),
    )
    with pytest.raises(FormatError, match=r"row 1 must name the columns .*; column 2 has no name"):
        csvfiles.parse_awards_csv(b"account,,rule\ndgc-1,,V01\n", "may.csv")


def test_csv_with_an_unclosed_quote() -> None:
    data = b'account,rule,qty,note\ndgc-1,V01,1,"pond\n'
    with pytest.raises(FormatError, match="a quoted cell is never closed"):
        csvfiles.parse_awards_csv(data, "may.csv")


def test_awards_csv_defaults_and_optional_columns() -> None:
    data = BOM + "account,rule,qty,note\ndgc-0001,V01,,\ndgc-0002,D01,3,在池塘\n, , , \n".encode()
    rows = csvfiles.parse_awards_csv(data, "awards.csv")
    assert rows == (
        csvfiles.AwardRow(2, "dgc-0001", "V01", 1, None),
        csvfiles.AwardRow(3, "dgc-0002", "D01", 3, "在池塘"),
    )
    minimal = csvfiles.parse_awards_csv(b"rule,account\nV01,dgc-9\n", "awards.csv")
    assert minimal == (csvfiles.AwardRow(2, "dgc-9", "V01", 1, None),)


def test_awards_csv_refuses_bad_rows_by_number() -> None:
    data = b"account,rule,qty,note\ndgc-1,V01,1,\nbad id,V01,1,\ndgc-2,,1,\ndgc-3,V01,0,\n"
    data += b"dgc-4,V01,1.5,\ndgc-5,V01,-1,\n"
    with pytest.raises(FormatError) as refused:
        csvfiles.parse_awards_csv(data, "awards.csv")
    message = refused.value.diagnostics()
    assert "row 3, column account: account id 'bad id' is not valid" in message
    assert "row 4, column rule: rule must not be empty" in message
    assert "row 5, column qty: qty must be at least 1, not 0" in message
    assert "row 6, column qty: qty must be a whole number, not '1.5'" in message
    assert "row 7, column qty: qty must be at least 1, not -1" in message
    assert "row 2" not in message


def test_every_bad_cell_of_a_row_is_reported_at_once() -> None:
    """A clerk corrects a row in one round: each of its bad cells is named, and the row
    is counted once."""
    awards = b"account,rule,qty,date,note\nbad id,,0,2026-13-01,\ndgc-1,V01,x,,\n"
    with pytest.raises(SheetError) as refused:
        csvfiles.parse_awards_csv(awards, "awards.csv")
    assert "2 rows (5 problems) cannot be used" in refused.value.diagnostics()
    assert [(problem.row, problem.column) for problem in refused.value.problems] == [
        (2, "account"), (2, "rule"), (2, "qty"), (2, "date"), (3, "qty"),
    ]  # fmt: skip
    assert refused.value.problems[3].line() == (
        "row 2, column date: date '2026-13-01' is not a day of the calendar"
    )
    rules = rules_file("V01,,,0,maybe")
    with pytest.raises(SheetError) as refused:
        csvfiles.parse_rules_csv(rules, "rules.csv")
    assert [problem.column for problem in refused.value.problems] == [
        "title", "module", "points", "council",
    ]  # fmt: skip
    reversals = b"seq,reason\n0,\nx,\n"
    with pytest.raises(SheetError) as refused:
        csvfiles.parse_reversals_csv(reversals, "reversals.csv")
    assert [(problem.row, problem.column) for problem in refused.value.problems] == [
        (2, "seq"), (3, "seq"),
    ]  # fmt: skip


# Text the format allows (docs/format.md, "Text"), as the tools hold it: NFC, stripped.
cells = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=sorted(REFUSED_CATEGORIES)),
    max_size=12,
).map(lambda text: unicodedata.normalize("NFC", text).strip())


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
            cells.filter(bool),
            st.integers(1, 1000),
            st.one_of(st.just(""), st.dates().map(date.isoformat)),
            cells,
        ),
        min_size=1,
        max_size=20,
    ),
    st.booleans(),
)
def test_awards_written_by_a_csv_writer_read_back(
    rows: list[tuple[str, str, int, str, str]], bom: bool
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["account", "rule", "qty", "date", "note"])
    writer.writerows(rows)
    data = (BOM if bom else b"") + buffer.getvalue().encode("utf-8")
    parsed = csvfiles.parse_awards_csv(data, "awards.csv")
    assert [(row.account, row.rule, row.qty, row.date or "", row.note or "") for row in parsed] == [
        (account.lower(), rule, qty, day, note) for account, rule, qty, day, note in rows
    ]
    assert [row.row for row in parsed] == list(range(2, len(rows) + 2))


def test_every_staff_sheet_takes_chinese_headers() -> None:
    awards = csvfiles.parse_awards_csv(
        BOM + "账户,规则,数量,日期,备注\nDGC-0019,V01,2,2026/5/3,东村村塘\n".encode(), "五月.csv"
    )
    assert [(row.account, row.rule, row.qty, row.date, row.note) for row in awards] == [
        ("dgc-0019", "V01", 2, "2026-05-03", "东村村塘")
    ]
    rules = csvfiles.parse_rules_csv(
        "代码,名称,模块,分值,需评议,单次上限,每月上限\nV01,清理村塘,环境,5,否,2,4\n".encode(),
        "规则.csv",
    )
    assert rules == (csvfiles.RuleRow(2, "V01", "清理村塘", "环境", 5, False, 2, 4),)
    reversals = csvfiles.parse_reversals_csv("序号,原因\n57,异议成立\n".encode(), "撤销.csv")
    assert reversals == (csvfiles.ReversalRow(2, 57, "异议成立"),)
    # Chinese and English names of one column are that column twice.
    with pytest.raises(FormatError, match="names column 'account' twice"):
        csvfiles.parse_awards_csv("账户,account,rule\n".encode(), "awards.csv")


def test_the_date_column_reads_what_spreadsheets_write() -> None:
    data = (
        "姓名,rule,日期\n"  # an unknown Chinese header is still refused: see below
    ).encode()
    with pytest.raises(FormatError, match="'姓名' is not among them"):
        csvfiles.parse_awards_csv(data, "awards.csv")
    data = (
        "account,rule,日期\n"
        "DGC-0019,V01,2026-05-03\n"
        "dgc-0019,V01,2026/5/3\n"
        "\uff24\uff27\uff23-0019,V01,2026年5月3日\n"
        "dgc-0019,V01,\n"
    ).encode()
    rows = csvfiles.parse_awards_csv(data, "awards.csv")
    assert [(row.account, row.date) for row in rows] == [
        ("dgc-0019", "2026-05-03"),
        ("dgc-0019", "2026-05-03"),
        ("dgc-0019", "2026-05-03"),
        ("dgc-0019", None),
    ]


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("2026-02-30", "not a day of the calendar"),
        ("03/05/2026", "YYYY-MM-DD"),
        ("May 3", "YYYY-MM-DD"),
        ("2026-05-03 10:00", "YYYY-MM-DD"),
    ],
)
def test_a_bad_date_cell_is_refused_by_row(cell: str, words: str) -> None:
    data = f"account,rule,date\ndgc-1,V01,2026-05-03\ndgc-2,V01,{cell}\n".encode()
    with pytest.raises(FormatError, match="row 3, column date: date") as refused:
        csvfiles.parse_awards_csv(data, "awards.csv")
    assert words in refused.value.diagnostics()


def test_rule_caps_are_optional_columns() -> None:
    data = (
        b"code,title,module,points,council,max_qty,max_per_month\n"
        b"P01,Patrol,safety,4,no,3,6\n"
        b"V01,Pond,environment,5,no,,\n"
    )
    rows = csvfiles.parse_rules_csv(data, "rules.csv")
    assert [(row.code, row.max_qty, row.max_per_month) for row in rows] == [
        ("P01", 3, 6),
        ("V01", None, None),
    ]
    bad = b"code,title,module,points,council,max_qty\nP01,Patrol,safety,4,no,0\n"
    with pytest.raises(
        FormatError, match="row 2, column max_qty: max_qty must be a whole number of at least 1"
    ):
        csvfiles.parse_rules_csv(bad, "rules.csv")


def test_read_input_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"awards file .*missing\.csv does not exist"):
        csvfiles.read_input_file(tmp_path / "missing.csv", "awards file")
    with pytest.raises(FormatError, match="is a directory"):
        csvfiles.read_input_file(tmp_path, "awards file")


def test_a_catalogue_refused_in_chinese_names_its_columns_and_says_why_in_chinese() -> None:
    """A rule code or title the format refuses is said in the clerk's language, naming
    the column as the sheet's Chinese header does."""
    data = "代码,名称,模块,分值,需评议\r\nV 01,清理池塘,环境,5,否\r\nV02,清理\x07池塘,环境,5,否\r\n"
    i18n.setup(i18n.CHINESE)
    try:
        with pytest.raises(FormatError) as refused:
            csvfiles.parse_rules_csv(data.encode("utf-8"), "rules.csv")
    finally:
        i18n.setup(i18n.ENGLISH)
    message = refused.value.diagnostics()
    assert "第 2 行“代码”列：代码“V 01”必须是 1 到 32 个 ASCII 字母" in message
    assert "第 3 行“名称”列：名称：第 3 个字符是不可见字符或控制字符（U+0007）" in message
