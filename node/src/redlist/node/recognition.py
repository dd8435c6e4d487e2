"""Recognising other towns' grades (DESIGN 8.6): the configuration, and the decision.

The town's settings file (``--config``, the same TOML file ``serve`` reads) holds a
``[recognition]`` table: the auditors whose attestations the town trusts, and, per
other town's log, how that town's grades map onto ours::

    [recognition]
    auditors = ["keys/county-audit.pem.pub", "city-audit+1a2b3c4d+AQ..."]

    [recognition.towns."rushan.example/log"]
    log_key = "keys/rushan.pub"       # optional: the checkpoint must be signed by it
    grades = { AAA = "AAA", AA = "AA", A = "A", B = "B", C = "C", D = "D" }

An auditor is a verifier key string, a file holding one, or the auditor's ``.pub``
from ``redlist keygen``; relative paths are relative to the config file. A town not
listed under ``towns`` is not recognised at all, and neither is a grade its table
does not list: a clerk sees the refusal, not a guess. Every equivalent must be a
grade of our own scale (checked against the log's genesis when recognising).

:func:`recognise` decides one attestation file: it must verify
(:func:`redlist.ledger.attestation.verify_attestation`: a trusted auditor, not expired,
the checkpoint it refers to, signed by the log when ``log_key`` is set) and come from
a listed town whose table maps its grade. Errors are ``AttestationError`` (the file)
or ``RecognitionError`` (this town's rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redlist.ledger import keyfile, logkeyfile
from redlist.ledger.attestation import AttestationFile, verify_attestation
from redlist.ledger.entry import is_valid_account
from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.i18n import _
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.recognitionstore import Recognition

_TABLE_KEYS = frozenset({"auditors", "towns"})
_TOWN_KEYS = frozenset({"log_key", "grades"})


class RecognitionError(RedlistError):
    """An attestation that is valid but that this town's rules do not recognise: a town
    not listed, a grade without an equivalent, an account id that cannot be ours."""


@dataclass(frozen=True)
class TownRecognition:
    """How one other town's grades count here; ``log_key`` None: its signature unchecked."""

    log_key: VerifierKey | None
    grades: Mapping[str, str]


@dataclass(frozen=True)
class RecognitionConfig:
    """The trusted auditors and, by origin, the towns whose grades count here."""

    auditors: tuple[VerifierKey, ...]
    towns: Mapping[str, TownRecognition]

    def check_grades(self, ours: Sequence[str]) -> None:
        """Refuse a table whose equivalents are not all grades of our scale ``ours``."""
        for origin, town in self.towns.items():
            for theirs, equivalent in town.grades.items():
                if equivalent not in ours:
                    raise FormatError(
                        _(
                            "[recognition.towns.{origin!r}]: grade {theirs!r} maps to "
                            "{equivalent!r}, which "
                            "is not a grade of this town ({join})"
                        ).format(
                            origin=origin,
                            theirs=theirs,
                            equivalent=equivalent,
                            join=", ".join(ours),
                        )
                    )


def parse_recognition(value: Any, config_file: Path) -> RecognitionConfig:
    """The ``[recognition]`` table of ``config_file``, checked; key files are read here."""
    where = _("config file {config_file}: [recognition]").format(config_file=config_file)
    if not isinstance(value, dict):
        raise FormatError(_("{where} must be a table").format(where=where))
    unknown = sorted(set(value) - _TABLE_KEYS)
    if unknown:
        raise FormatError(
            _("{where}: unknown key(s) {join}").format(
                where=where, join=", ".join(map(repr, unknown))
            )
        )
    given = value.get("auditors")
    if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
        raise FormatError(
            _("{where} needs 'auditors', a non-empty list of keys or key files").format(where=where)
        )
    auditors = tuple(
        keyfile.read_note_key(_relative(item, config_file), _("auditor key")) for item in given
    )
    towns_value = value.get("towns", {})
    if not isinstance(towns_value, dict):
        raise FormatError(
            _("{where}: 'towns' must be tables, one per log origin").format(where=where)
        )
    towns = {
        origin: _town(origin, table, config_file, where) for origin, table in towns_value.items()
    }
    return RecognitionConfig(auditors, towns)


def _town(origin: str, table: Any, config_file: Path, where: str) -> TownRecognition:
    place = f"{where}.towns.{origin!r}"
    if not isinstance(table, dict):
        raise FormatError(
            _("{place} must be a table with 'grades' (and 'log_key')").format(place=place)
        )
    unknown = sorted(set(table) - _TOWN_KEYS)
    if unknown:
        raise FormatError(
            _("{place}: unknown key(s) {join}").format(
                place=place, join=", ".join(map(repr, unknown))
            )
        )
    grades = table.get("grades")
    if (
        not isinstance(grades, dict)
        or not grades
        or not all(isinstance(item, str) for item in grades.values())
    ):
        raise FormatError(
            _("{place} needs 'grades', a table of their grade = our grade").format(place=place)
        )
    log_key = None
    if "log_key" in table:
        if not isinstance(table["log_key"], str):
            raise FormatError(
                _("{place}: 'log_key' must be a key string or key file").format(place=place)
            )
        log_key = logkeyfile.read_log_key(_relative(table["log_key"], config_file))
        if log_key.name != origin:
            raise FormatError(
                _("{place}: 'log_key' is the key of log {name!r}, not of {origin!r}").format(
                    place=place, name=log_key.name, origin=origin
                )
            )
    return TownRecognition(log_key, dict(grades))


def _relative(item: str, config_file: Path) -> str:
    # A key string always has two '+'; anything else names a file.
    if "+" in item or Path(item).is_absolute():
        return item
    return str(config_file.parent / item)


def recognise(
    data: bytes,
    config: RecognitionConfig,
    *,
    local_account: str | None,
    now: int,
) -> Recognition:
    """The recognition of one attestation file's bytes, or the reason it is refused.

    ``local_account`` is the resident's account here (``--as``); None means the same
    id as in the other town.
    """
    file = AttestationFile.from_bytes(data)
    # Which town is decided by the verified text only, so verify with every key first.
    verified = verify_attestation(file, config.auditors, now=now)
    attestation = verified.attestation
    town = config.towns.get(attestation.origin)
    if town is None:
        listed = ", ".join(config.towns) or "none"
        raise RecognitionError(
            _(
                "grades of log {excerpt} are not recognised here (towns listed in "
                "[recognition.towns]: {listed})"
            ).format(excerpt=excerpt(attestation.origin), listed=listed)
        )
    if town.log_key is not None:
        verify_attestation(file, config.auditors, now=now, log_key=town.log_key)
    equivalent = town.grades.get(attestation.grade)
    if equivalent is None:
        raise RecognitionError(
            _(
                "grade {grade!r} of log {excerpt} has no equivalent here (its table maps {join})"
            ).format(
                grade=attestation.grade,
                excerpt=excerpt(attestation.origin),
                join=", ".join(town.grades),
            )
        )
    account = attestation.account if local_account is None else local_account
    if not is_valid_account(account):
        raise RecognitionError(
            _("{account!r} is not an account id of this town").format(account=account)
        )
    return Recognition(
        account=account,
        origin=attestation.origin,
        foreign_account=attestation.account,
        grade=attestation.grade,
        equivalent=equivalent,
        score=attestation.score,
        auditor=verified.auditor.encode(),
        tree_size=attestation.size,
        expires=attestation.expires,
        recognised_at=now,
        attestation=data.decode("utf-8"),
    )
