"""The bodies of format v1's entries as values, and their encoding (DESIGN 3.1, 3.4). Pure.

One frozen dataclass per kind (:class:`Genesis`, :class:`KeyChange`, :class:`RuleChange`,
:class:`Award`, :class:`Redeem`, :class:`Objection`, :class:`Reverse`) over the common
fields of :class:`Body`, and the genesis's :class:`TownConfig` with its grades.
``to_value``/``to_bytes`` give the canonical map and bytes (``codec``); reading bytes back
is ``bodydecode.decode_body``'s job, which accepts only what these would write.

Free-text fields (``decided``, ``note``, ``item``, ``text``, ``reason``) hold 32-byte
commitments, never the text itself (``textcommit``, DESIGN 9.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redlist.ledger import codec
from redlist.ledger.deeddate import DEFAULT_BACKDATE_DAYS, MAX_BACKDATE_DAYS
from redlist.ledger.errors import FormatError
from redlist.ledger.fieldreader import FieldReader, is_int
from redlist.ledger.formatv1 import FORMAT_VERSION
from redlist.ledger.governance import Governance
from redlist.ledger.text import text_problem


@dataclass(frozen=True)
class Grade:
    """A grade and the lowest score that reaches it (``None``: every score)."""

    name: str
    min: int | None


@dataclass(frozen=True)
class TownConfig:
    """The genesis ``config`` map: how a town scores its residents.

    ``backdate_days`` is None when the genesis leaves it out (then
    ``DEFAULT_BACKDATE_DAYS``, 92, applies: ``deed_window_days``), and ``governance``
    None when it leaves that out (then ``Governance.defaults``: ``rules_of_governance``),
    so the value re-encodes to exactly the map it was read from.
    """

    base: int
    grades: tuple[Grade, ...]
    quorum: int
    publicity_days: int
    tz: str
    backdate_days: int | None = None
    governance: Governance | None = None

    @property
    def rules_of_governance(self) -> Governance:
        """The signatures ``key`` and ``rule`` entries need (``governance``)."""
        return Governance.defaults(self.quorum) if self.governance is None else self.governance

    @property
    def deed_window_days(self) -> int:
        """How many days before the day of an award's ``at`` its deed date may lie."""
        return DEFAULT_BACKDATE_DAYS if self.backdate_days is None else self.backdate_days

    def grade_of(self, score: int) -> str:
        """The first grade whose minimum the score reaches."""
        for grade in self.grades:
            if grade.min is None or score >= grade.min:
                return grade.name
        return self.grades[-1].name  # unreachable: the last grade is a catch-all

    def to_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {}
        if self.backdate_days is not None:
            value["backdate_days"] = self.backdate_days
        if self.governance is not None:
            value["governance"] = self.governance.to_value()
        value.update(
            {
                "base": self.base,
                "grades": [[grade.name, grade.min] for grade in self.grades],
                "quorum": self.quorum,
                "publicity_days": self.publicity_days,
                "tz": self.tz,
            }
        )
        return value

    @classmethod
    def from_value(cls, value: Any) -> TownConfig:
        fields = FieldReader(value, "genesis config")
        base = fields.integer("base")
        quorum = fields.integer("quorum", minimum=1)
        publicity_days = fields.integer("publicity_days", minimum=0)
        tz = fields.text("tz")
        backdate_days = fields.optional_integer("backdate_days", minimum=0)
        if backdate_days is not None and backdate_days > MAX_BACKDATE_DAYS:
            raise FormatError(
                f"genesis config: 'backdate_days' must be at most {MAX_BACKDATE_DAYS}"
            )
        raw_grades = fields.array("grades")
        raw_governance = fields.map("governance") if "governance" in fields.value else None
        fields.done()
        governance = None if raw_governance is None else Governance.from_value(raw_governance)
        if not raw_grades:
            raise FormatError("genesis config: 'grades' must list at least one grade")
        grades: list[Grade] = []
        for number, raw in enumerate(raw_grades):
            where = f"genesis config: grade {number + 1}"
            if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str)):
                raise FormatError(f"{where} must be [name, min]")
            name, minimum = raw
            if not name:
                raise FormatError(f"{where} has an empty name")
            if (problem := text_problem(name)) is not None:
                raise FormatError(f"{where}: the name {problem}")
            last = number == len(raw_grades) - 1
            if last and minimum is not None:
                raise FormatError(f"{where}: the last grade's min must be nil (the catch-all)")
            if not last and not is_int(minimum):
                raise FormatError(f"{where}: min must be an integer (only the last grade's is nil)")
            if (
                grades
                and grades[-1].min is not None
                and minimum is not None
                and (minimum >= grades[-1].min)
            ):
                raise FormatError(f"{where}: grade minimums must strictly descend")
            grades.append(Grade(name, minimum))
        if len({grade.name for grade in grades}) != len(grades):
            raise FormatError("genesis config: grade names must be distinct")
        return cls(base, tuple(grades), quorum, publicity_days, tz, backdate_days, governance)


