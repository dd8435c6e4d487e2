"""Filling in a failure's facts from the data beside the audit (``failure`` says what they mean).

A failure found by a check after the audit itself (``--texts``, ``--publicity``, the
witness policy) names an entry the audit already accepted: ``explain_after`` reads that
entry back from the source and describes it with the audit's final points state. A
bundle's publicity.csv, when it has one and it can be read, gives the masked name of
the resident a failure is about (``with_masked_names``); the verifier has no register.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from redlist.ledger import bundle
from redlist.ledger.errors import RedlistError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.publicity import NAME, decode_csv
from redlist.ledger.validator import read_leaf
from redlist.verifier.failure import AuditFailed, Failure, checked_after, describe_entry
from redlist.verifier.files import read_limited
from redlist.verifier.publicitycheck import CSV_LIMIT
from redlist.verifier.source import Audited, Source

#: publicity.csv's column of account ids.
ACCOUNT = "账户"


def explain_after(
    error: VerificationError, source: Source, audited: Audited, *passed: str
) -> AuditFailed:
    """``error``, found after ``audited`` held (and the checks ``passed`` since), with
    the facts of the entry it names read back from ``source``."""
    result = audited.result
    entry = None
    if error.seq is not None and error.seq >= result.start:
        state = audited.resume_point.state if audited.resume_point is not None else None
        reading = None
        try:
            for offset, raw in enumerate(source.leaves()):
                if result.start + offset == error.seq:
                    reading = read_leaf(raw)
                    break
        except RedlistError:  # the audit read these bytes; a second reading is a bonus
            reading = None
        finally:
            source.close()
        entry = describe_entry(error.seq, reading, state)
    return AuditFailed(Failure(error, checked_after(result, *passed), entry))


def masked_names(directory: Path) -> Mapping[str, str]:
    """Account → masked name, from the bundle's publicity.csv; empty when it has none
    or it cannot be read (the failure is reported all the same)."""
    try:
        data = read_limited(directory / bundle.PUBLICITY_CSV_FILE, CSV_LIMIT, _("publicity.csv"))
        rows = decode_csv(data)
    except (OSError, RedlistError):
        return {}
    names: dict[str, str] = {}
    for row in rows:
        names.setdefault(row.cells[ACCOUNT], row.cells[NAME])
    return names


def with_masked_names(failure: Failure, directory: Path) -> Failure:
    """``failure`` with its resident's masked name from the bundle in ``directory``."""
    entry = failure.entry
    if entry is None or entry.account is None or entry.masked_name is not None:
        return failure
    name = masked_names(directory).get(entry.account)
    if not name:
        return failure
    return dataclasses.replace(failure, entry=dataclasses.replace(entry, masked_name=name))


__all__ = ["explain_after", "masked_names", "with_masked_names"]
