"""publicity.csv (``redlist.ledger.publicity``): its bytes, and the shape of a masked name."""

from __future__ import annotations

import pytest

from redlist.ledger.entry import Award
from redlist.ledger.errors import FormatError
from redlist.ledger.masking import mask_name
from redlist.ledger.points import Effect
from redlist.ledger.publicity import (
    AWARD,
    BOM,
    DECLARED,
    HEADER,
    OBJECTION,
    PublicEntry,
    PublicityRecorder,
    decode_csv,
    encode_csv,
    mask_problem,
)
from redlist.ledger.state import MemoryState
from redlist.node.towncfg import DEFAULT_TOWN_CONFIG

AWARDED = PublicEntry(
    7, AWARD, "2026-01-20", "dgc-0001", "V01", "清理池塘", 5, 1005, "A", ("王芳",)
)
OBJECTED = PublicEntry(
    9, OBJECTION, "2026-02-05", "dgc-0001", "V01", "清理池塘", None, 1005, "A", ("李伟", "赵敏"), 7
)


def test_the_file_opens_in_excel_and_reads_back() -> None:
    data = encode_csv(
        [(AWARDED, "东村", "张*", "池塘", "个人"), (OBJECTED, "东村", "张*", "", "组织")]
    )
    assert data.startswith(BOM.encode("utf-8"))
    text = data.decode("utf-8")
    assert text.splitlines()[0] == BOM + ",".join(HEADER)
    assert "\r\n" in text
    rows = decode_csv(data)
    assert [row.seq for row in rows] == [7, 9]
    assert rows[0].cells["分数"] == "+5" and rows[1].cells["分数"] == ""
    assert rows[1].cells["登记人"] == "李伟、赵敏" and rows[1].cells["涉及序号"] == "7"
    assert {column: rows[0].cells[column] for column in AWARDED.cells()} == AWARDED.cells()
    assert rows[0].cells["备注"] == "池塘"
    assert [row.cells["账户类型"] for row in rows] == ["个人", "组织"]


def test_a_note_that_a_spreadsheet_would_run_is_guarded_and_read_back() -> None:
    data = encode_csv([(AWARDED, "东村", "张*", '=HYPERLINK("http://x")', "个人")])
    assert ",\"'=HYPERLINK" in data.decode("utf-8")
    assert decode_csv(data)[0].cells["备注"] == '=HYPERLINK("http://x")'


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (",".join(HEADER).encode(), "byte-order mark"),
        ((BOM + "日期,村\r\n").encode(), "header"),
        ((BOM + ",".join(HEADER) + "\r\n1,2\r\n").encode(), "line 2: 2 cells"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_line(data: bytes, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        decode_csv(data)


def test_rows_out_of_order_or_twice_are_refused() -> None:
    data = encode_csv([(OBJECTED, "东村", "张*", "", "个人"), (AWARDED, "东村", "张*", "", "个人")])
    with pytest.raises(FormatError, match="line 3: entry 7 is out of order"):
        decode_csv(data)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张", "张*"),
        ("张三", "张*"),
        ("李四光", "李*光"),
        ("欧阳娜娜", "欧**娜"),
        ("欧阳华", "欧*华"),
        ("司马相如", "司**如"),
        ("Anna Schmidt", "A*** ******t"),
        ("阿依古丽·买买提", "阿***·**提"),
        ("O'Neil", "O'***l"),
    ],
)
def test_every_masked_name_has_a_masks_shape(name: str, masked: str) -> None:
    assert mask_name(name) == masked
    assert mask_problem(masked) is None


@pytest.mark.parametrize("unmasked", ["张三", "李四光", "Anna Schmidt", "张", "欧*娜娜", "***"])
def test_a_name_left_unmasked_is_caught(unmasked: str) -> None:
    problem = mask_problem(unmasked)
    if unmasked == "***":
        assert problem is None  # hides everything: nothing personal shows
    else:
        assert problem is not None


def test_a_declared_award_is_listed_as_declared_by_the_resident() -> None:
    state = MemoryState()
    state.set_config(DEFAULT_TOWN_CONFIG)
    recorder = PublicityRecorder()
    for number, declared in ((7, True), (8, False)):
        body = Award("log", bytes(16), 0, "dgc-0001", "V01", date="2026-01-20", declared=declared)
        effect = Effect(number, "award", ("王芳",), "dgc-0001", "V01", 5)
        recorder.observe(0, body, effect, state)
    declared_entry, plain = recorder.entries
    assert declared_entry.cells()["类型"] == AWARD + DECLARED == "加分（本人申报）"
    assert plain.cells()["类型"] == AWARD
    rows = decode_csv(encode_csv([(declared_entry, "东村", "张*", "", "个人")]))
    assert rows[0].cells["类型"] == "加分（本人申报）"
