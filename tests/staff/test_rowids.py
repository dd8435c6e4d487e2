"""Entry ids of a sheet's rows (``redlist.staff.rowids``): the spec as vectors, and what
enters the id and what does not."""

from __future__ import annotations

import hashlib

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from redlist.staff import csvfiles
from redlist.staff.rowids import AWARD_ROW_DOMAIN, Deed, occurrences, reversal_id
from redlist.staff.sheet import sheet_rows

LOG = "dongguan.example/redlist"
DEED = Deed(LOG, "dgc-0001", "V01", 2, "2026-05-03", "pond")


def test_the_id_is_the_documented_hash() -> None:
    material = msgpack.packb([LOG, "dgc-0001", "V01", 2, "2026-05-03", 1])
    expected = hashlib.sha256(b"redlist/staff/award-row/v3\x00" + material).digest()[:16]
    assert AWARD_ROW_DOMAIN == b"redlist/staff/award-row/v3\x00"
    assert DEED.entry_id(1) == expected
    # A fixed vector, so a change of the derivation is seen (docs/format.md quotes it).
    assert DEED.entry_id(1).hex() == "acfc0a0c4e99880907a200e96a868e13"
    assert reversal_id(LOG, 57).hex() == "757a8261be76d38c8b1faaf14b7d0629"
    material = msgpack.packb([LOG, 57])
    assert (
        reversal_id(LOG, 57)
        == (hashlib.sha256(b"redlist/staff/reversal/v1\x00" + material).digest()[:16])
    )


def test_every_part_of_the_deed_and_the_occurrence_count() -> None:
    ids = {
        DEED.entry_id(1),
        DEED.entry_id(2),
        Deed("other.example/log", *_rest(DEED)[1:]).entry_id(1),
        Deed(LOG, "dgc-0002", "V01", 2, "2026-05-03", "pond").entry_id(1),
        Deed(LOG, "dgc-0001", "V02", 2, "2026-05-03", "pond").entry_id(1),
        Deed(LOG, "dgc-0001", "V01", 3, "2026-05-03", "pond").entry_id(1),
        Deed(LOG, "dgc-0001", "V01", 2, "2026-06-03", "pond").entry_id(1),
    }
    assert len(ids) == 7
    assert reversal_id(LOG, 57) != reversal_id(LOG, 58)
    assert reversal_id(LOG, 57) != reversal_id("other.example/log", 57)


def _rest(deed: Deed) -> tuple[object, ...]:
    return (deed.log, deed.account, deed.rule, deed.qty, deed.date, deed.note)


def test_occurrences_count_identical_keys_in_order() -> None:
    assert occurrences(["a", "b", "a", "a", "b", "c"]) == [1, 1, 2, 3, 2, 1]


def parse(text: str) -> list[bytes]:
    rows = csvfiles.parse_awards_csv(text.encode("utf-8"), "sheet.csv")
    return sorted(row.entry_id for row in sheet_rows(rows, LOG, "2026-05-20"))


def test_saving_again_changes_no_id_and_editing_a_row_changes_its_own() -> None:
    original = "account,rule,qty,date,note\ndgc-1,V01,,2026-05-03,pond\ndgc-2,V02,2,,\n"
    resaved = (
        "\ufeffNote,Account,Rule,日期,Qty\r\n,DGC-2 , V02 ,2026/5/20,2.0\r\n"
        " pond ,dgc-1,V01,2026年5月3日,1\r\n"
    )
    assert parse(original) == parse(resaved)
    edited = original.replace("dgc-2,V02,2", "dgc-2,V02,3")
    assert len(set(parse(original)) & set(parse(edited))) == 1
    # A corrected note is the deed already recorded: the note does not identify it.
    assert parse(original.replace("pond", "the pond")) == parse(original)


def test_an_id_does_not_reveal_the_note() -> None:
    """The log holds a salted commitment to a note, so that nobody can test a guessed
    note against it (DESIGN 9.2); a row's id, public in the log, must not undo that."""
    guesses = ["helped 王奶奶 at No. 3 East Lane", "helped 李爷爷", "", "pond"]
    ids = {Deed(LOG, "dgc-0001", "V01", 2, "2026-05-03", note).entry_id(1) for note in guesses}
    assert len(ids) == 1  # whatever the note says, the id is the same
    for note in guesses:
        material = msgpack.packb([LOG, "dgc-0001", "V01", 2, "2026-05-03", note, 1])
        for domain in (b"redlist/staff/award-row/v2\x00", AWARD_ROW_DOMAIN):
            assert hashlib.sha256(domain + material).digest()[:16] not in ids
    # The same noted row in two logs: unrelated ids, neither computed from the note.
    other = Deed("other.example/log", "dgc-0001", "V01", 2, "2026-05-03", guesses[0])
    assert other.entry_id(1) not in ids


def test_rows_differing_only_in_their_notes_are_occurrences_of_one_deed() -> None:
    text = (
        "account,rule,qty,date,note\n"
        "dgc-1,V01,1,2026-05-03,morning\ndgc-1,V01,1,2026-05-03,afternoon\n"
    )
    swapped = "account,rule,qty,date,note\ndgc-1,V01,1,2026-05-03,x\ndgc-1,V01,1,2026-05-03,\n"
    assert len(set(parse(text))) == 2  # two rows, two deeds
    assert parse(text) == parse(swapped)


@given(st.permutations(range(6)))
def test_the_order_of_rows_does_not_matter(order: list[int]) -> None:
    lines = ["dgc-1,V01,1,2026-05-03,", "dgc-1,V01,1,2026-05-03,", "dgc-2,V01,1,2026-05-03,"]
    lines += ["dgc-2,V01,1,2026-05-04,", "dgc-1,V01,1,2026-05-03,", "dgc-3,D01,,,x"]
    text = "account,rule,qty,date,note\n" + "\n".join(lines[i] for i in order) + "\n"
    baseline = "account,rule,qty,date,note\n" + "\n".join(lines) + "\n"
    assert parse(text) == parse(baseline)
    assert len(set(parse(text))) == 6  # three identical rows are three deeds
