"""The one advice after a write that stopped (``redlist.staff.advice``): complete, never
contradicting itself, and the only place in the staff tools that gives it."""

from __future__ import annotations

from pathlib import Path

import pytest

from redlist.staff import advice
from redlist.staff.advice import IN_DOUBT, REFUSED, UNPROVED

STAFF_SOURCE = Path(__file__).parents[2] / "staff" / "src" / "redlist" / "staff"


@pytest.mark.parametrize("outcome", [IN_DOUBT, UNPROVED, REFUSED])
def test_repeatable_commands_say_run_again_and_the_others_say_check_first(outcome: str) -> None:
    again = advice.advice(outcome, repeatable=True)
    once = advice.advice(outcome, repeatable=False)
    assert "the same command again" in again and "never recorded twice" in again
    assert "redlist account" not in again
    if outcome != REFUSED:
        assert "Check with 'redlist account' before sending it again" in once
        assert "the same command again" not in once
    for text in (again, once):
        assert text.endswith(".") and text[0].isupper()


def test_no_other_module_gives_advice_of_its_own() -> None:
    """Advice given in two places drifted apart once (stdout said run again, stderr said
    check first): every such sentence lives in advice.py."""
    phrases = ("may or may not", "before submitting", "before sending it again")
    for path in STAFF_SOURCE.rglob("*.py"):
        if path.name == "advice.py":
            continue
        text = path.read_text(encoding="utf-8")
        for phrase in phrases:
            assert phrase not in text, (path.name, phrase)
