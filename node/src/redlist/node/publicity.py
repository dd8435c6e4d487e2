"""A month's publicity (DESIGN 9.3): which entries, what the board may show of whom.

:func:`month_range` finds the month's entries ``[start, end)`` and the signed
checkpoints at both ends (``redlist.ledger.months``; docs/adr/0027). :func:`derive`
replays the log from its genesis to the month's end through the ledger's one validator
(signatures are not re-verified: the node checked each before storing it, and the
exporter recomputes the root of what it writes), so the running scores are the ones an
auditor recomputes, with the same :class:`~redlist.ledger.publicity.PublicityRecorder`.
:func:`compose` then joins the entries with the resident register: a resident is shown
only with a legal basis (consent or statute), by masked name and village; award notes
only with consent; everyone else is left out and counted.

The replay costs one pass over the log up to the month's end and memory for the points
state (staff, rules, balances, the awards a later entry may reverse), as a full audit
does; entry ids, which only the duplicate check needs, are not kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from redlist.ledger import months
from redlist.ledger.deeddate import day_of, log_zone
from redlist.ledger.entry import TownConfig
from redlist.ledger.errors import IntegrityError, PublicityError, RuleViolation
from redlist.ledger.i18n import _
from redlist.ledger.log import Log
from redlist.ledger.masking import NameMask, mask_note
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.publicity import AWARD, DEDUCTION, PublicEntry, PublicityRecorder
from redlist.ledger.residents import CONSENT, ORGANISATION, PERSON, Resident
from redlist.ledger.state import MemoryState
from redlist.ledger.validator import LogValidator, read_leaf


@dataclass(frozen=True)
class MonthRange:
    """Month ``month``'s entries ``[start, end)``, with the checkpoints at both ends
    (``previous`` is None when the month begins the log)."""

    month: str
    start: int
    end: int
    checkpoint: SignedCheckpoint
    previous: SignedCheckpoint | None


def month_range(log: Log, month: str, now_ms: int, *, draft: bool = False) -> MonthRange:
    """The range of ``month`` in ``log``; ``PublicityError`` when there is none yet.

    The month must be over by ``now_ms`` (the node's later entries then belong to a
    later month: its time never goes back) and must not lie wholly before the log.
    ``draft``: a month not over yet is allowed, up to the latest checkpoint (a preview
    of the month so far; never a publication).
    """
    config = log.config()
    zone = log_zone(config.tz)
    first, after = months.month_bounds(month, zone)
    if now_ms < first:
        raise PublicityError(
            _("{month} has not begun yet in {tz}: nothing to show").format(
                month=month, tz=config.tz
            )
        )
    if now_ms < after and not draft:
        raise PublicityError(
            _(
                "{month} is not over yet in {tz}: its publicity can be written from "
                "{next_month}-01 on (add --draft to preview it now)"
            ).format(month=month, tz=config.tz, next_month=months.next_month(month))
        )
    latest = log.checkpoint()
    size = latest.size
    start = months.first_at_or_after(log.leaf_time, size, first)
    end = months.first_at_or_after(log.leaf_time, size, after)
    if end == 0:
        began = months.month_of_time(log.leaf_time(0), zone)
        raise PublicityError(
            _("the log began in {began}, after {month}: it has no such month").format(
                began=began, month=month
            )
        )
    checkpoint = latest if end == size else _stored(log, end, month)
    previous = None if start == 0 else _stored(log, start, months.previous_month(month))
    return MonthRange(month, start, end, checkpoint, previous)


def _stored(log: Log, size: int, month: str) -> SignedCheckpoint:
    checkpoint = log.checkpoint_at(size)
    if checkpoint is None:
        raise PublicityError(
            _(
                "this copy of log {origin} holds no checkpoint at tree size {size}, where "
                "{month} ends; the town's own node signs one at every batch: export the month "
                "from its data directory"
            ).format(origin=log.origin, size=size, month=month)
        )
    return checkpoint


class _ReplayState(MemoryState):
    """The points state of a replay of a log already checked: no entry ids kept."""

    def entry_seq(self, entry_id: bytes) -> int | None:
        return None

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        pass


def _stored_signature(public: bytes, body: bytes, signature: bytes) -> bool:
    return True  # verified by the node before the entry was stored


@dataclass(frozen=True)
class Derived:
    """The month's listed entries, and the points state at its end."""

    entries: tuple[PublicEntry, ...]
    state: MemoryState
    config: TownConfig


