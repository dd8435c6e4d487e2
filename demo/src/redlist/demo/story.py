"""The demo's village: its staff, its rule catalogue and one month of its spreadsheets.

Everything here is fixed data or drawn from a seeded generator, so every run
tells the same story (only the keys, made fresh by ``redlist keygen``, differ).
Nothing here talks to a node; :mod:`redlist.demo.tour` does.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

ORIGIN = "dongguan.example/redlist"
#: The town's name, heading its publicity notice (``export --town``).
TOWN_NAME = "东莞镇"
#: The town's time zone: a new node's default, in which deed dates are days.
TOWN_TZ = "Asia/Shanghai"
#: Deeds in the month's spreadsheets were done this many days before the demo runs, at
#: most (well inside the 92 days a town accepts by default).
MONTH_DAYS = 28
SEED = 20260101
RESIDENTS = 60
#: Rows in the month's spreadsheets, both grid workers together.
MONTH_ROWS = 300


@dataclass(frozen=True)
class Staff:
    """A staff member: a handle (their key file is ``keys/<handle>.pem``), name and roles."""

    handle: str
    name: str
    roles: tuple[str, ...]

    @property
    def short_name(self) -> str:
        return self.name.split(" (")[0]


ADMIN = Staff("admin", "Liu Jun (town admin, Wendeng credit office)", ("admin",))
GRID_EAST = Staff("wang-fang", "Wang Fang (grid, Dongguan village east)", ("grid",))
GRID_WEST = Staff("zhang-lei", "Zhang Lei (grid, Dongguan village west)", ("grid",))
COUNCIL = (
    Staff("chen-guoqiang", "Chen Guoqiang (Dongguan village council)", ("council",)),
    Staff("zhao-min", "Zhao Min (Dongguan village council)", ("council",)),
    Staff("sun-hua", "Sun Hua (Dongguan village council)", ("council",)),
)
CASHIER = Staff("zhou-li", "Zhou Li (cashier, Dongguan points supermarket)", ("cashier",))
#: A second admin, registered once the catalogue is in: with the council's approval.
DEPUTY = Staff("ma-ying", "Ma Ying (deputy admin, Wendeng credit office)", ("admin",))
STAFF = (ADMIN, GRID_EAST, GRID_WEST, *COUNCIL, CASHIER)


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    module: str
    points: int
    council: bool = False
    max_qty: int | None = None
    max_per_month: int | None = None


RULES = (
    Rule("vol-cleanup", "Village clean-up day", "volunteer service", 5),
    Rule(
        "vol-epidemic", "Epidemic prevention duty (per shift)", "volunteer service", 10, max_qty=2
    ),
    Rule("vol-elderly", "Visiting elderly people who live alone", "volunteer service", 3),
    Rule("fil-care", "Caring for elderly parents", "filial piety", 10),
    Rule("fil-model", "Model family of the month", "filial piety", 30, council=True),
    Rule("env-sort", "Waste sorted correctly (monthly check)", "environment", 2, max_per_month=1),
    Rule("env-tree", "Tree planting", "environment", 3),
    Rule("env-straw", "Burning straw in the open", "environment", -20),
    Rule("env-litter", "Littering", "environment", -5),
    Rule("saf-fire", "Reporting a fire hazard", "public safety", 5),
    Rule("saf-patrol", "Night patrol (per shift)", "public safety", 4, max_qty=3),
    Rule("saf-life", "Saving a life", "public safety", 50, council=True),
    Rule("saf-drunk", "Drunk driving (police notice)", "public safety", -50, council=True),
    Rule("med-dispute", "Mediating a neighbour dispute", "mediation", 8),
    Rule("med-quarrel", "Starting a public quarrel", "mediation", -10),
)
POINTS = {rule.code: rule.points for rule in RULES}

# How often grid workers record each rule, the most shifts per row, and typical notes.
GRID_RULE_WEIGHTS = {
    "vol-cleanup": 30,
    "vol-elderly": 25,
    "saf-patrol": 20,
    "fil-care": 12,
    "vol-epidemic": 10,
    "env-tree": 10,
    "env-litter": 10,
    "med-dispute": 8,
    "env-straw": 6,
    "saf-fire": 5,
    "med-quarrel": 4,
}
MAX_QTY = {rule.code: rule.max_qty for rule in RULES if rule.max_qty is not None}
NOTES = {
    "vol-cleanup": ("pond clean-up, east end", "clearing the main road after the storm"),
    "vol-elderly": ("weekly visit to Grandma Li", "helped with shopping and medicine"),
    "fil-care": ("confirmed by the village council", "took father to hospital appointments"),
    "env-straw": ("field by the north canal", "reported by the fire patrol"),
    "med-dispute": ("boundary wall between two households",),
}


@dataclass(frozen=True)
class CouncilAward:
    account: str
    rule: str
    note: str
    signers: tuple[Staff, Staff]
    #: The deed was done this many days before the council meets (the demo's day).
    days_ago: int


COUNCIL_AWARDS = (
    CouncilAward("dgc-0012", "saf-life", "pulled a child out of the reservoir", COUNCIL[:2], 9),
    CouncilAward(
        "dgc-0033", "fil-model", "chosen at the council meeting", (COUNCIL[0], COUNCIL[2]), 0
    ),
    CouncilAward("dgc-0047", "saf-drunk", "notice from the county traffic police", COUNCIL[1:], 17),
)


@dataclass(frozen=True)
class Declaration:
    """A resident's own declaration of a deed, entered by a grid worker, reviewed by two
    council members on different days (``redlist propose --declared-by-resident``)."""

    account: str
    rule: str
    note: str
    days_ago: int
    reviewers: tuple[Staff, Staff]


DECLARATION = Declaration(
    "dgc-0019",
    "med-dispute",
    "settled the quarrel over the shared well, as she declared",
    3,
    (COUNCIL[0], COUNCIL[1]),
)

#: A grid worker's slip: in her first save of the month's sheet, the first row of this
#: account has two digits swapped, an account the register does not hold.
MISTYPED_ACCOUNT = "dgc-0017"
MISTYPED_AS = "dgc-0071"

#: The resident whose burning-straw deduction is objected to and reversed.
OBJECTOR = "dgc-0023"
OBJECTED_RULE = "env-straw"
OBJECTION = "The burning field belongs to my neighbour; I was in Weihai that day."
REVERSAL = "Council checked the field register: not the resident's field. Deduction withdrawn."
SHOP_ITEM = "5 L peanut oil and 10 kg rice"
SHOP_PRICE = 60


def accounts() -> list[str]:
    return [f"dgc-{number:04d}" for number in range(1, RESIDENTS + 1)]


def grid_worker(account: str) -> Staff:
    """East of the village (accounts 1-30) is Wang Fang's, west is Zhang Lei's."""
    return GRID_EAST if int(account.split("-")[1]) <= RESIDENTS // 2 else GRID_WEST


@dataclass(frozen=True)
class SheetRow:
    """One row of a grid worker's monthly spreadsheet (``redlist submit --csv``)."""

    account: str
    rule: str
    qty: int
    note: str
    #: The deed was done this many days before the sheet is submitted (1 to MONTH_DAYS).
    days_ago: int = 1

    @property
    def points(self) -> int:
        return POINTS[self.rule] * self.qty

    def date(self, today: date) -> str:
        """The deed date, ``YYYY-MM-DD``, for a sheet submitted on ``today``."""
        return (today - timedelta(days=self.days_ago)).isoformat()


