"""Witness policies (c2sp.org/tlog-policy): which cosignatures a checkpoint needs. Pure.

A policy file is UTF-8 text, one item per line; items are separated by runs of
spaces and tabs, and leading and trailing spaces and tabs are allowed. Blank lines
and lines whose first non-blank character is ``#`` are ignored. The other lines are:

* ``log VKEY [URL]`` — a log the policy is for (an Ed25519 verifier key, algorithm
  0x01, named after the log's origin). Zero or more; none means "any log".
* ``witness NAME VKEY [URL]`` — a witness and its cosigning key (cosignature/v1,
  algorithm 0x04).
* ``group NAME all|any|K MEMBER...`` — met when at least K of its members are met
  (``any`` is 1, ``all`` is the number of members); K is decimal without leading
  zeros and 1 <= K <= the number of members. A witness is met when it cosigned.
* ``quorum NAME`` — exactly one: the witness or group that must be met, or ``none``.

Witnesses and groups share one namespace; a group or the quorum may only name
witnesses and groups defined on earlier lines (which rules out cycles), each member
at most once, and never ``none``. Two logs, or two witnesses, with the same public
key are refused. Everything else (an unknown keyword, a missing or extra item, a
control character other than tab) is refused with a ``PolicyError`` naming the line.
Names are compared exactly, as the spec's opaque octet strings.

:func:`evaluate` checks a policy against a verified checkpoint: signature lines by
keys the policy does not list are ignored; a line by a listed witness key that does
not verify fails the note (``NoteError``); otherwise the :class:`PolicyVerdict` says
which witnesses cosigned, when, and, when the quorum is not met, which groups are short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from redlist.ledger.errors import NoteError, PolicyError, RedlistError
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import ALG_COSIGNATURE_V1, ALG_ED25519, VerifierKey
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.wording import N_, Words, worded, words

#: The predefined quorum name that asks for no cosignature at all.
NONE = "none"
#: Limits on a policy's size; tlog-policy asks implementations to take at least 32 each.
MAX_LOGS = 256
MAX_WITNESSES = 256
MAX_GROUPS = 256
#: The group name of a policy built from ``--witness`` keys (``of_witnesses``).
SIMPLE_GROUP = "min-witnesses"

_SEPARATOR = re.compile("[ \t]+")
_THRESHOLD = re.compile("[1-9][0-9]{0,3}")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class PolicyLog:
    """A ``log`` line: the log's verifier key and an optional URL."""

    key: VerifierKey
    url: str | None = None


@dataclass(frozen=True)
class PolicyWitness:
    """A ``witness`` line: the policy's name for it, its cosigning key, an optional URL."""

    name: str
    key: VerifierKey
    url: str | None = None


@dataclass(frozen=True)
class PolicyGroup:
    """A ``group`` line: met when at least ``threshold`` of ``members`` are met."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A witness policy: logs, witnesses, groups (in definition order) and the quorum.

    Construction checks every rule the parser checks (without line numbers), so a
    policy built in code is as valid as one read from a file, and
    ``parse_policy(policy.to_text()) == policy``.
    """

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str

    def __post_init__(self) -> None:
        builder = _Builder()
        for log in self.logs:
            builder.add_log(log)
        for witness in self.witnesses:
            builder.add_witness(witness)
        for group in self.groups:
            builder.add_group(group)
        builder.set_quorum(self.quorum)

    @classmethod
    def of_witnesses(cls, keys: Sequence[VerifierKey], minimum: int | None = None) -> Policy:
        """The short form ``--witness VKEY ... --min-witnesses K``: K of these keys
        (all of them when ``minimum`` is None) must have cosigned.

        Each witness is named by its key name, or ``name+keyhash`` when two keys share
        a name. No key means no cosignature is needed (``quorum none``).
        """
        if minimum is not None and (isinstance(minimum, bool) or not isinstance(minimum, int)):
            raise _refused(N_("the number of witnesses needed must be an integer"))
        if not keys:
            if minimum:
                raise _refused(
                    N_("{minimum} witnesses are needed but no witness key was given"),
                    minimum=minimum,
                )
            return cls((), (), (), NONE)
        names = [key.name for key in keys]
        witnesses = tuple(
            PolicyWitness(
                key.describe()
                if names.count(key.name) > 1 or key.name == SIMPLE_GROUP
                else key.name,
                key,
            )
            for key in keys
        )
        needed = len(keys) if minimum is None else minimum
        if not 1 <= needed <= len(keys):
            raise _refused(
                N_(
                    "{needed} witnesses needed out of {given} given: it must be between 1 and "
                    "{given}"
                ),
                needed=needed,
                given=len(keys),
            )
        members = tuple(witness.name for witness in witnesses)
        return cls((), witnesses, (PolicyGroup(SIMPLE_GROUP, needed, members),), SIMPLE_GROUP)

    def to_text(self) -> str:
        """The policy as a tlog-policy file (what ``parse_policy`` reads back equal)."""
        lines = [_join("log", log.key.encode(), log.url) for log in self.logs]
        lines += [
            _join("witness", witness.name, witness.key.encode(), witness.url)
            for witness in self.witnesses
        ]
        for group in self.groups:
            count = len(group.members)
            threshold = (
                "all" if group.threshold == count else "any" if group.threshold == 1 else None
            )
            lines.append(
                " ".join(["group", group.name, threshold or str(group.threshold), *group.members])
            )
        lines.append(f"quorum {self.quorum}")
        return "".join(line + "\n" for line in lines)

    def check_log(self, log_key: VerifierKey) -> None:
        """Refuse (``PolicyError``) a log the policy does not list; any log when none are."""
        if self.logs and all(log.key != log_key for log in self.logs):
            listed = ", ".join(log.key.describe() for log in self.logs)
            raise _refused(
                N_("the policy is for other logs ({listed}), not for log {log}"),
                listed=listed,
                log=log_key.describe(),
            )