def derive(log: Log, found: MonthRange) -> Derived:
    """Replay ``log`` up to the month's end; the month's entries as publicity lists them."""
    config = log.config()
    state = _ReplayState()
    validator = LogValidator(log.origin, state=state)
    recorder = PublicityRecorder()
    for seq, leaf in log.leaves(0, found.end):
        reading = read_leaf(leaf)
        try:
            effect = validator.apply(reading, _stored_signature)
        except RuleViolation as exc:
            raise IntegrityError(
                _(
                    "entry {seq} of log {origin} fails check {check} on replay: {message}; run "
                    "'redlist-node check --full'"
                ).format(seq=seq, origin=log.origin, check=exc.check, message=exc.message),
                seq,
            ) from None
        if seq >= found.start and reading.leaf is not None:
            recorder.observe(reading.leaf.time, reading.body, effect, state)
    if validator.root() != found.checkpoint.root:
        raise IntegrityError(
            _(
                "the stored leaves of log {origin} do not match its checkpoint at size {end}: "
                "the store is damaged; nothing was exported"
            ).format(origin=log.origin, end=found.end)
        )
    return Derived(tuple(recorder.entries), state, config)


# ---------------------------------------------------------------------------
# What the board shows


@dataclass(frozen=True)
class Listed:
    """An entry as the board shows it: with the resident's village and masked name."""

    entry: PublicEntry
    village: str
    masked: str
    note: str
    #: What the account is (``residents.KINDS``).
    kind: str = PERSON


@dataclass(frozen=True)
class Standing:
    """A shown resident's standing at the month's end (for the red list)."""

    account: str
    masked: str
    score: int
    grade: str
    kind: str = PERSON


@dataclass(frozen=True)
class VillageNotice:
    """One village's part of the notice."""

    village: str
    listed: tuple[Listed, ...]
    #: (grade, residents with a basis in the village at that grade), in the town's order.
    grades: tuple[tuple[str, int], ...]
    #: 红榜: residents at the top grade at the month's end, highest score first.
    red: tuple[Standing, ...]
    #: 黑榜: the month's deductions that stand (not reversed by the month's end).
    black: tuple[Listed, ...]
    #: The village's organisations with a basis, and their standing at the month's end,
    #: by account: shown apart from its people (the grade counts and red list are theirs).
    organisations: tuple[Standing, ...] = ()


@dataclass(frozen=True)
class Publicity:
    """Everything ``publicity.csv`` and ``publicity.html`` say."""

    origin: str
    found: MonthRange
    config: TownConfig
    published_ms: int
    deadline: date
    objections_to: str
    listed: tuple[Listed, ...]
    villages: tuple[VillageNotice, ...]
    #: Accounts with listed entries this month that are left out (no basis, not
    #: registered, or erased), town-wide.
    left_out: int
    #: A preview (``export --month --draft``): not a publication, no objection window.
    draft: bool = False
    #: The town's name as its notice is headed (``export --town``); empty: none given.
    town: str = ""
    #: ``(code, points a unit)`` of each rule the listed entries were made under, as the
    #: catalogue stood at the end of the month's entries, by code.
    rule_points: tuple[tuple[str, int], ...] = ()

    @property
    def month(self) -> str:
        return self.found.month


#: The free texts the node holds of an entry, by seq (``texts.NodeTexts.texts_for``).
TextsOf = Callable[[int], Mapping[str, str]]


