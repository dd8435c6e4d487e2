"""A sheet of awards as the log will hold it, and every check the town's rules make.

``sheet_rows`` turns the parsed rows (``csvfiles.parse_awards_csv``) into ``SheetRow``s:
each row's deed, normalised (``rowids.Deed``: an empty date is today's), its occurrence
among identical rows and its entry id. ``same_deed`` says whether an entry already in
the log under a row's id says what the row says. ``check_rows`` checks the rows still to
be recorded against the town's catalogue, deed-date window and caps, as the node's
validator will (DESIGN 3.4), and returns every problem, so a sheet is refused whole,
with all its mistakes listed, before anything is signed or sent.

Pure: the catalogue, the town's configuration and the monthly counts come in as values
(``redlist submit`` fetches them from the node); so do the accounts the town's resident
register does not hold, which ``account_problems`` turns into bad rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from redlist.ledger import i18n
from redlist.ledger.deeddate import month_of
from redlist.ledger.entry import AnyBody, Award
from redlist.ledger.i18n import _
from redlist.ledger.textcommit import EntryText
from redlist.staff.client import RemoteRule
from redlist.staff.csvfiles import AwardRow
from redlist.staff.entries import Draft, SaltSource, random_salt
from redlist.staff.problems import Problem
from redlist.staff.rowids import Deed, occurrences

#: A monthly count's key: account, rule code, ``YYYY-MM`` of the deed dates.
MonthKey = tuple[str, str, str]


@dataclass(frozen=True)
class SheetRow:
    """One row of a sheet: its number as a spreadsheet shows it, what it says, its
    occurrence among the rows saying exactly that, and its entry id; ``undated``: its
    date cell was empty, so ``deed.date`` is the day it is sent."""

    row: int
    deed: Deed
    occurrence: int
    entry_id: bytes
    undated: bool = False

    def body(self, at: int, salt: SaltSource = random_salt) -> Draft[Award]:
        """The award this row records, signed at ``at`` (ms), and its note: the body
        holds the note's commitment under ``salt`` (DESIGN 9.2)."""
        deed = self.deed
        texts = {}
        if deed.note:
            texts["note"] = EntryText(deed.note, salt(self.entry_id, "note"))
        body = Award(
            deed.log,
            self.entry_id,
            at,
            deed.account,
            deed.rule,
            deed.qty,
            texts["note"].commitment if texts else None,
            date=deed.date,
        )
        return Draft(body, texts)

    @property
    def month_key(self) -> MonthKey:
        return (self.deed.account, self.deed.rule, month_of(self.deed.date))


def sheet_rows(rows: Sequence[AwardRow], log: str, today: str) -> tuple[SheetRow, ...]:
    """The rows of a sheet for the log ``log``, an empty date being ``today``."""
    deeds = [
        Deed(log, row.account, row.rule, row.qty, row.date or today, row.note or "") for row in rows
    ]
    return tuple(
        SheetRow(row.row, deed, occurrence, deed.entry_id(occurrence), row.date is None)
        for row, deed, occurrence in zip(
            rows, deeds, occurrences(deed.identity for deed in deeds), strict=True
        )
    )


def same_deed(row: SheetRow, body: AnyBody) -> bool:
    """Whether ``body`` (an entry under ``row``'s id) records the deed ``row`` says.

    The note is not compared: it does not identify a deed (``rowids``), and the body
    holds only a salted commitment to it. A row whose note was corrected since is the
    deed already recorded, under its first note."""
    return (
        isinstance(body, Award)
        and body.id == row.entry_id
        and (body.log, body.account, body.rule, body.qty, body.date) == row.deed.identity
    )


@dataclass(frozen=True)
class Town:
    """What the checks need of the town: its catalogue by code, the first and last deed
    day allowed today (``YYYY-MM-DD``), its quorum of council signatures, and how many
    keys sign the sheet."""

    rules: Mapping[str, RemoteRule]
    first_day: str
    last_day: str
    backdate_days: int
    quorum: int
    signers: int


def capped_keys(rows: Sequence[SheetRow], rules: Mapping[str, RemoteRule]) -> list[MonthKey]:
    """The monthly counts the rows' caps need, each once, in the rows' order."""
    keys: dict[MonthKey, None] = {}
    for row in rows:
        rule = rules.get(row.deed.rule)
        if rule is not None and rule.max_per_month is not None:
            keys[row.month_key] = None
    return list(keys)