@dataclass(frozen=True)
class Shortfall:
    """A witness or group of the quorum that is not met: how many of its members
    were met (``have``) against ``needed``, and which members were not (``missing``)."""

    name: str
    needed: int
    have: int
    missing: tuple[str, ...]

    def describe(self) -> str:
        if not self.missing or self.missing == (self.name,):
            return f"witness {excerpt(self.name)} did not cosign"
        if self.name == SIMPLE_GROUP:  # --witness ... --min-witnesses: no group was named
            return (
                f"{self.have} of the {self.needed} witnesses needed have cosigned"
                f" (missing: {', '.join(excerpt(name) for name in self.missing)})"
            )
        return (
            f"group {excerpt(self.name)} has {self.have} of the {self.needed} needed"
            f" (missing: {', '.join(excerpt(name) for name in self.missing)})"
        )


@dataclass(frozen=True)
class PolicyVerdict:
    """Whether a checkpoint meets a policy.

    ``cosigned`` maps each listed witness whose cosignature verified to its time (POSIX
    seconds), in the policy's order; ``short`` lists, when the quorum is not met, the
    quorum and each unmet group under it, outermost first.
    """

    met: bool
    cosigned: Mapping[str, int]
    short: tuple[Shortfall, ...]

    def describe(self) -> str:
        """One sentence: who cosigned and, if the quorum is not met, what is missing."""
        who = (
            "cosigned by " + ", ".join(excerpt(name) for name in self.cosigned)
            if self.cosigned
            else "cosigned by none of the policy's witnesses"
        )
        if self.met:
            return f"the checkpoint meets the witness policy: {who}"
        return f"the checkpoint does not meet the witness policy: {who}; " + "; ".join(
            shortfall.describe() for shortfall in self.short
        )