@dataclass(frozen=True)
class Body:
    """Fields common to every entry body."""

    log: str
    id: bytes
    at: int

    kind = ""

    def to_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "kind": self.kind,
            "log": self.log,
            "id": self.id,
            "at": self.at,
        }
        value.update(self._own_fields())
        return value

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    def _own_fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Genesis(Body):
    admin: bytes
    config: TownConfig
    kind = "genesis"

    def _own_fields(self) -> dict[str, Any]:
        return {"admin": self.admin, "config": self.config.to_value()}


@dataclass(frozen=True)
class KeyChange(Body):
    op: str  # "add" or "revoke"
    pub: bytes
    name: str | None = None
    roles: tuple[str, ...] | None = None
    kind = "key"

    def _own_fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {"op": self.op, "pub": self.pub}
        if self.name is not None:
            value["name"] = self.name
        if self.roles is not None:
            value["roles"] = list(self.roles)
        return value


@dataclass(frozen=True)
class RuleChange(Body):
    op: str  # "set" or "retire"
    code: str
    title: str | None = None
    module: str | None = None
    points: int | None = None
    council: bool | None = None
    #: The most ``qty`` one award under the rule may have (None: no cap).
    max_qty: int | None = None
    #: The most ``qty`` an account may be awarded under the rule per month of the deed
    #: dates, counting its unreversed awards (None: no cap).
    max_per_month: int | None = None
    #: Commitment to the text naming the meeting that decided it (None: not given).
    decided: bytes | None = None
    kind = "rule"

    def _own_fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {"op": self.op, "code": self.code}
        names = ("title", "module", "points", "council", "max_qty", "max_per_month", "decided")
        for name in names:
            if getattr(self, name) is not None:
                value[name] = getattr(self, name)
        return value


@dataclass(frozen=True)
class Award(Body):
    """An award under a rule. ``date`` (keyword only, required) is the day of the deed,
    ``YYYY-MM-DD`` in the log's time zone (``deeddate``); ``note`` the commitment to its
    note, if it has one. ``declared`` (keyword only) marks a deed the resident declared
    themselves: the field ``declared`` true is written only then, and such an award needs
    the council's quorum whatever its rule (``points``)."""

    account: str
    rule: str
    qty: int = 1
    note: bytes | None = None
    evidence: bytes | None = None
    date: str = field(kw_only=True)
    declared: bool = field(default=False, kw_only=True)
    kind = "award"

    def _own_fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "account": self.account,
            "date": self.date,
            "rule": self.rule,
            "qty": self.qty,
        }
        if self.declared:
            value["declared"] = True
        if self.note is not None:
            value["note"] = self.note
        if self.evidence is not None:
            value["evidence"] = self.evidence
        return value


@dataclass(frozen=True)
class Redeem(Body):
    """A redemption; ``item`` is the commitment to the text naming what was redeemed."""

    account: str
    points: int
    item: bytes
    kind = "redeem"

    def _own_fields(self) -> dict[str, Any]:
        return {"account": self.account, "points": self.points, "item": self.item}


@dataclass(frozen=True)
class Objection(Body):
    """An objection to entry ``target``; ``text`` is the commitment to its words."""

    target: int
    text: bytes
    kind = "objection"

    def _own_fields(self) -> dict[str, Any]:
        return {"target": self.target, "text": self.text}


@dataclass(frozen=True)
class Reverse(Body):
    """A reversal of entry ``target``; ``reason`` is the commitment to its reason."""

    target: int
    reason: bytes
    kind = "reverse"

    def _own_fields(self) -> dict[str, Any]:
        return {"target": self.target, "reason": self.reason}


AnyBody = Genesis | KeyChange | RuleChange | Award | Redeem | Objection | Reverse