def month_rows(seed: int = SEED) -> list[SheetRow]:
    """The month's rows for the whole village, ordered by account; the same for one seed.

    Every household gets its monthly waste-sorting check; the other rows fall on
    residents in proportion to how active each is. The objector's burning-straw
    deduction is always among them.
    """
    rng = random.Random(seed)  # noqa: S311 -- a reproducible story, not secrets
    residents = accounts()
    activity = [rng.choice((1, 1, 2, 3, 5)) for _ in residents]
    rows = [SheetRow(account, "env-sort", 1, "") for account in residents]
    rows.append(SheetRow(OBJECTOR, OBJECTED_RULE, 1, NOTES[OBJECTED_RULE][0]))
    for account in rng.choices(residents, activity, k=MONTH_ROWS - len(rows)):
        code = rng.choices(list(GRID_RULE_WEIGHTS), list(GRID_RULE_WEIGHTS.values()))[0]
        notes = NOTES.get(code)
        note = rng.choice(notes) if notes and rng.random() < 0.5 else ""
        rows.append(SheetRow(account, code, rng.randint(1, MAX_QTY.get(code, 1)), note))
    # Deed days come from a generator of their own, so they leave the rest of the story
    # as it was.
    days = random.Random(seed + 1)  # noqa: S311 -- a reproducible story, not secrets
    dated = [replace(row, days_ago=days.randint(1, MONTH_DAYS)) for row in rows]
    return sorted(dated, key=lambda row: row.account)  # stable: each account's rows keep order


