"""Open objections (DESIGN 9.3): awards with an objection and no decision yet.

Residents object during the window of ``publicity_days`` after a month's publication
(``redlist.node.publication``). An objection is *open* while its award is not reversed.
What the council does about one is a reversal, signed by its quorum like every
reversal: the node does not refuse a reversal after the window (the validator, which
auditors re-run, knows nothing of publication dates), and a reversal recorded in a later
month is listed in that month's publicity as a late correction (docs/adr/0027).

:func:`open_objections` reads the awards recorded in a month (or in the whole log) and
every later entry, so it sees objections and reversals filed in the months after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from redlist.ledger import months
from redlist.ledger.deeddate import day_of, log_zone
from redlist.ledger.entry import Award, Objection, Reverse
from redlist.ledger.log import Log
from redlist.ledger.validator import read_leaf
from redlist.node.publication import read_publication
from redlist.node.publicity import deadline_of


@dataclass(frozen=True)
class OpenObjection:
    """An award recorded in ``month`` with objections (seqs) and no reversal."""

    award: int
    account: str
    rule: str
    qty: int
    deed_date: str
    month: str
    objections: tuple[int, ...]
    first_objected: date
    #: The last day of the month's objection window; None when it is not published yet.
    deadline: date | None

    def status(self, today: date) -> str:
        if self.deadline is None:
            return "month not yet published"
        if today <= self.deadline:
            return f"open, window until {self.deadline.isoformat()}"
        return f"window closed {self.deadline.isoformat()}: for the council"


def open_objections(log: Log, data_dir: Path, month: str | None) -> list[OpenObjection]:
    """The open objections to awards recorded in ``month`` (every month when None)."""
    config = log.config()
    zone = log_zone(config.tz)
    size = log.checkpoint().size
    start, end = 0, size
    if month is not None:
        first, after = months.month_bounds(month, zone)
        start = months.first_at_or_after(log.leaf_time, size, first)
        end = months.first_at_or_after(log.leaf_time, size, after)
    awards: dict[int, tuple[Award, int]] = {}
    objected: dict[int, list[tuple[int, int]]] = {}
    reversed_ = set()
    for seq, leaf in log.leaves(start, size):
        reading = read_leaf(leaf)
        body, time = reading.body, reading.leaf.time if reading.leaf is not None else 0
        if isinstance(body, Award) and seq < end:
            awards[seq] = (body, time)
        elif isinstance(body, Objection) and body.target in awards:
            objected.setdefault(body.target, []).append((seq, time))
        elif isinstance(body, Reverse):
            reversed_.add(body.target)
    found = []
    deadlines: dict[str, date | None] = {}
    for seq, filed in sorted(objected.items()):
        if seq in reversed_:
            continue
        award, time = awards[seq]
        recorded = months.month_of_time(time, zone)
        if recorded not in deadlines:
            published = read_publication(data_dir, recorded)
            deadlines[recorded] = (
                None if published is None else deadline_of(published.published_ms, config)
            )
        found.append(
            OpenObjection(
                award=seq,
                account=award.account,
                rule=award.rule,
                qty=award.qty,
                deed_date=award.date,
                month=recorded,
                objections=tuple(objection for objection, _ in filed),
                first_objected=day_of(filed[0][1], zone),
                deadline=deadlines[recorded],
            )
        )
    return found


__all__ = ["OpenObjection", "open_objections"]
