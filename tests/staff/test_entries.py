"""Signed entries from a clerk's arguments and CSV files (redlist.staff.entries)."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import codec, crypto, keyfile
from redlist.ledger.entry import (
    MAX_ENVELOPE_SIZE,
    Award,
    Envelope,
    KeyChange,
    RuleChange,
    decode_body,
)
from redlist.ledger.errors import FormatError, KeyFileError
from redlist.staff import entries

LOG = "wendeng.example/redlist"
STAMP = entries.Stamp(LOG, bytes(range(16)), 1_767_225_600_000)
BOM = b"\xef\xbb\xbf"


def key(number: int) -> crypto.SigningKey:
    return crypto.SigningKey.from_seed(bytes([number]) * 32)


# ---------------------------------------------------------------------------
# Ids and stamps


def test_row_ids_are_stable_and_differ_by_file_row_and_purpose() -> None:
    digest = entries.file_digest(b"account,rule\ndgc-1,V01\n")
    other = entries.file_digest(b"account,rule\ndgc-1,V02\n")
    first = entries.row_entry_id(digest, "awards", 2)
    assert first == entries.row_entry_id(digest, "awards", 2)
    assert len(first) == 16
    assert first != entries.row_entry_id(digest, "awards", 3)
    assert first != entries.row_entry_id(other, "awards", 2)
    assert first != entries.row_entry_id(digest, "rules", 2)


@settings(max_examples=200)
@given(st.binary(max_size=64), st.binary(max_size=64), st.integers(1, 10**6))
def test_different_files_never_share_row_ids(a: bytes, b: bytes, row: int) -> None:
    if a != b:
        assert entries.row_entry_id(entries.file_digest(a), "awards", row) != entries.row_entry_id(
            entries.file_digest(b), "awards", row
        )


def test_fresh_stamps_have_random_ids_and_a_current_time() -> None:
    before = entries.now_ms()
    one, two = entries.Stamp.fresh(LOG), entries.Stamp.fresh(LOG)
    assert one.id != two.id and len(one.id) == 16
    assert before <= one.at <= entries.now_ms()
    assert one.log == LOG


def test_addressed_fills_in_the_log_only() -> None:
    draft = entries.award(entries.Stamp("", STAMP.id, STAMP.at), "dgc-1", "V01", 2, None)
    body = entries.addressed(draft, LOG)
    assert body.log == LOG
    assert (body.id, body.at, body.account, body.qty) == (STAMP.id, STAMP.at, "dgc-1", 2)


# ---------------------------------------------------------------------------
# Sealing


def test_seal_signs_the_body_bytes_with_signatures_in_key_id_order() -> None:
    body = entries.award(STAMP, "dgc-0001", "V01", 1, "pond")
    signers = [key(1), key(2), key(3)]
    envelope = Envelope.from_bytes(entries.seal(body, signers))  # refuses misordered sigs
    assert envelope.body == body.to_bytes()
    assert decode_body(envelope.body) == body
    ids = [signature.key_id for signature in envelope.signatures]
    assert ids == sorted(signer.key_id for signer in signers)
    publics = {signer.key_id: signer.public for signer in signers}
    for signature in envelope.signatures:
        assert crypto.verify_entry(publics[signature.key_id], envelope.body, signature.signature)


def test_seal_is_deterministic_whatever_the_signer_order() -> None:
    body = entries.award(STAMP, "dgc-0001", "V01", 1, None)
    assert entries.seal(body, [key(1), key(2)]) == entries.seal(body, [key(2), key(1)])


def test_seal_refuses_a_key_twice_and_no_key() -> None:
    body = entries.award(STAMP, "dgc-0001", "V01", 1, None)
    with pytest.raises(KeyFileError, match="given twice"):
        entries.seal(body, [key(1), key(1)])
    with pytest.raises(KeyFileError, match="at least one signer"):
        entries.seal(body, [])


def test_seal_refuses_an_envelope_over_64_kib() -> None:
    body = Award(LOG, STAMP.id, STAMP.at, "dgc-0001", "V01", 1, "x" * MAX_ENVELOPE_SIZE)
    with pytest.raises(FormatError, match="limit"):
        entries.seal(body, [key(1)])


def test_read_signers_refuses_the_same_key_twice(tmp_path: Path) -> None:
    first, copy = tmp_path / "a.pem", tmp_path / "copy.pem"
    keyfile.write_key_files(first, key(1), "A")
    copy.write_bytes(first.read_bytes())
    keyfile.write_key_files(tmp_path / "b.pem", key(2), "B")
    assert entries.read_signers(first, [tmp_path / "b.pem"]) == (key(1), key(2))
    with pytest.raises(KeyFileError, match=r"copy\.pem holds the same key as .*a\.pem"):
        entries.read_signers(first, [copy])


def test_read_signers_names_a_file_given_twice(tmp_path: Path) -> None:
    path = tmp_path / "li.pem"
    keyfile.write_key_files(path, key(1), "Li")
    with pytest.raises(KeyFileError) as refused:
        entries.read_signers(path, [path])
    assert refused.value.diagnostics().startswith(
        f"{path} is given twice (with --signer and --cosigner); each staff member signs once"
    )


# ---------------------------------------------------------------------------
# Single values


def test_public_key_from_hex_or_any_pem_file(tmp_path: Path) -> None:
    private = tmp_path / "wang.pem"
    keyfile.write_key_files(private, key(7), "Wang")
    public = key(7).public
    assert entries.read_public_key(public.hex()) == public
    assert entries.read_public_key(public.hex().upper()) == public
    assert entries.read_public_key(str(private)) == public
    assert entries.read_public_key(str(keyfile.public_path(private))) == public


@pytest.mark.parametrize("text", ["abc", "00" * 31, "zz" * 32, "missing.pem"])
def test_public_key_that_is_neither_file_nor_hex(text: str) -> None:
    with pytest.raises(KeyFileError, match="neither a key file nor a public key in hex"):
        entries.read_public_key(text)


def test_public_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello\n")
    with pytest.raises(KeyFileError, match=r"notes\.txt"):
        entries.read_public_key(str(garbage))


def test_roles() -> None:
    assert entries.parse_roles("grid,council") == ("grid", "council")
    assert entries.parse_roles(" Grid , cashier ") == ("grid", "cashier")
    with pytest.raises(FormatError, match="'boss' is not a role"):
        entries.parse_roles("grid,boss")
    with pytest.raises(FormatError, match="listed twice"):
        entries.parse_roles("grid,grid")
    with pytest.raises(FormatError, match="at least one role"):
        entries.parse_roles(" , ")
    # A stray comma is a slip, not an empty role.
    assert entries.parse_roles("grid,,council,") == ("grid", "council")


@pytest.mark.parametrize(
    ("text", "value"),
    [("5", 5), (" -20 ", -20), ("+3", 3), ("5.0", 5), ("10.00", 10), ("-100.", -100)],
)
def test_whole_numbers_as_clerks_and_spreadsheets_write_them(text: str, value: int) -> None:
    assert entries.parse_integer(text, "qty") == value
    assert entries.whole_number(text) == value


@pytest.mark.parametrize("text", ["5.5", "1e3", "five", "", "0x10", "1,000", "5.0.0"])
def test_what_is_not_a_whole_number(text: str) -> None:
    with pytest.raises(FormatError, match=f"qty must be a whole number, not {text!r}"):
        entries.parse_integer(text, "qty")
    with pytest.raises(argparse.ArgumentTypeError, match="must be a whole number"):
        entries.whole_number(text)


@pytest.mark.parametrize("text", ["9223372036854775808", "-99999999999999999999", "9" * 40])
def test_numbers_beyond_what_an_entry_carries_are_refused_in_words(text: str) -> None:
    with pytest.raises(FormatError) as refused:
        entries.parse_integer(text, "points")
    assert "64-bit" not in refused.value.diagnostics()
    assert refused.value.diagnostics().startswith("points ")
    assert entries.parse_integer(str(entries.MAX_NUMBER), "points") == entries.MAX_NUMBER


@pytest.mark.parametrize("account", ["", "张三", "dgc 0001", "-dgc", "x" * 65])
def test_bad_account_ids(account: str) -> None:
    with pytest.raises(FormatError, match="is not valid"):
        entries.check_account(account)


def test_bodies_check_their_values() -> None:
    with pytest.raises(FormatError, match="non-zero integer"):
        entries.rule_set(STAMP, "V01", "Pond", "environment", 0, False)
    with pytest.raises(FormatError, match="rule title must not be empty"):
        entries.rule_set(STAMP, "V01", "  ", "environment", 5, False)
    with pytest.raises(FormatError, match="qty must be at least 1"):
        entries.award(STAMP, "dgc-1", "V01", 0, None)
    with pytest.raises(FormatError, match="points redeemed must be at least 1"):
        entries.redeem(STAMP, "dgc-1", -5, "rice")
    with pytest.raises(FormatError, match="item must not be empty"):
        entries.redeem(STAMP, "dgc-1", 5, "")
    with pytest.raises(FormatError, match="entry number of an award"):
        entries.objection(STAMP, 0, "not me")
    with pytest.raises(FormatError, match="single line"):
        entries.reverse(STAMP, 5, "upheld\nby council")
    with pytest.raises(FormatError, match="longer than"):
        entries.award(STAMP, "dgc-1", "V01", 1, "x" * (entries.MAX_TEXT_LENGTH + 1))
    with pytest.raises(KeyFileError, match="name must not be empty"):
        entries.key_add(STAMP, key(1).public, " ", ("grid",))


def test_bodies_decode_as_the_ledger_reads_them() -> None:
    built = [
        entries.key_add(STAMP, key(1).public, " Wang Fang ", ("grid", "council")),
        entries.key_revoke(STAMP, key(1).public),
        entries.rule_set(STAMP, "D07", "Did not support elderly parents", "family", -100, True),
        entries.rule_retire(STAMP, "D07"),
        entries.award(STAMP, "dgc-1", "V01", 3, "  "),
        entries.redeem(STAMP, "dgc-1", 30, "rice, 5 kg"),
        entries.objection(STAMP, 57, "I was not there"),
        entries.reverse(STAMP, 57, "objection upheld"),
    ]
    for body in built:
        assert decode_body(body.to_bytes()) == body
    assert isinstance(built[0], KeyChange) and built[0].name == "Wang Fang"
    assert isinstance(built[4], Award) and built[4].note is None  # a blank note is no note


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
    rows = entries.parse_rules_csv(data, "rules.csv")
    assert [row.council for row in rows] == [True, False, True, False, True, False, True, False]
    assert rows[0] == entries.RuleRow(2, "R0", "Rule 0", "m", 1, True)
    assert [row.row for row in rows] == list(range(2, 10))


def test_rules_csv_columns_in_any_order_and_case() -> None:
    data = "Points,COUNCIL,code,module,title\r\n-20,否,D01,environment,焚烧秸秆\r\n".encode()
    (row,) = entries.parse_rules_csv(data, "rules.csv")
    assert row == entries.RuleRow(2, "D01", "焚烧秸秆", "environment", -20, False)
    body = row.body(STAMP)
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
        entries.parse_rules_csv(data, "rules.csv")
    message = refused.value.diagnostics()
    assert "row 7: points must be a non-zero integer" in message
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
        entries.parse_rules_csv(data, "rules.csv")
    message = refused.value.diagnostics()
    assert "4 rows cannot be used" in message
    assert "row 2: points must be a non-zero integer, not '0'" in message
    assert "row 3: title must not be empty" in message
    assert "row 4: council must be one of true/false/yes/no/1/0/是/否" in message
    assert "row 6: has 3 cells, the header has 5" in message
    assert "row 5" not in message


def test_rules_csv_refuses_a_code_twice() -> None:
    data = rules_file("V01,Pond,environment,5,no", "V02,Duty,service,10,no", "V01,Again,x,1,no")
    with pytest.raises(FormatError, match="row 4: rule code 'V01' already appears in row 2"):
        entries.parse_rules_csv(data, "rules.csv")


def test_long_lists_of_problems_are_cut_short() -> None:
    data = rules_file(*(f"V{n},Pond,environment,0,no" for n in range(50)))
    with pytest.raises(FormatError) as refused:
        entries.parse_rules_csv(data, "rules.csv")
    message = refused.value.diagnostics()
    assert "50 rows cannot be used" in message
    assert "... and 30 more" in message
    assert message.count("\n  row ") == entries.MAX_REPORTED_ROWS


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "is empty"),
        (b"code,title,module,points,council\n", "no rows below its header"),
        (b"code,title,module,points\nV01,a,b,1\n", "missing: council"),
        (b"code,title,module,points,council,extra\n", "'extra' is not among them"),
        (b"code,code,title,module,points,council\n", "names column 'code' twice"),
        ("code,title,module,points,council\nV01,焚烧,m,1,no\n".encode("gbk"), "not UTF-8"),
        (b'code,title,module,points,council\nV01,"open quote,m,1,no\n', "never closed"),
    ],
)
def test_unusable_files(data: bytes, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        entries.parse_rules_csv(data, "rules.csv")


def excel_file(*rows: str, encoding: str = "utf-8") -> bytes:
    """Rows as Excel saves them: CRLF line ends, a BOM (for UTF-8), spaces in the header
    and empty rows of commas at the end."""
    header = " Account , Rule ,QTY, Note "
    text = "\r\n".join((header, *rows, ",,,", ",,,")) + "\r\n"
    return (BOM if encoding == "utf-8" else b"") + text.encode(encoding)


def test_awards_csv_as_excel_saves_it() -> None:
    data = excel_file("dgc-0001,V01,2.0,池塘 5月3日", "dgc-0002,D01,,", "dgc-0003, V02 , 3 ,")
    assert entries.parse_awards_csv(data, "may.csv") == (
        entries.AwardRow(2, "dgc-0001", "V01", 2, "池塘 5月3日"),
        entries.AwardRow(3, "dgc-0002", "D01", 1, None),
        entries.AwardRow(4, "dgc-0003", "V02", 3, None),
    )


def test_rules_csv_points_as_excel_writes_them() -> None:
    (row,) = entries.parse_rules_csv(rules_file("V01,Pond,environment,5.00,no"), "rules.csv")
    assert row.points == 5
    with pytest.raises(FormatError, match=r"row 2: points must be a non-zero integer, not '0\.0'"):
        entries.parse_rules_csv(rules_file("V01,Pond,environment,0.0,no"), "rules.csv")
    with pytest.raises(FormatError, match=r"row 2: points must be a non-zero integer, not '2\.5'"):
        entries.parse_rules_csv(rules_file("V01,Pond,environment,2.5,no"), "rules.csv")


def test_csv_in_the_chinese_windows_encoding_is_named_with_its_row() -> None:
    data = excel_file("dgc-0001,V01,1,", "dgc-0002,V01,1,池塘", encoding="gbk")
    with pytest.raises(FormatError) as refused:
        entries.parse_awards_csv(data, "may.csv")
    assert refused.value.diagnostics() == (
        "may.csv is saved in the Chinese Windows encoding (GBK), not UTF-8 (first seen in "
        "row 3); in Excel use Save As, 'CSV UTF-8 (comma delimited) (*.csv)'"
    )


def test_csv_that_is_no_text_at_all() -> None:
    with pytest.raises(FormatError, match=r"^x\.csv is not UTF-8 text \(first seen in row 1\)"):
        entries.parse_awards_csv(b"\xff\xfe\x00\x80\x81", "x.csv")


def test_csv_with_semicolons_says_so() -> None:
    with pytest.raises(FormatError, match="separated by ';' or tabs: save the file as CSV"):
        entries.parse_awards_csv(b"account;rule;qty;note\r\ndgc-1;V01;1;\r\n", "may.csv")


def test_csv_meant_for_the_other_command_says_which() -> None:
    with pytest.raises(
        FormatError, match="looks like a rule catalogue: load it with 'redlist rules"
    ):
        entries.parse_awards_csv(rules_file("V01,Pond,environment,5,no"), "rules.csv")
    with pytest.raises(FormatError, match="are not among them; this file looks like awards"):
        entries.parse_rules_csv(b"account,rule,qty,note\ndgc-1,V01,1,\n", "may.csv")


def test_empty_columns_right_of_the_table_are_no_columns() -> None:
    data = b"account,rule,qty,note,,\r\ndgc-1,V01,1,x,,\r\n,,,,,\r\n"
    assert entries.parse_awards_csv(data, "may.csv") == (
        entries.AwardRow(2, "dgc-1", "V01", 1, "x"),
    )
    with pytest.raises(FormatError, match=r"row 1 must name the columns .*; column 2 has no name"):
        entries.parse_awards_csv(b"account,,rule\ndgc-1,,V01\n", "may.csv")


def test_csv_with_an_unclosed_quote() -> None:
    data = b'account,rule,qty,note\ndgc-1,V01,1,"pond\n'
    with pytest.raises(FormatError, match="a quoted cell is never closed"):
        entries.parse_awards_csv(data, "may.csv")


def test_awards_csv_defaults_and_optional_columns() -> None:
    data = BOM + "account,rule,qty,note\ndgc-0001,V01,,\ndgc-0002,D01,3,在池塘\n, , , \n".encode()
    rows = entries.parse_awards_csv(data, "awards.csv")
    assert rows == (
        entries.AwardRow(2, "dgc-0001", "V01", 1, None),
        entries.AwardRow(3, "dgc-0002", "D01", 3, "在池塘"),
    )
    minimal = entries.parse_awards_csv(b"rule,account\nV01,dgc-9\n", "awards.csv")
    assert minimal == (entries.AwardRow(2, "dgc-9", "V01", 1, None),)


def test_awards_csv_refuses_bad_rows_by_number() -> None:
    data = b"account,rule,qty,note\ndgc-1,V01,1,\nbad id,V01,1,\ndgc-2,,1,\ndgc-3,V01,0,\n"
    data += b"dgc-4,V01,1.5,\ndgc-5,V01,-1,\n"
    with pytest.raises(FormatError) as refused:
        entries.parse_awards_csv(data, "awards.csv")
    message = refused.value.diagnostics()
    assert "row 3: account id 'bad id' is not valid" in message
    assert "row 4: rule must not be empty" in message
    assert "row 5: qty must be at least 1, not 0" in message
    assert "row 6: qty must be a whole number, not '1.5'" in message
    assert "row 7: qty must be at least 1, not -1" in message
    assert "row 2" not in message


cells = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    max_size=12,
).map(str.strip)


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
            cells.filter(bool),
            st.integers(1, 1000),
            cells,
        ),
        min_size=1,
        max_size=20,
    ),
    st.booleans(),
)
def test_awards_written_by_a_csv_writer_read_back(
    rows: list[tuple[str, str, int, str]], bom: bool
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["account", "rule", "qty", "note"])
    writer.writerows(rows)
    data = (BOM if bom else b"") + buffer.getvalue().encode("utf-8")
    parsed = entries.parse_awards_csv(data, "awards.csv")
    assert [(row.account, row.rule, row.qty, row.note or "") for row in parsed] == rows
    assert [row.row for row in parsed] == list(range(2, len(rows) + 2))


def test_read_input_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"awards file .*missing\.csv does not exist"):
        entries.read_input_file(tmp_path / "missing.csv", "awards file")
    with pytest.raises(FormatError, match="is a directory"):
        entries.read_input_file(tmp_path, "awards file")


def test_envelope_bytes_are_canonical_msgpack() -> None:
    body = entries.award(STAMP, "dgc-0001", "V01", 1, None)
    envelope = entries.seal(body, [key(1)])
    assert codec.encode(codec.decode(envelope)) == envelope