def mistyped(rows: Sequence[SheetRow]) -> tuple[list[SheetRow], int]:
    """``rows`` with the first row of ``MISTYPED_ACCOUNT`` naming ``MISTYPED_AS`` instead,
    and that row's number as a spreadsheet shows it (the header is row 1)."""
    index = next(n for n, row in enumerate(rows) if row.account == MISTYPED_ACCOUNT)
    slipped = list(rows)
    slipped[index] = replace(rows[index], account=MISTYPED_AS)
    return slipped, index + 2


def town_today() -> date:
    """Today in the town's time zone: the day the demo's sheets are submitted."""
    return datetime.now(ZoneInfo(TOWN_TZ)).date()


def sheet_csv(rows: Iterable[SheetRow], today: date) -> str:
    """The rows as a spreadsheet saved as CSV (columns ``account,rule,qty,date,note``), for
    a sheet submitted on ``today``."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("account", "rule", "qty", "date", "note"))
    writer.writerows((row.account, row.rule, row.qty, row.date(today), row.note) for row in rows)
    return text.getvalue()


#: The meeting that voted the catalogue (the ``decided`` column: a text kept by the node).
DECIDED = "Dongguan villagers' assembly, spring meeting"


def catalogue_csv(rules: Sequence[Rule]) -> str:
    """The catalogue as CSV (columns ``code,title,module,points,council,max_qty,
    max_per_month,decided``; an empty cap is no limit)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        ("code", "title", "module", "points", "council", "max_qty", "max_per_month", "decided")
    )
    writer.writerows(
        (
            rule.code,
            rule.title,
            rule.module,
            rule.points,
            "yes" if rule.council else "no",
            "" if rule.max_qty is None else rule.max_qty,
            "" if rule.max_per_month is None else rule.max_per_month,
            DECIDED,
        )
        for rule in rules
    )
    return text.getvalue()


def spendable_after(rows: Iterable[SheetRow]) -> Counter[str]:
    """Each account's points to spend once ``rows`` and the council awards are recorded."""
    earned: Counter[str] = Counter()
    for row in rows:
        earned[row.account] += row.points
    for award in COUNCIL_AWARDS:
        earned[award.account] += POINTS[award.rule]
    earned[DECLARATION.account] += POINTS[DECLARATION.rule]
    return earned


#: The village's register of residents (kept by the node, never in the log): names are
#: drawn from these; two residents have given no legal basis for publication.
SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "欧阳", "孙")
GIVEN = ("芳", "伟", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "艳", "勇", "杰", "娟")
VILLAGE = "东关村"
NO_BASIS = ("dgc-0007", "dgc-0051")
REGISTER_DATE = "2026-01-05"
#: Accounts of the register that are organisations (scored too), with their names.
ORGANISATIONS = {"dgc-0060": "东关村蔬菜合作社"}


def register_csv(seed: int = SEED) -> str:
    """The register as a clerk's spreadsheet (``redlist-node residents import``), in Chinese."""
    rng = random.Random(f"{seed}-register")  # noqa: S311 -- a reproducible story
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(("账户", "姓名", "身份证号", "电话", "村", "户", "依据", "依据日期", "类型"))
    for account in accounts():
        number = int(account.split("-")[1])
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        basis = ("", "") if account in NO_BASIS else ("同意", REGISTER_DATE)
        household = f"{(number + 1) // 2}号户"  # two residents per household
        kind = "个人"
        if account in ORGANISATIONS:
            name, household, kind = ORGANISATIONS[account], "", "组织"
        writer.writerow((account, name, "", "", VILLAGE, household, *basis, kind))
    return "\ufeff" + text.getvalue()  # saved by Excel: UTF-8 with a byte order mark
