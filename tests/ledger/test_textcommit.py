"""Free-text commitments (DESIGN 9.2): the hash, the stored form, the texts file, the checks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger.entry import Award, Objection, Redeem, RuleChange
from redlist.ledger.errors import FormatError, TextError
from redlist.ledger.text import REFUSED_CATEGORIES
from redlist.ledger.textcommit import (
    MAX_TEXT_BYTES,
    SALT_SIZE,
    BundleText,
    EntryText,
    check_texts,
    commit,
    commitments_of,
    decode_texts_file,
    encode_texts_file,
)

LOG = "town.example/log"
ID = bytes(range(16))

_allowed = st.characters(
    blacklist_categories=tuple(REFUSED_CATEGORIES), blacklist_characters="\u2028\u2029"
)
texts = (
    st.text(_allowed, min_size=1, max_size=40)
    .map(lambda text: unicodedata.normalize("NFC", text))
    .filter(lambda text: 0 < len(text.encode("utf-8")) <= MAX_TEXT_BYTES)
)
salts = st.binary(min_size=SALT_SIZE, max_size=SALT_SIZE)


@given(texts, salts)
def test_the_commitment_is_the_formula_of_the_format(text: str, salt: bytes) -> None:
    expected = hashlib.sha256(b"redlist/text/v1\x00" + salt + text.encode("utf-8")).digest()
    assert commit(text, salt) == EntryText(text, salt).commitment == expected


@given(texts, salts, salts)
def test_another_salt_another_commitment(text: str, salt: bytes, other: bytes) -> None:
    if salt != other:
        assert commit(text, salt) != commit(text, other)


@given(texts, salts)
def test_a_stored_text_reads_back_as_written(text: str, salt: bytes) -> None:
    value = EntryText(text, salt)
    assert EntryText.from_bytes(value.to_bytes()) == value


@given(st.lists(st.tuples(st.integers(0, 2**40), st.sampled_from(["note", "item"]), texts, salts)))
def test_a_texts_file_reads_back_as_written(lines: list[tuple[int, str, str, bytes]]) -> None:
    written = [BundleText(seq, name, EntryText(text, salt)) for seq, name, text, salt in lines]
    assert decode_texts_file(encode_texts_file(written)) == written


@given(st.binary(max_size=200))
def test_a_texts_file_refuses_damage_or_reads(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        decode_texts_file(data)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("[1]", "object with seq, field, text and salt"),
        ('{"seq": -1, "field": "note", "text": "x", "salt": "00"}', "seq must be"),
        ('{"seq": 1, "field": "title", "text": "x", "salt": "00"}', "not a free-text field"),
        ('{"seq": 1, "field": "note", "text": "x", "salt": "zz"}', "16 bytes in hex"),
        ('{"seq": 1, "field": "note", "text": "a\\rb", "salt": "' + "00" * 16 + '"}', "control"),
        ('{"seq": 1, "field": "note", "text": "", "salt": "' + "00" * 16 + '"}', "empty"),
    ],
)
def test_a_bad_line_is_refused_naming_it(line: str, words: str) -> None:
    good = json.dumps({"seq": 1, "field": "note", "text": "ok", "salt": "00" * 16})
    with pytest.raises(FormatError, match=f"line 2.*{words}"):
        decode_texts_file(f"{good}\n{line}\n".encode())


def test_a_text_is_checked_on_construction() -> None:
    with pytest.raises(TextError, match="salt must be 16 bytes"):
        EntryText("pond", bytes(15))
    with pytest.raises(TextError, match="more than the 16384"):
        EntryText("x" * (MAX_TEXT_BYTES + 1), bytes(16))
    with pytest.raises(TextError, match="NFC"):
        EntryText("Jose\u0301", bytes(16))


def test_each_kind_commits_to_its_fields() -> None:
    note, item = EntryText("pond", bytes(16)), EntryText("rice", bytes(16))
    award = Award(LOG, ID, 1, "a", "V01", 1, note.commitment, date="2026-01-01")
    assert commitments_of(award) == {"note": note.commitment}
    assert commitments_of(Award(LOG, ID, 1, "a", "V01", date="2026-01-01")) == {}
    assert commitments_of(Redeem(LOG, ID, 1, "a", 5, item.commitment)) == {"item": item.commitment}
    rule = RuleChange(LOG, ID, 1, "set", "V01", "Pond", "m", 5, False, decided=note.commitment)
    assert commitments_of(rule) == {"decided": note.commitment}


def test_texts_must_be_exactly_the_committed_ones() -> None:
    text = EntryText("not me", bytes(16))
    objection = Objection(LOG, ID, 1, 7, text.commitment)
    check_texts(objection, {"text": text})
    with pytest.raises(TextError, match="no text was sent") as missing:
        check_texts(objection, {})
    assert missing.value.field == "text"
    with pytest.raises(TextError, match="does not match"):
        check_texts(objection, {"text": EntryText("not me", bytes(range(16)))})
    with pytest.raises(TextError, match="holds no commitment 'note'"):
        check_texts(objection, {"text": text, "note": text})
