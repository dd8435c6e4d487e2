"""Sentences wrapped by the columns a terminal gives each character (``tables.wrap_text``)."""

from __future__ import annotations

import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from redlist.ledger.tables import wrap_text

INDENTS = {"initial_indent": "  ", "subsequent_indent": "    "}


def test_english_is_wrapped_as_textwrap_wraps_it() -> None:
    sentence = "The checkpoint covers 24 entries, root fbab5e9f042e3ba5; " * 6
    assert wrap_text(sentence, 60, **INDENTS) == textwrap.wrap(sentence, 60, **INDENTS)


def test_a_chinese_sentence_breaks_between_characters_within_the_width() -> None:
    sentence = (
        "处理意见：请勿采信这些数字。请原样保留这些文件，并将本报告送交镇办公室和县审计部门；"
        "然后从本镇节点或镜像重新获取数据，再核验一次。"
    )
    lines = wrap_text(sentence, 40, **INDENTS)
    assert len(lines) > 2
    assert all(cell_len(line) <= 40 for line in lines)
    assert lines[0].startswith("  处理") and all(line.startswith("    ") for line in lines[1:])
    assert "".join(line.strip() for line in lines) == sentence
    # textwrap counted characters: a line of 40 Chinese characters takes 80 columns.
    assert max(cell_len(line) for line in textwrap.wrap(sentence, 40, **INDENTS)) > 40


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(
            ["签名", "key", "0123456789abcdef", "条目在签名后被改动", "，", "is", "“规则”"]
        ),
        min_size=1,
        max_size=30,
    ),
    width=st.integers(min_value=24, max_value=100),
)
def test_mixed_text_keeps_every_character_and_fits(words: list[str], width: int) -> None:
    sentence = " ".join(words)
    lines = wrap_text(sentence, width, **INDENTS)
    assert all(cell_len(line) <= width for line in lines)
    assert "".join("".join(lines).split()) == "".join(sentence.split())
