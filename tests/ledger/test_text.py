"""What text may hold in format v1: every text field, rule codes and key names."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger import codec
from redlist.ledger.entry import decode_body
from redlist.ledger.errors import FormatError
from redlist.ledger.text import (
    REFUSED_CATEGORIES,
    key_name_problem,
    rule_code_problem,
    shown,
    text_problem,
)

COMMON = {"v": 1, "log": "town.example/log", "id": bytes(16), "at": 1_767_225_600_000}

# The characters an attacker used to make one entry print as another (issue findings).
HIDING = {
    "escape": "\x1b[2J",
    "carriage return": "pond\rlitter",
    "right-to-left override": "\u202e10V",
    "zero-width space": "V\u200b01",
    "byte order mark": "\ufeffV01",
    "line separator": "a\u2028b",
    "NFD spelling": "Jose\u0301",
}
LOOKALIKE_CODES = {
    "zero-width space": "V\u200b01",
    "hyphen U+2010": "env\u2010pond",
    "Cyrillic u": "V01\u0443",
    "space": "V 01",
    "fullwidth digits": "V\uff10\uff11",
}


@pytest.mark.parametrize("case", sorted(HIDING))
def test_hiding_characters_are_refused_in_any_text(case: str) -> None:
    assert text_problem(HIDING[case]) is not None


@pytest.mark.parametrize(
    "value",
    ["Cleaned the village pond", "帮助王奶奶打扫院子", "全角\u3000空格", "José", "3 May", "½ day"],
)
def test_ordinary_text_is_accepted(value: str) -> None:
    assert text_problem(value) is None


@pytest.mark.parametrize("case", sorted(LOOKALIKE_CODES))
def test_lookalike_rule_codes_are_refused(case: str) -> None:
    assert rule_code_problem(LOOKALIKE_CODES[case]) is not None


@pytest.mark.parametrize("code", ["V01", "env.pond-2", "S_01", "9"])
def test_rule_codes_of_the_stated_class_are_accepted(code: str) -> None:
    assert rule_code_problem(code) is None


@pytest.mark.parametrize(
    "name",
    ["Liu Jun (town admin)", "王芳", "欧阳娜娜（村委会）", "Zhao Min", "O'Brien & Co.", "Иван"],
)
def test_key_names_of_people_are_accepted(name: str) -> None:
    assert key_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "W\u0430ng Fang",  # a Cyrillic a among Latin letters
        "Wang\u2010Fang",  # a hyphen that is not '-'
        "\u202enimda",
        "Wang  Fang",
        " Wang",
        "Wang\tFang",
        "Wang\u200bFang",
        "Wang!",
        "x" * 101,
    ],
)
def test_lookalike_and_hidden_key_names_are_refused(name: str) -> None:
    assert key_name_problem(name) is not None


def test_a_refusal_names_the_character_and_where_it_is() -> None:
    assert text_problem("ok\x1b") == (
        "contains an invisible or control character (U+001B) at character 3; remove it "
        "and type the text again"
    )
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in (text_problem("a\u202e") or "")


@pytest.mark.parametrize("field", ["note", "rule"])
@pytest.mark.parametrize("case", sorted(HIDING))
def test_an_award_with_hiding_text_is_not_a_valid_body(field: str, case: str) -> None:
    body = {
        **COMMON,
        "kind": "award",
        "account": "res-1",
        "date": "2026-01-01",
        "rule": "V01",
        "qty": 1,
    }
    body[field] = HIDING[case]
    data = codec.encode(dict(sorted(body.items())))
    with pytest.raises(FormatError, match=f"'{field}'"):
        decode_body(data)


def test_a_rule_with_a_lookalike_code_is_not_a_valid_body() -> None:
    body = {
        **COMMON,
        "kind": "rule",
        "op": "set",
        "code": "V01\u0443",
        "title": "Pond",
        "module": "env",
        "points": 5,
        "council": False,
    }
    with pytest.raises(FormatError, match="rule code"):
        decode_body(codec.encode(dict(sorted(body.items()))))


@given(st.text(max_size=30))
def test_accepted_text_is_nfc_and_holds_no_refused_character(value: str) -> None:
    if text_problem(value) is None:
        assert unicodedata.is_normalized("NFC", value)
        assert not any(unicodedata.category(c) in REFUSED_CATEGORIES for c in value)


@given(st.text(max_size=30))
def test_shown_text_holds_no_refused_character(value: str) -> None:
    escaped = shown(value)
    assert not any(unicodedata.category(c) in REFUSED_CATEGORIES for c in escaped)
    if value.isprintable():
        assert escaped == value


def test_a_lookalike_letter_is_named_and_placed() -> None:
    """The letter is invisible as such to whoever typed it: the refusal says which."""
    problem = key_name_problem("W\u0430ng Fang")
    assert problem is not None
    assert "U+0430 CYRILLIC SMALL LETTER A at character 2" in problem