def published_note(
    entry: PublicEntry,
    resident: Resident,
    texts: TextsOf | None = None,
    names: NameMask | None = None,
) -> str:
    """The note the board may show for ``entry``: only with the resident's consent, and
    masked (``masking.mask_note``): no number that may be an ID or phone number, and the
    register's ``names`` masked as names are (a note may name other people).

    The one place that looks a note up: the log holds a commitment, the text is in the
    node's text store (DESIGN 9.2), read through ``texts``; an erased note is empty.
    """
    if resident.basis != CONSENT or entry.kind not in (AWARD, DEDUCTION):
        return ""
    if entry.note is not None:
        return mask_note(entry.note, names)
    if texts is None:
        return ""
    return mask_note(texts(entry.seq).get("note", ""), names)


def deadline_of(published_ms: int, config: TownConfig) -> date:
    """The last day to object: the day of publication plus ``publicity_days``."""
    return day_of(published_ms, log_zone(config.tz)) + timedelta(days=config.publicity_days)


def compose(
    log_origin: str,
    found: MonthRange,
    derived: Derived,
    residents: Sequence[Resident],
    *,
    published_ms: int,
    objections_to: str,
    draft: bool = False,
    texts: TextsOf | None = None,
    town: str = "",
) -> Publicity:
    """Join the month's entries with the register (see the module docstring); ``texts``
    gives the notes the node holds (a consented note is shown), ``town`` the name the
    notice is headed with."""
    config, state = derived.config, derived.state
    shown = {resident.account: resident for resident in residents if resident.publishable}
    names = NameMask(resident.name for resident in residents)  # all of them, shown or not
    listed: list[Listed] = []
    hidden: dict[str, None] = {}
    for entry in derived.entries:
        resident = shown.get(entry.account)
        if resident is None:
            hidden[entry.account] = None
            continue
        masked = resident.masked()
        listed.append(
            Listed(
                entry,
                masked.village,
                masked.masked_name,
                published_note(entry, resident, texts, names),
                resident.kind,
            )
        )
    villages = sorted({resident.village for resident in shown.values()})
    notices = []
    top = config.grades[0].name
    for village in villages:
        members = [r for r in shown.values() if r.village == village]
        standings = []
        for resident in members:
            score = state.balance(resident.account).score(config)
            standings.append(
                Standing(
                    resident.account,
                    resident.masked().masked_name,
                    score,
                    config.grade_of(score),
                    resident.kind,
                )
            )
        organisations = tuple(
            sorted((s for s in standings if s.kind == ORGANISATION), key=lambda s: s.account)
        )
        standings = [s for s in standings if s.kind != ORGANISATION]
        counts = {grade.name: 0 for grade in config.grades}
        for standing in standings:
            counts[standing.grade] += 1
        red = sorted((s for s in standings if s.grade == top), key=lambda s: (-s.score, s.account))
        own = tuple(item for item in listed if item.village == village)
        black = tuple(
            item
            for item in own
            if item.entry.kind == DEDUCTION and _standing(state, item.entry.seq)
        )
        notices.append(
            VillageNotice(village, own, tuple(counts.items()), tuple(red), black, organisations)
        )
    return Publicity(
        origin=log_origin,
        found=found,
        config=config,
        published_ms=published_ms,
        deadline=deadline_of(published_ms, config),
        objections_to=objections_to,
        listed=tuple(listed),
        villages=tuple(notices),
        left_out=len(hidden),
        draft=draft,
        town=town,
        rule_points=_rule_points(state, listed),
    )


def _rule_points(state: MemoryState, listed: Sequence[Listed]) -> tuple[tuple[str, int], ...]:
    """The points a unit of each rule the listed entries name, as the state holds it."""
    codes = sorted({item.entry.rule for item in listed if item.entry.rule})
    return tuple((code, rule.points) for code in codes if (rule := state.rule(code)) is not None)


def _standing(state: MemoryState, seq: int) -> bool:
    target = state.target(seq)
    return target is not None and target.reversed_by is None


__all__ = [
    "Derived",
    "Listed",
    "MonthRange",
    "Publicity",
    "Standing",
    "VillageNotice",
    "compose",
    "deadline_of",
    "derive",
    "month_range",
    "published_note",
]
