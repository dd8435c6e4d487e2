"""Who may change the staff list and the rule catalogue: the genesis ``governance`` map. Pure.

A ``key`` entry and a ``rule`` entry each need one of a list of *alternatives*, each
``{"admin": A, "council": C}``: at least A signers holding the admin role and, besides
them, at least C holding the council role. The genesis ``config`` may spell the lists
out::

    "governance": {"key": [{"admin": 2, "council": 0}, {"admin": 1, "council": 2}],
                   "rule": [{"admin": 1, "council": 2}]}

and when it leaves ``governance`` out the defaults apply (``defaults``): a rule needs
1 admin and ``quorum`` council members; a key needs 2 admins, or 1 admin and ``quorum``
council members.

**Counting** (``Tally``). Only registered, unrevoked keys sign at all (the points
semantics refuses any other signer before this is asked), and an envelope's signatures
are in strictly increasing key id order, so each key counts once. A key holding both
roles counts for one of them only, whichever the alternative still lacks: an
alternative is met when ``admins >= A``, ``councils >= C`` and the number of distinct
signers holding either role is ``>= A + C``.

**Setting up** (``points``): until the log's first ``rule`` entry, nothing of value is
at stake (no award can be made without a rule), and one admin's signature suffices for a
``key`` entry, so the genesis admin can register the town's staff. From the first
``rule`` entry on, both kinds need their quorum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redlist.ledger.errors import FormatError, RuleViolation
from redlist.ledger.fieldreader import FieldReader

#: The largest number of alternatives per kind, and of signatures one alternative asks.
MAX_ALTERNATIVES = 8
MAX_SIGNATURES = 64

#: The kinds of entry the map governs, in its (sorted) key order.
GOVERNED = ("key", "rule")


@dataclass(frozen=True)
class Alternative:
    """One way to reach the quorum: ``admin`` admin signers and ``council`` more council."""

    admin: int
    council: int

    def to_value(self) -> dict[str, int]:
        return {"admin": self.admin, "council": self.council}

    @classmethod
    def from_value(cls, value: Any, where: str) -> Alternative:
        fields = FieldReader(value, where)
        admin = fields.integer("admin", minimum=1)
        council = fields.integer("council", minimum=0)
        fields.done()
        if admin > MAX_SIGNATURES or council > MAX_SIGNATURES:
            raise FormatError(f"{where}: at most {MAX_SIGNATURES} signatures of each role")
        return cls(admin, council)

    def describe(self) -> str:
        """In words: "2 admins", "1 admin and 2 council members"."""
        admins = f"{self.admin} admin" + ("s" if self.admin != 1 else "")
        if not self.council:
            return admins
        return f"{admins} and {self.council} council member" + ("s" if self.council != 1 else "")


@dataclass(frozen=True)
class Governance:
    """The alternatives a ``key`` and a ``rule`` entry need (each: any one of them)."""

    key: tuple[Alternative, ...]
    rule: tuple[Alternative, ...]

    def for_kind(self, kind: str) -> tuple[Alternative, ...]:
        return self.key if kind == "key" else self.rule

    def to_value(self) -> dict[str, Any]:
        return {
            "key": [alternative.to_value() for alternative in self.key],
            "rule": [alternative.to_value() for alternative in self.rule],
        }

    @classmethod
    def from_value(cls, value: Any) -> Governance:
        fields = FieldReader(value, "genesis config: governance")
        lists = {kind: fields.array(kind) for kind in GOVERNED}
        fields.done()
        parsed: dict[str, tuple[Alternative, ...]] = {}
        for kind, raw in lists.items():
            where = f"genesis config: governance {kind!r}"
            if not 1 <= len(raw) <= MAX_ALTERNATIVES:
                raise FormatError(f"{where} must list 1 to {MAX_ALTERNATIVES} alternatives")
            parsed[kind] = tuple(
                Alternative.from_value(item, f"{where} alternative {number + 1}")
                for number, item in enumerate(raw)
            )
        return cls(parsed["key"], parsed["rule"])

    def require(
        self,
        kind: str,
        signers: Sequence[tuple[str, frozenset[str]]],
        *,
        setting_up: bool,
        what: str,
    ) -> None:
        """Refuse (check ``quorum``) unless ``signers`` (name, roles), each holding admin or
        council, meet an alternative for ``kind``; ``setting_up`` (no rule entry yet): one
        admin suffices for a ``key`` entry."""
        tally = Tally.of(roles for _, roles in signers)
        if kind == "key" and setting_up:
            if tally.admins < 1:
                raise RuleViolation(
                    "quorum", f"{what} need an admin's signature; it has {tally.describe()}"
                )
            return
        alternatives = self.for_kind(kind)
        if not any(tally.meets(alternative) for alternative in alternatives):
            names = ", ".join(name for name, _ in signers)
            raise RuleViolation(
                "quorum",
                f"{what} need {describe(alternatives)} (town governance); this entry has "
                f"{tally.describe()}, by {names}",
            )

    @classmethod
    def defaults(cls, quorum: int) -> Governance:
        """The rules of a genesis without ``governance`` (docs/format.md)."""
        return cls(
            key=(Alternative(2, 0), Alternative(1, quorum)),
            rule=(Alternative(1, quorum),),
        )


@dataclass(frozen=True)
class Tally:
    """The signers of one entry, counted by role (see the module docstring)."""

    admins: int
    councils: int
    either: int

    @classmethod
    def of(cls, roles: Iterable[frozenset[str]]) -> Tally:
        admins = councils = either = 0
        for held in roles:
            is_admin, is_council = "admin" in held, "council" in held
            admins += is_admin
            councils += is_council
            either += is_admin or is_council
        return cls(admins, councils, either)

    def meets(self, alternative: Alternative) -> bool:
        return (
            self.admins >= alternative.admin
            and self.councils >= alternative.council
            and self.either >= alternative.admin + alternative.council
        )

    def describe(self) -> str:
        return f"{self.admins} admin and {self.councils} council signature" + (
            "s" if self.councils != 1 else ""
        )


def describe(alternatives: Iterable[Alternative]) -> str:
    """The alternatives in words, joined by "or"."""
    return ", or ".join(alternative.describe() for alternative in alternatives)


__all__ = ["GOVERNED", "Alternative", "Governance", "Tally", "describe"]
