"""What the resident register accepts in each field (DESIGN 9.1), and its stored record."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger.errors import FormatError
from redlist.ledger.residents import (
    FieldError,
    Resident,
    RowError,
    Tombstone,
    check_account,
    check_basis,
    check_basis_date,
    check_id_number,
    check_name,
    check_phone,
    id_check_character,
    latest_today,
    resident_from_cells,
)

TODAY = datetime.date(2026, 3, 15)
#: The example of GB 11643-1999 itself.
STANDARD_EXAMPLE = "11010519491231002X"


def full_width(ascii_text: str) -> str:
    """``ascii_text`` as a Chinese input method types it in full-width forms."""
    return "".join(chr(ord(character) + 0xFEE0) for character in ascii_text)


def cells(**changes: str) -> dict[str, str]:
    base = {
        "account": "dgc-0001",
        "name": "张三",
        "id_number": STANDARD_EXAMPLE,
        "phone": "13812345678",
        "village": "东村",
        "household": "12",
        "basis": "consent",
        "basis_date": "2025-01-02",
    }
    return base | changes


def test_the_standards_example_passes_and_a_lower_case_x_is_upper_cased() -> None:
    assert check_id_number(STANDARD_EXAMPLE, TODAY) == STANDARD_EXAMPLE
    assert check_id_number(" 11010519491231002x ", TODAY) == STANDARD_EXAMPLE
    assert check_id_number(full_width(STANDARD_EXAMPLE), TODAY) == STANDARD_EXAMPLE


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_exactly_one_check_character_fits_seventeen_digits(first17: str) -> None:
    birth = "19800101"
    number = first17[:6] + birth + first17[14:]
    right = id_check_character(number)
    assert check_id_number(number + right, TODAY) == number + right
    for wrong in "0123456789X":
        if wrong != right:
            with pytest.raises(FormatError, match=f"need {right}:"):
                check_id_number(number + wrong, TODAY)


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("110105491231002", "old 15-digit"),
        ("1101051949123100", "must be 18 characters"),
        ("11010519491231002Y", "must be 18 characters"),
        ("1.10105E+17", "turned into a number by the spreadsheet"),
        ("110105" + "19490231" + "002", "holds no real birth date"),  # 31 February
        ("110105" + "18991231" + "002", "birth date"),
        ("110105" + "20270101" + "002", "birth date"),  # after TODAY
    ],
)
def test_id_numbers_refused_in_words(number: str, words: str) -> None:
    if len(number) == 17:
        number += id_check_character(number)
    with pytest.raises(FormatError, match=words):
        check_id_number(number, TODAY)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("13812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("86-138-1234-5678", "13812345678"),
        ("0631-5201234", "0631-5201234"),
        ("06315201234", "0631-5201234"),
        ("010-82345678", "010-82345678"),
        ("01082345678", "010-82345678"),
        ("021 62345678", "021-62345678"),
        ("", ""),
    ],
)
def test_phone_numbers_are_stored_in_one_form(typed: str, stored: str) -> None:
    assert check_phone(typed) == stored


@pytest.mark.parametrize(
    "typed", ["12812345678", "1381234567", "0631-1234567", "631-5201234", "1.38123E+10", "110"]
)
def test_phone_numbers_refused(typed: str) -> None:
    with pytest.raises(FormatError):
        check_phone(typed)


def test_accounts_are_case_folded_and_checked() -> None:
    assert check_account(" DGC-0001 ") == "dgc-0001"
    assert check_account(full_width("DGC") + "-0001") == "dgc-0001"
    for bad in ("", "-dgc", "dgc 0001", "张三", "a" * 65):
        with pytest.raises(FormatError):
            check_account(bad)


def test_names() -> None:
    assert check_name(" 张三 ") == "张三"
    assert check_name("e\u0301mile") == "émile"  # NFC
    assert check_name("阿依古丽·买买提") == "阿依古丽·买买提"
    for bad, words in [
        ("", "is empty"),
        ("张\u200b三", "invisible"),
        ("张三2", "letters"),
        ("Anna  Schmidt", "two separators"),
        ("·张三", "start and end"),
        ("张" * 65, "longer"),
    ]:
        with pytest.raises(FormatError, match=words):
            check_name(bad)


def test_bases_and_their_dates() -> None:
    assert check_basis("Consent") == "consent"
    assert check_basis("法定") == "statute"
    assert check_basis(" ") == ""
    with pytest.raises(FormatError, match="not a legal basis"):
        check_basis("yes")
    assert check_basis_date("2024/3/5", TODAY) == "2024-03-05"
    assert check_basis_date("2024.3.5", TODAY) == "2024-03-05"  # as people write it too
    assert check_basis_date("2024年3月5日", TODAY) == "2024-03-05"
    assert check_basis_date("２０２４年３月５日", TODAY) == "2024-03-05"  # full-width digits
    assert check_basis_date(TODAY.isoformat(), TODAY) == TODAY.isoformat()
    for bad, words in [("2026-03-16", "future"), ("2025-02-29", "calendar"), ("5 March", "date")]:
        with pytest.raises(FormatError, match=words):
            check_basis_date(bad, TODAY)


def test_a_basis_needs_its_date_and_a_date_its_basis() -> None:
    with pytest.raises(RowError) as missing_date:
        resident_from_cells(cells(basis_date=""), TODAY, 0)
    assert [problem.field for problem in missing_date.value.problems] == ["basis_date"]
    with pytest.raises(RowError) as missing_basis:
        resident_from_cells(cells(basis=""), TODAY, 0)
    assert [problem.field for problem in missing_basis.value.problems] == ["basis"]
    nothing = resident_from_cells(cells(basis="", basis_date=""), TODAY, 0)
    assert not nothing.publishable


def test_a_field_error_names_its_field() -> None:
    with pytest.raises(RowError) as error:
        resident_from_cells(cells(phone="12345"), TODAY, 0)
    assert [problem.field for problem in error.value.problems] == ["phone"]


def test_a_row_error_names_every_bad_field_in_the_order_of_the_columns() -> None:
    """A clerk puts a row right in one go: every bad cell is named, not the first only."""
    with pytest.raises(RowError) as error:
        resident_from_cells(
            cells(name="", phone="12345", basis_date="2999-01-01", kind="company"), TODAY, 0
        )
    problems = error.value.problems
    assert [problem.field for problem in problems] == ["name", "phone", "basis_date", "kind"]
    assert all(isinstance(problem, FieldError) for problem in problems)
    assert "every resident needs a name" in str(problems[0])


def test_a_record_round_trips_and_masks() -> None:
    resident = resident_from_cells(cells(name="欧阳娜娜"), TODAY, 1_767_225_600_000)
    assert Resident.from_bytes("dgc-0001", resident.to_bytes()) == resident
    masked = resident.masked()
    assert (masked.account, masked.masked_name, masked.village, masked.household) == (
        "dgc-0001",
        "欧**娜",
        "东村",
        "12",
    )
    assert set(vars(masked)) == {"account", "masked_name", "village", "household", "kind"}


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("", "person"),
        ("person", "person"),
        ("个人", "person"),
        ("Household", "household"),
        ("家庭", "household"),
        ("organisation", "organisation"),
        ("Organization", "organisation"),
        (" 组织 ", "organisation"),
    ],
)
def test_an_account_is_a_person_a_household_or_an_organisation(typed: str, kind: str) -> None:
    resident = resident_from_cells(cells(kind=typed), TODAY, 1)
    assert resident.kind == kind
    assert Resident.from_bytes("dgc-0001", resident.to_bytes()) == resident
    assert resident.masked().kind == kind


def test_an_unknown_kind_is_refused_and_a_record_without_one_is_a_person() -> None:
    with pytest.raises(RowError) as error:
        resident_from_cells(cells(kind="company"), TODAY, 1)
    assert [problem.field for problem in error.value.problems] == ["kind"]
    assert "person (个人), household (家庭) or organisation (组织)" in str(error.value)
    person = resident_from_cells(cells(), TODAY, 1)
    assert b"kind" not in person.to_bytes()  # records written before kinds read the same


def test_today_is_the_latest_date_on_earth() -> None:
    # 2026-03-15 10:30 UTC is already 2026-03-16 in UTC+14
    at = int(datetime.datetime(2026, 3, 15, 10, 30, tzinfo=datetime.UTC).timestamp() * 1000)
    assert latest_today(at) == datetime.date(2026, 3, 16)
    assert Tombstone("dgc-0001", at).erased_on == "2026-03-15"


@given(
    st.sampled_from(["person", "household", "organisation"]),
    st.text(max_size=20),
    st.integers(0, 2**53),
)
def test_a_stored_record_of_any_kind_reads_back_as_written(
    kind: str, village: str, changed: int
) -> None:
    resident = replace(
        resident_from_cells(cells(), TODAY, 1), kind=kind, village=village, changed_ms=changed
    )
    assert Resident.from_bytes("dgc-0001", resident.to_bytes()) == resident