def check_rows(
    rows: Sequence[SheetRow], town: Town, counts: Mapping[MonthKey, int]
) -> list[Problem]:
    """Every problem the node would refuse ``rows`` for (rows not yet recorded), in row
    order; ``counts``: the qty the log already counts for each of ``capped_keys``.

    A rule that is unknown, retired, or needs the council when fewer keys sign than the
    quorum; a qty over the rule's ``max_qty``; a deed date after today or before the
    window; a row that would take an account past the rule's ``max_per_month`` (counting
    what the log has and the rows above it). The node also checks the signers' roles.
    """
    problems: list[Problem] = []
    running = dict(counts)
    for row in rows:
        deed = row.deed
        rule = town.rules.get(deed.rule)
        if rule is None or not rule.active:
            problems.append(Problem(row.row, "rule", _rule_problem(deed.rule, rule, town.rules)))
            continue
        if rule.council and town.signers < town.quorum:
            problems.append(
                Problem(
                    row.row,
                    "rule",
                    _(
                        "rule {rule} needs the council: an award under it needs {quorum} council "
                        "members' signatures, and this sheet is signed by {signers}; add "
                        "--cosigner for each further council member, or record it with 'redlist "
                        "award'"
                    ).format(rule=deed.rule, quorum=town.quorum, signers=town.signers),
                )
            )
        if rule.max_qty is not None and deed.qty > rule.max_qty:
            problems.append(
                Problem(
                    row.row,
                    "qty",
                    _("qty {qty} is more than rule {rule} allows in one award ({max_qty})").format(
                        qty=deed.qty, rule=deed.rule, max_qty=rule.max_qty
                    ),
                )
            )
        date_problem = _date_problem(deed.date, town)
        if date_problem is not None:
            problems.append(Problem(row.row, "date", date_problem))
        if rule.max_per_month is not None:
            key = row.month_key
            before = running.get(key, 0)
            if before + deed.qty > rule.max_per_month:
                already = counts.get(key, 0)
                problems.append(
                    Problem(
                        row.row,
                        "qty",
                        _(
                            "{account} would get qty {value} under rule {rule} for deeds in {key} "
                            "({already} already recorded, {value2} in the rows above, {qty} in "
                            "this row); the rule allows {max_per_month} a month"
                        ).format(
                            account=deed.account,
                            value=before + deed.qty,
                            rule=deed.rule,
                            key=key[2],
                            already=already,
                            value2=before - already,
                            qty=deed.qty,
                            max_per_month=rule.max_per_month,
                        ),
                    )
                )
            else:
                running[key] = before + deed.qty
    return problems


def account_problems(rows: Sequence[SheetRow], unknown: AbstractSet[str]) -> list[Problem]:
    """A problem for each row whose account is in ``unknown``: accounts the town's
    resident register does not hold (``LedgerClient.check_accounts``), in row order."""
    return [
        Problem(row.row, "account", unknown_account(row.deed.account))
        for row in rows
        if row.deed.account in unknown
    ]


def unknown_account(account: str) -> str:
    """Why an award to ``account``, which the resident register does not hold, is refused."""
    return _(
        "account {account} is not in the town's resident register: check the account "
        "number for a typing mistake; a new resident must first be registered with "
        "'redlist-node residents import'"
    ).format(account=account)


def _rule_problem(code: str, rule: RemoteRule | None, rules: Mapping[str, RemoteRule]) -> str:
    if rule is not None:
        return _("rule {code} was retired (entry {seq}); it can no longer be awarded").format(
            code=code, seq=rule.seq
        )
    alike = [other for other in rules if other.casefold() == code.casefold() and other != code]
    hint = _(" (did you mean {alike}?)").format(alike=alike[0]) if alike else ""
    return _("rule {code} is not in the town's catalogue{hint}").format(code=code, hint=hint)


def _date_problem(day: str, town: Town) -> str | None:
    if day > town.last_day:
        return _("the date {day} is after today ({last_day}): a deed is recorded once done").format(
            day=day, last_day=i18n.prose_date(town.last_day)
        )
    if day < town.first_day:
        return _(
            "the date {day} is more than {backdate_days} days ago: the town takes deeds from "
            "{first_day} on; an older deed needs the town admin"
        ).format(
            day=day,
            backdate_days=town.backdate_days,
            first_day=i18n.prose_date(town.first_day),
        )
    return None
