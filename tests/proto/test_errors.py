"""What another node said, as it reaches a message or a log line."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger.text import REFUSED_CATEGORIES
from redlist.proto.errors import PEER_WORDS_LIMIT, peer_words


def test_the_cause_of_a_failed_connection_is_kept() -> None:
    said = (
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7520: "
        "Failed to connect to remote host: Connection refused"
    )
    assert peer_words(said) == said


def test_a_peer_cannot_start_a_log_line_of_its_own() -> None:
    said = peer_words("refused\n2026-12-05 INFO cosigned origin=forged\x1b[2J")
    assert "\n" not in said and "\x1b" not in said
    assert said == "refused\\u{000A}2026-12-05 INFO cosigned origin=forged\\u{001B}[2J"


@given(st.text(max_size=2000))
def test_what_a_peer_says_is_bounded_and_holds_no_control_character(text: str) -> None:
    said = peer_words(text)
    assert len(said) <= PEER_WORDS_LIMIT
    assert not any(unicodedata.category(character) in REFUSED_CATEGORIES for character in said)