def parse_policy(data: bytes | str) -> Policy:
    """Read a tlog-policy file; ``PolicyError`` naming the line for any deviation (a
    UTF-8 byte order mark before the first line is not one)."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = raw.count(b"\n", 0, error.start) + 1
            raise _refused(
                N_("policy line {number}: not UTF-8 text"), line=bad, number=bad
            ) from None
    elif isinstance(data, str):
        text = data
    else:
        raise _refused(N_("a policy is read from bytes or text"))
    # Windows Notepad starts a UTF-8 file with a byte order mark: the same text.
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    builder = _Builder()
    for number, line in enumerate(lines, start=1):
        try:
            _parse_line(builder, line)
        except PolicyError as error:
            raise _refused(
                N_("policy line {number}: {error}"), line=number, number=number, error=_said(error)
            ) from None
    if builder.quorum is None:
        end = len(lines) + 1
        raise _refused(
            N_(
                "policy line {number}: the file ends without a quorum line (add 'quorum NAME', "
                "or 'quorum none' to need no cosignature)"
            ),
            line=end,
            number=end,
        )
    return Policy(
        tuple(builder.logs), tuple(builder.witnesses), tuple(builder.groups), builder.quorum
    )


def evaluate(policy: Policy, signed: SignedCheckpoint) -> PolicyVerdict:
    """Check ``signed``'s cosignatures against ``policy`` (see the module docstring).

    Raises ``NoteError`` when a listed witness's line does not verify, and
    ``PolicyError`` when the policy lists logs and this checkpoint's log is not one.
    """
    policy.check_log(signed.log_key)
    cosigned: dict[str, int] = {}
    for witness in policy.witnesses:
        if not any(line.is_by(witness.key) for line in signed.signatures):
            continue
        try:
            cosigned[witness.name] = verify_cosignature(signed, witness.key)
        except NoteError as error:
            raise NoteError(f"witness {excerpt(witness.name)}: {error}") from None
    groups = {group.name: group for group in policy.groups}
    met = _met(policy.quorum, groups, cosigned.keys())
    short: list[Shortfall] = []
    if not met:
        _shortfalls(policy.quorum, groups, cosigned.keys(), short)
    return PolicyVerdict(met, cosigned, tuple(short))


def _met(name: str, groups: Mapping[str, PolicyGroup], cosigned: Iterable[str]) -> bool:
    if name == NONE:
        return True
    group = groups.get(name)
    if group is None:
        return name in cosigned
    have = sum(_met(member, groups, cosigned) for member in group.members)
    return have >= group.threshold


def _shortfalls(
    name: str, groups: Mapping[str, PolicyGroup], cosigned: Iterable[str], out: list[Shortfall]
) -> None:
    group = groups.get(name)
    if group is None:
        out.append(Shortfall(name, 1, 0, (name,)))
        return
    missing = tuple(member for member in group.members if not _met(member, groups, cosigned))
    have = len(group.members) - len(missing)
    out.append(Shortfall(name, group.threshold, have, missing))
    for member in missing:
        if member in groups:
            _shortfalls(member, groups, cosigned, out)


def _join(*items: str | None) -> str:
    return " ".join(item for item in items if item is not None)


def _parse_line(builder: _Builder, line: str) -> None:
    control = _CONTROL.search(line)
    if control is not None:
        code = ord(control.group())
        if code == 0x0D:
            raise _refused(
                N_(
                    "control character {code}: only tabs are allowed (save the file with Unix "
                    "line endings)"
                ),
                code=f"{code:#04x}",
            )
        raise _refused(N_("control character {code}: only tabs are allowed"), code=f"{code:#04x}")
    stripped = line.strip(" \t")
    if not stripped or stripped.startswith("#"):
        return
    keyword, *items = _SEPARATOR.split(stripped)
    if keyword == "log":
        _arity(keyword, items, 1, 2, "log VKEY [URL]")
        builder.add_log(PolicyLog(_key(items[0]), _url(items, 1)))
    elif keyword == "witness":
        _arity(keyword, items, 2, 3, "witness NAME VKEY [URL]")
        builder.add_witness(PolicyWitness(items[0], _key(items[1]), _url(items, 2)))
    elif keyword == "group":
        _arity(keyword, items, 3, None, "group NAME all|any|K MEMBER...")
        name, threshold_text, *members = items
        builder.add_group(
            PolicyGroup(name, _threshold(threshold_text, len(members)), tuple(members))
        )
    elif keyword == "quorum":
        _arity(keyword, items, 1, 1, "quorum NAME")
        builder.set_quorum(items[0])
    else:
        raise _refused(
            N_(
                "unknown keyword {keyword!r}; a policy line is 'log', 'witness', 'group' or "
                "'quorum'"
            ),
            keyword=excerpt(keyword),
        )


def _arity(keyword: str, items: Sequence[str], least: int, most: int | None, form: str) -> None:
    if len(items) < least or (most is not None and len(items) > most):
        raise _refused(N_("a {keyword} line has the form '{form}'"), keyword=keyword, form=form)


def _key(text: str) -> VerifierKey:
    try:
        return VerifierKey.parse(text)
    except NoteError as error:
        raise _refused(N_("bad verifier key: {error}"), error=_said(error)) from None


def _url(items: Sequence[str], index: int) -> str | None:
    return items[index] if len(items) > index else None


def _threshold(text: str, members: int) -> int:
    if text == "all":
        return members
    if text == "any":
        return 1
    if not _THRESHOLD.fullmatch(text):
        raise _refused(
            N_(
                "the group threshold must be 'all', 'any' or a number from 1 to {members} "
                "written without leading zeros, found {found!r}"
            ),
            members=members,
            found=excerpt(text),
        )
    return int(text)


class _Builder:
    """Accumulates a policy, refusing each item that breaks a rule (``PolicyError``)."""

    def __init__(self) -> None:
        self.logs: list[PolicyLog] = []
        self.witnesses: list[PolicyWitness] = []
        self.groups: list[PolicyGroup] = []
        self.quorum: str | None = None
        self._names: set[str] = set()
        self._log_keys: set[bytes] = set()
        self._witness_keys: set[bytes] = set()

    def add_log(self, log: PolicyLog) -> None:
        if not isinstance(log, PolicyLog) or not isinstance(log.key, VerifierKey):
            raise _refused(N_("a policy's logs are PolicyLog values with a VerifierKey"))
        _check_url(log.url)
        if log.key.algorithm != ALG_ED25519:
            raise _refused(
                N_("log key {key} is not a log key (Ed25519, algorithm 0x01)"),
                key=log.key.describe(),
            )
        if log.key.public in self._log_keys:
            raise _refused(N_("log key {key} is listed twice"), key=log.key.describe())
        if len(self.logs) == MAX_LOGS:
            raise _refused(N_("a policy lists at most {most} logs"), most=MAX_LOGS)
        self._log_keys.add(log.key.public)
        self.logs.append(log)

    def add_witness(self, witness: PolicyWitness) -> None:
        if not isinstance(witness, PolicyWitness) or not isinstance(witness.key, VerifierKey):
            raise _refused(N_("a policy's witnesses are PolicyWitness values with a VerifierKey"))
        self._new_name(witness.name, _WITNESS)
        _check_url(witness.url)
        key = witness.key
        if key.algorithm != ALG_COSIGNATURE_V1:
            raise _refused(
                N_(
                    "witness {name}: key {key} is not a cosigning key (cosignature/v1, "
                    "algorithm 0x04)"
                ),
                name=excerpt(witness.name),
                key=key.describe(),
            )
        if key.public in self._witness_keys:
            raise _refused(
                N_("witness {name}: its public key is already listed for another witness"),
                name=excerpt(witness.name),
            )
        if len(self.witnesses) == MAX_WITNESSES:
            raise _refused(N_("a policy lists at most {most} witnesses"), most=MAX_WITNESSES)
        self._witness_keys.add(key.public)
        self._names.add(witness.name)
        self.witnesses.append(witness)

    def add_group(self, group: PolicyGroup) -> None:
        if not isinstance(group, PolicyGroup) or not isinstance(group.members, tuple):
            raise _refused(N_("a policy's groups are PolicyGroup values with a tuple of members"))
        self._new_name(group.name, _GROUP)
        name = excerpt(group.name)
        if not group.members:
            raise _refused(N_("group {name} has no members"), name=name)
        seen: set[str] = set()
        for member in group.members:
            if not isinstance(member, str):
                raise _refused(N_("group {name}: members are names"), name=name)
            if member == NONE:
                raise _refused(N_("group {name}: 'none' cannot be a member"), name=name)
            if member not in self._names:
                raise _refused(
                    N_(
                        "group {name}: {member!r} is not a witness or group defined on an "
                        "earlier line"
                    ),
                    name=name,
                    member=excerpt(member),
                )
            if member in seen:
                raise _refused(
                    N_("group {name}: member {member!r} is listed twice"),
                    name=name,
                    member=excerpt(member),
                )
            seen.add(member)
        threshold = group.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise _refused(N_("group {name}: the threshold must be an integer"), name=name)
        if not 1 <= threshold <= len(group.members):
            raise _refused(
                N_(
                    "group {name}: threshold {threshold} is out of range; it must be between "
                    "1 and its {members} members"
                ),
                name=name,
                threshold=threshold,
                members=len(group.members),
            )
        if len(self.groups) == MAX_GROUPS:
            raise _refused(N_("a policy has at most {most} groups"), most=MAX_GROUPS)
        self._names.add(group.name)
        self.groups.append(group)

    def set_quorum(self, name: str) -> None:
        if self.quorum is not None:
            raise _refused(N_("a policy has exactly one quorum line; this is a second"))
        if not isinstance(name, str):
            raise _refused(N_("the quorum is a name"))
        if name != NONE and name not in self._names:
            raise _refused(
                N_(
                    "the quorum {name!r} is not a witness or group defined on an earlier line "
                    "(or 'none')"
                ),
                name=excerpt(name),
            )
        self.quorum = name

    def _new_name(self, name: str, what: Words) -> None:
        if (
            not isinstance(name, str)
            or not name
            or _SEPARATOR.search(name)
            or _CONTROL.search(name)
        ):
            raise _refused(
                N_("a {what} name is one word without spaces or control characters"), what=what
            )
        if name == NONE:
            raise _refused(N_("'none' is reserved and cannot name a {what}"), what=what)
        if name in self._names:
            raise _refused(N_("the name {name!r} is already defined"), name=excerpt(name))


def _check_url(url: str | None) -> None:
    if url is not None and (
        not isinstance(url, str) or not url or _SEPARATOR.search(url) or _CONTROL.search(url)
    ):
        raise _refused(N_("a URL is one word without spaces or control characters"))


#: What a name names, in a refusal.
_WITNESS, _GROUP = words(N_("witness")), words(N_("group"))


def _refused(template: str, /, *, line: int | None = None, **values: object) -> PolicyError:
    """A ``PolicyError`` worded for translation (``wording``)."""
    said = words(template, **values)
    return worded(PolicyError(str(said), line=line), said)


def _said(error: RedlistError) -> Words | str:
    """What ``error`` said, as words where it has them."""
    return str(error) if error.words is None else error.words


__all__ = [
    "NONE",
    "SIMPLE_GROUP",
    "Policy",
    "PolicyGroup",
    "PolicyLog",
    "PolicyVerdict",
    "PolicyWitness",
    "Shortfall",
    "evaluate",
    "parse_policy",
]
