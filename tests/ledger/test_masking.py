"""Names masked for publicity as DESIGN 3.7 says, and ID and phone numbers for staff lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger.masking import (
    MASK,
    NAME_SEPARATORS,
    NameMask,
    hides_only,
    mask_id_number,
    mask_name,
    mask_note,
    mask_phone,
    shows_number,
)

EXAMPLES = {
    # DESIGN 3.7's own examples
    "张三": "张*",
    "李四光": "李*光",
    "欧阳娜娜": "欧**娜",
    # one character: a surname alone shows what a two-character name shows
    "张": "张*",
    # compound surnames: the rule counts characters, not surnames
    "欧阳华": "欧*华",
    "司马光": "司*光",
    "诸葛亮": "诸*亮",
    "上官婉儿": "上**儿",
    # five characters and more
    "爱新觉罗溥仪": "爱****仪",
    # names in parts: first of the first part, last of the last, separators kept
    "阿依古丽·买买提": "阿***·**提",
    "Anna Schmidt": "A*** ******t",
    "Li": "L*",
    "Jean-Luc Picard": "J***-*** *****d",
    "A B": "A *",
}


@pytest.mark.parametrize(("name", "masked"), EXAMPLES.items())
def test_names_mask_as_publicity_does(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def revealed(masked: str) -> list[str]:
    return [c for c in masked if c != MASK and c not in NAME_SEPARATORS]


name_parts = st.text(
    alphabet=st.characters(categories=("Lo", "Lu", "Ll")), min_size=1, max_size=12
).filter(lambda part: not any(c in NAME_SEPARATORS or c == MASK for c in part))
names = st.builds(
    lambda parts, separators: "".join(
        part + (separators[i] if i < len(parts) - 1 else "") for i, part in enumerate(parts)
    ),
    st.lists(name_parts, min_size=1, max_size=4),
    st.lists(st.sampled_from(sorted(NAME_SEPARATORS)), min_size=4, max_size=4),
)


@given(names)
def test_a_mask_never_shows_more_than_two_characters_nor_the_whole_name(name: str) -> None:
    masked = mask_name(name)
    letters = [c for c in name if c not in NAME_SEPARATORS]
    shown = revealed(masked)
    assert len(shown) <= 2
    assert len(shown) < len(letters) or (len(letters) == 1 and MASK in masked)
    assert masked.count(MASK) >= 1


@given(names)
def test_a_mask_shows_only_the_first_and_last_characters_in_place(name: str) -> None:
    masked = mask_name(name)
    letters = [c for c in name if c not in NAME_SEPARATORS]
    shown = revealed(masked)
    assert shown[0] == letters[0]
    if len(letters) >= 3:
        assert shown == [letters[0], letters[-1]]
    else:
        assert shown == [letters[0]]
    # the separators stay where they were; everything else is hidden, one * each
    if len(letters) > 1:
        assert len(masked) == len(name)
        assert all(
            (m == c) if c in NAME_SEPARATORS else m in (c, MASK)
            for m, c in zip(masked, name, strict=True)
        )


@given(names)
def test_masking_is_deterministic(name: str) -> None:
    assert mask_name(name) == mask_name(str(name))
    assert mask_name(name) == mask_name(name[:] + "")


def test_id_and_phone_masks_keep_only_their_ends() -> None:
    assert mask_id_number("11010519491231002X") == "110************02X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("0631-5201234") == "0631-***1234"
    assert mask_phone("010-82345678") == "010-****5678"
    assert mask_id_number("") == ""
    assert mask_phone("") == ""


@pytest.mark.parametrize(
    ("note", "shown"),
    [
        ("举报人：李四 身份证370681195102021011", "举报人：李* 身份证******************"),
        ("帮邻居张秀英搬家，电话13912345678", "帮邻居张*英搬家，电话***********"),
        ("电话 0631-8123456，手机 139 1234 5678", "电话 ****-*******，手机 *** **** ****"),
        ("身份证 37068119510202101X", "身份证 ******************"),
        ("\uff11\uff13\uff19" + "\uff10" * 8, "*" * 11),  # typed with full-width digits
        ("捐款 500 元，2026-12-05 交", "捐款 500 元，2026-12-05 交"),  # short numbers, dates
        ("王大爷帮忙", "王大爷帮忙"),  # a one-character name masks nothing
    ],
)
def test_a_published_note_hides_numbers_and_the_registers_names(note: str, shown: str) -> None:
    names = NameMask(["李四", "张秀英", "王"])
    assert mask_note(note, names) == shown
    assert hides_only(shown, note) and not shows_number(shown)


@given(st.text(max_size=200), st.lists(st.text(min_size=1, max_size=6), max_size=5))
def test_a_masked_note_only_hides_characters_and_shows_no_long_number(
    note: str, names: list[str]
) -> None:
    shown = mask_note(note, NameMask(names))
    assert hides_only(shown, note)
    assert not shows_number(shown)


def test_a_note_changed_otherwise_than_by_hiding_is_told_apart() -> None:
    assert hides_only("李* 去了", "李四 去了")
    assert not hides_only("李五 去了", "李四 去了")
    assert not hides_only("李四 去", "李四 去了")
