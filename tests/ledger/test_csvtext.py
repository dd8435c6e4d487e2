"""The text of a spreadsheet's CSV file, UTF-8 or GB18030 (redlist.ledger.csvtext)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from redlist.ledger import csvtext, i18n
from redlist.ledger.errors import FormatError

SHEET = "账户,规则,数量,日期,备注\r\ndgc-0001,V01,1,2026-11-24,清理村塘（东头）\r\n"


def test_utf8_with_and_without_the_byte_order_mark() -> None:
    assert csvtext.decode_text(SHEET.encode(), "a.csv") == (SHEET, csvtext.UTF8)
    with_bom = codecs.BOM_UTF8 + SHEET.encode()
    assert csvtext.decode_text(with_bom, "a.csv") == (SHEET, csvtext.UTF8_BOM)


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "gb2312"])
def test_the_chinese_windows_encoding_reads_as_the_same_text(encoding: str) -> None:
    assert csvtext.decode_text(SHEET.encode(encoding), "a.csv") == (SHEET, csvtext.GB18030)


def test_ascii_is_utf8() -> None:
    assert csvtext.decode_text(b"account,rule\r\n", "a.csv") == ("account,rule\r\n", "UTF-8")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_text_saved_either_way_reads_back_the_same(text: str) -> None:
    """GB18030 encodes every Unicode character, and a sheet saved in it reads back as the
    text saved in UTF-8 (a leading byte order mark aside), unless its bytes are also
    UTF-8 (below)."""
    text = text.removeprefix("\ufeff")
    saved_gb = text.encode("gb18030")
    assume(not _is_utf8(saved_gb) or saved_gb == text.encode())
    as_utf8, _ = csvtext.decode_text(text.encode("utf-8"), "a.csv")
    as_gb, _ = csvtext.decode_text(saved_gb, "a.csv")
    assert as_utf8 == as_gb == text


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_gb18030_bytes_that_are_also_utf8_read_as_utf8() -> None:
    """The one ambiguity, and the choice made: a few Chinese characters alone can be
    valid UTF-8 as well (诋 is DA AE in GB18030, and DA AE is UTF-8 for ڮ). The bytes are
    read as UTF-8; a real sheet's Chinese header row is never valid UTF-8 by accident,
    and a header misread is refused as an unknown column, never taken as data."""
    assert csvtext.decode_text("诋".encode("gb18030"), "a.csv") == ("\u06ae", csvtext.UTF8)
    header = "日期,账户,规则,数量,备注\r\n".encode("gb18030")
    assert not _is_utf8(header)


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])
def test_unicode_text_utf16_is_refused_with_the_way_out(bom: bytes) -> None:
    data = bom + SHEET.encode("utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be")
    with pytest.raises(FormatError) as refused:
        csvtext.decode_text(data, "may.csv")
    assert refused.value.diagnostics() == (
        "may.csv is saved as 'Unicode text' (UTF-16); in Excel use Save As, 'CSV UTF-8 "
        "(comma delimited) (*.csv)'"
    )


def test_bytes_that_are_neither_name_the_row() -> None:
    data = b"account,rule\r\ndgc-1,V01\r\ndgc-2,V\xff01\r\n"
    with pytest.raises(FormatError) as refused:
        csvtext.decode_text(data, "may.csv")
    assert refused.value.diagnostics() == (
        "may.csv is neither UTF-8 nor GB18030 (Chinese Windows) text (first seen in row 3); "
        "in Excel use Save As, 'CSV UTF-8 (comma delimited) (*.csv)'"
    )


def test_a_byte_order_mark_then_bytes_that_are_not_utf8_name_the_row() -> None:
    data = codecs.BOM_UTF8 + b"account,rule\r\n" + "dgc-1,池塘".encode("gbk") + b"\r\n"
    with pytest.raises(FormatError, match=r"^may\.csv starts as UTF-8 but is not UTF-8 text in "):
        csvtext.decode_text(data, "may.csv")
    with pytest.raises(FormatError, match="in row 2;"):
        csvtext.decode_text(data, "may.csv")


@pytest.fixture
def chinese() -> Iterator[None]:
    i18n.setup(i18n.CHINESE)
    yield
    i18n.setup(i18n.ENGLISH)


@pytest.mark.usefixtures("chinese")
def test_the_labels_and_refusals_are_translated() -> None:
    assert i18n._(csvtext.GB18030) == "GB18030（中文 Windows 编码）"
    assert i18n._(csvtext.UTF8_BOM) == "UTF-8（带 Excel 写入的字节顺序标记）"
    with pytest.raises(FormatError) as refused:
        csvtext.decode_text(b"a\n\xff\n", "五月.csv")
    assert refused.value.diagnostics().startswith(
        "五月.csv 既不是 UTF-8 也不是 GB18030（中文 Windows）文本（首次出现在第 2 行）"
    )
