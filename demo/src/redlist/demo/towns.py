"""The demo's neighbouring towns: who they are and what their staff record.

Dongguan (:mod:`redlist.demo.story`) has two neighbours that run logs of their
own. Each has an admin, a grid worker, the same rule catalogue and a short
sheet of awards; each node also witnesses the other two towns' logs. Fixed data
and a seeded generator, like the village's month: every run tells the same story.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from redlist.demo import story


@dataclass(frozen=True)
class Neighbour:
    """A neighbouring town: its name, log origin, account prefix and staff."""

    name: str
    handle: str
    origin: str
    prefix: str
    admin: story.Staff
    grid: story.Staff
    #: The council's quorum (2): the catalogue is loaded with their approval.
    council: tuple[story.Staff, story.Staff]

    def accounts(self, residents: int) -> list[str]:
        return [f"{self.prefix}-{number:04d}" for number in range(1, residents + 1)]


RUSHAN = Neighbour(
    "Rushan",
    "rushan",
    "rushan.example/redlist",
    "rs",
    story.Staff("rushan-admin", "Qian Wei (town admin, Rushan)", ("admin",)),
    story.Staff("rushan-grid", "Ma Lin (grid, Rushan)", ("grid",)),
    (
        story.Staff("rushan-council-1", "Yu Hong (council, Rushan)", ("council",)),
        story.Staff("rushan-council-2", "Tang Jie (council, Rushan)", ("council",)),
    ),
)
JUXIAN = Neighbour(
    "Juxian",
    "juxian",
    "juxian.example/redlist",
    "jx",
    story.Staff("juxian-admin", "He Ping (town admin, Juxian)", ("admin",)),
    story.Staff("juxian-grid", "Lu Yan (grid, Juxian)", ("grid",)),
    (
        story.Staff("juxian-council-1", "Fang Qing (council, Juxian)", ("council",)),
        story.Staff("juxian-council-2", "Xu Bo (council, Juxian)", ("council",)),
    ),
)
NEIGHBOURS = (RUSHAN, JUXIAN)
#: Residents and sheet rows per neighbouring town.
RESIDENTS = 12
SHEET_ROWS = 24
#: The rules a grid worker may record alone (no council signatures needed).
#: What a neighbour's grid worker records: rules without council approval and without a
#: monthly cap (a random sheet could give one resident the monthly check twice).
GRID_RULES = tuple(
    rule.code for rule in story.RULES if not rule.council and rule.max_per_month is None
)

#: The county's auditor: checks every town's log and signs attestations.
AUDITOR_NAME = "county-audit"
#: A Dongguan resident who moves to Rushan, and the account Rushan gives them.
NEWCOMER_ACCOUNT = "rs-0101"


def sheet(town: Neighbour, seed: int = story.SEED) -> list[story.SheetRow]:
    """The town's sheet of awards, ordered by account; the same for one seed."""
    rng = random.Random(f"{seed}-{town.handle}")  # noqa: S311 -- a reproducible story
    rows = [
        story.SheetRow(account, rng.choice(GRID_RULES), 1, "")
        for account in rng.choices(town.accounts(RESIDENTS), k=SHEET_ROWS)
    ]
    return sorted(rows, key=lambda row: row.account)


def fork_rows(town: Neighbour) -> tuple[list[story.SheetRow], list[story.SheetRow]]:
    """What the town records on its own node, and what a second copy of it records instead."""
    honest = [story.SheetRow(f"{town.prefix}-0001", "env-litter", 1, "litter by the bus stop")]
    forged = [story.SheetRow(f"{town.prefix}-0002", "vol-epidemic", 2, "")]
    return honest, forged
