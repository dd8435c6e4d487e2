"""What a clerk is told to do when a write stops without a clear answer: one function,
so that what is printed on stdout (a run's summary) and on stderr (the error) agree.

Two things decide it: what became of the write (``IN_DOUBT``: the answer was lost, so
the entries may or may not be recorded; ``UNPROVED``: the node said "recorded" but did
not prove it; ``REFUSED``: the node refused, nothing of that batch was recorded), and
whether running the same command again is safe (``repeatable``): commands whose entry
ids come from what they say (``submit``, ``reverse --csv``/``--sheet``, ``rules load``)
recognise what is already recorded and never record it twice; a single ``award``,
``redeem``, ``objection`` or ``reverse --target`` has a fresh id each time and would be
recorded a second time.

Each advice is a whole sentence, built here only, so that a translation can replace it.
"""

from __future__ import annotations

from redlist.ledger.i18n import N_, _

IN_DOUBT = "in-doubt"
UNPROVED = "unproved"
REFUSED = "refused"

_ADVICE = {
    (IN_DOUBT, True): N_(
        "The rows sent last may or may not be recorded. Run the same command "
        "again once the node answers: rows already recorded are recognised by what they say "
        "and never recorded twice."
    ),
    (IN_DOUBT, False): N_(
        "The entry may or may not have been recorded. Check with 'redlist "
        "account' before sending it again: sent again, it would be recorded a second time."
    ),
    (UNPROVED, True): N_(
        "Do not count them as recorded, and tell the town admin. Running the "
        "same command again is safe: rows already recorded are recognised, proved again, and "
        "never recorded twice."
    ),
    (UNPROVED, False): N_(
        "Do not count it as recorded, and tell the town admin. Check with "
        "'redlist account' before sending it again: sent again, it would be recorded a second "
        "time."
    ),
    (REFUSED, True): N_(
        "The rows not counted above were not recorded. Once the problem is "
        "solved, run the same command again (with the sheet corrected if need be): rows "
        "already recorded are recognised by what they say and never recorded twice."
    ),
    (REFUSED, False): N_(
        "Nothing was recorded. Once the problem is solved, run the command again."
    ),
}


def advice(outcome: str, *, repeatable: bool) -> str:
    """The advice after a write that ended ``outcome`` (``IN_DOUBT``, ``UNPROVED`` or
    ``REFUSED``), for a command that is (or is not) ``repeatable``."""
    return _(_ADVICE[(outcome, repeatable)])


__all__ = ["IN_DOUBT", "REFUSED", "UNPROVED", "advice"]
