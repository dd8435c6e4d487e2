"""Attestations (DESIGN 8.6): signed after a full audit, and checked one file at a time.

``redlist-verify bundle|node ... --attest-key FILE --attest-out DIR`` signs, once the
whole audit has passed, one attestation per account with the auditor's key (a key
from ``redlist keygen``; its name, from ``FILE.pub`` or ``--attest-name``, names the
auditor) and writes each to ``DIR/<account>.attestation.json``. An unusable key, name
or directory stops the run before the audit starts (exit 2); a failed audit writes
nothing. Each file is written to a temporary name, flushed to disk and renamed, so a
file is either whole or absent.

``redlist-verify attestation FILE --auditor-key VKEY`` checks one file offline
(:func:`redlist.ledger.attestation.verify_attestation`): exit 0 valid, 1 invalid
(altered, expired, by an auditor not trusted, a checkpoint that does not match or is
not signed by the log; the output says which), 2 could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from redlist.ledger import logkeyfile
from redlist.ledger.attestation import (
    CHECKS,
    MAX_FILE_SIZE,
    Attestation,
    AttestationFile,
    VerifiedAttestation,
    sign_attestation,
    verify_attestation,
)
from redlist.ledger.entry import is_valid_account
from redlist.ledger.errors import AttestationError, RedlistError, SourceError
from redlist.ledger.i18n import N_, _, ngettext
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.syncdir import sync_directory
from redlist.verifier.files import SMALL_LIMIT, read_limited
from redlist.verifier.results import AuditResult
from redlist.verifier.witnesses import load_policy

#: How long an attestation is valid by default: a quarter, three monthly publicities.
DEFAULT_DAYS = 90
MAX_DAYS = 3660
SUFFIX = ".attestation.json"
EXIT_VALID = 0
EXIT_INVALID = 1
DAY_S = 86_400

HELP = N_(
    "Check an auditor's attestation file (written by 'redlist-verify bundle|node "
    "--attest-out') offline: the auditor's signature by a trusted key, the expiry, and "
    "that the checkpoint beside it is the log state attested (with --log-key: signed by "
    "the log). Exit 0 valid, 1 invalid (the output says why), 2 could not start."
)


class AttestArgumentError(RedlistError):
    """Attestation options the run cannot start with (exit 2)."""


def add_signing_arguments(parser: argparse.ArgumentParser) -> None:
    """``--attest-key``, ``--attest-name``, ``--attest-out``, ``--attest-days`` of bundle/node."""
    group = parser.add_argument_group(
        _("attestations (after a full audit, one signed file per account for other towns)")
    )
    group.add_argument(
        "--attest-key", type=Path, metavar="FILE", help=_("the auditor's key (from redlist keygen)")
    )
    group.add_argument(
        "--attest-name",
        metavar="NAME",
        help=_("the auditor's name in the signatures (default: the name in FILE.pub); no spaces"),
    )
    group.add_argument(
        "--attest-out", type=Path, metavar="DIR", help=_("write the attestations into DIR")
    )
    group.add_argument(
        "--attest-days",
        type=int,
        metavar="N",
        help=_("days the attestations stay valid (default {DEFAULT_DAYS})").format(
            DEFAULT_DAYS=DEFAULT_DAYS
        ),
    )


@dataclass(frozen=True)
class AttestPlan:
    """What to sign after the audit: the auditor's key, where, for how long."""

    signer: NoteSigner
    directory: Path
    days: int


@dataclass(frozen=True)
class Written:
    """The attestations written: how many, where, by which key, until when."""

    count: int
    directory: Path
    auditor_key: str
    expires: int

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "count": self.count,
            "auditor_key": self.auditor_key,
            "expires": self.expires,
        }

    def summary(self) -> str:
        return (
            "\n"
            + ngettext(
                "Wrote {count} attestation, one per account, to {directory}, valid until "
                "{when}.\nIt is signed by auditor key {key}\n(the towns that rely on it list "
                "this key as a trusted auditor).",
                "Wrote {count} attestations, one per account, to {directory}, valid until "
                "{when}.\nThey are signed by auditor key {key}\n(the towns that rely on them "
                "list this key as a trusted auditor).",
                self.count,
            ).format(
                count=f"{self.count:,}",
                directory=self.directory,
                when=_when(self.expires),
                key=self.auditor_key,
            )
            + "\n"
        )


def plan(args: argparse.Namespace) -> AttestPlan | None:
    """The attestations the arguments ask for, checked before the audit; None for none."""
    given = (args.attest_key, args.attest_out, args.attest_name, args.attest_days)
    if all(item is None for item in given):
        return None
    if args.attest_key is None or args.attest_out is None:
        raise AttestArgumentError(
            _("attestations need both --attest-key FILE and --attest-out DIR")
        )
    if getattr(args, "structure_only", False):
        raise AttestArgumentError(
            _("--attest-out needs every balance recomputed, which --structure-only does not do")
        )
    days = DEFAULT_DAYS if args.attest_days is None else args.attest_days
    if not 1 <= days <= MAX_DAYS:
        raise AttestArgumentError(
            _("--attest-days must be from 1 to {MAX_DAYS}, not {days}").format(
                MAX_DAYS=MAX_DAYS, days=days
            )
        )
    # Staff key files need ``cryptography``: loaded on use, not by every audit (ADR 0041).
    from redlist.ledger import keyfile

    signer = keyfile.read_note_signer(args.attest_key, args.attest_name, "--attest-key")
    directory: Path = args.attest_out
    if directory.exists() and not directory.is_dir():
        raise AttestArgumentError(
            _("--attest-out {directory} exists and is not a directory").format(directory=directory)
        )
    if not directory.exists() and not directory.parent.is_dir():
        raise AttestArgumentError(
            _("--attest-out {directory}: the directory {parent} does not exist").format(
                directory=directory, parent=directory.parent
            )
        )
    return AttestPlan(signer, directory, days)


def write_attestations(
    attest: AttestPlan,
    result: AuditResult,
    *,
    now: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Written:
    """Sign and write one attestation per account of a passed full audit."""
    if not result.balances_recomputed:
        raise SourceError(
            _(
                "no attestation was written: the audit did not recompute every "
                "balance (a bundle that starts after entry 0 needs --state from "
                "the audit of the months before)"
            )
        )
    moment = int(time.time()) if now is None else now
    expires = moment + attest.days * DAY_S
    try:
        attest.directory.mkdir(exist_ok=True)
    except OSError as error:
        raise SourceError(
            _("cannot create {directory}: {strerror}").format(
                directory=attest.directory, strerror=error.strerror
            )
        ) from None
    total = len(result.accounts)
    for number, (account, summary) in enumerate(sorted(result.accounts.items()), start=1):
        if not is_valid_account(account):  # the audit refuses such ids; a file name needs it
            raise SourceError(
                _("account id {account!r} cannot name a file").format(account=account)
            )
        attestation = Attestation(
            origin=result.origin,
            account=account,
            score=summary.score,
            grade=summary.grade,
            size=result.tree_size,
            root=result.root,
            expires=expires,
        )
        file = sign_attestation(attestation, result.checkpoint, attest.signer)
        _write_atomically(attest.directory / f"{account}{SUFFIX}", file.to_bytes())
        if progress is not None:
            progress(number, total)
    sync_directory(attest.directory, required=False)
    return Written(total, attest.directory, attest.signer.verifier().encode(), expires)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise SourceError(
            _("cannot write {path}: {value}").format(path=path, value=error.strerror or error)
        ) from None


# -- redlist-verify attestation ---------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "attestation", help=_("check an auditor's attestation file"), description=_(HELP)
    )
    parser.add_argument("file", metavar="FILE", type=Path, help=_("the attestation file"))
    parser.add_argument(
        "--auditor-key",
        metavar="VKEY",
        action="append",
        required=True,
        help=_(
            "a trusted auditor's verifier key string, or a file holding it (or the "
            "auditor's .pub from redlist keygen); repeat for each trusted auditor"
        ),
    )
    parser.add_argument(
        "--log-key",
        metavar="VKEY",
        help=_(
            "the log's verifier key string or key file: also check that the checkpoint "
            "is signed by the log"
        ),
    )
    parser.add_argument("--json", action="store_true", help=_("print one JSON object"))
    policy = parser.add_argument_group(_("witness policy (needs --log-key)"))
    policy.add_argument("--policy", metavar="FILE", type=Path, help=_("a C2SP tlog-policy file"))
    policy.add_argument(
        "--witness", metavar="VKEY", action="append", default=[], help=_("a witness's key")
    )
    policy.add_argument("--min-witnesses", metavar="K", type=int, help=_("how many must cosign"))
    parser.set_defaults(run_command=run)


def run(args: argparse.Namespace, stdout: TextIO, now: int | None = None) -> int:
    """Check ``args.file``; returns the exit status (errors that stop it are raised)."""
    from redlist.ledger import keyfile  # loaded on use (ADR 0041)

    auditors = [
        keyfile.read_note_key(text, "--auditor-key", _read_key) for text in args.auditor_key
    ]
    log_key = None
    if args.log_key is not None:
        log_key = logkeyfile.read_log_key(args.log_key, _read_key)
    policy = load_policy(args.policy, args.witness, args.min_witnesses)
    if policy is not None:
        if log_key is None:
            raise AttestArgumentError(_("a witness policy needs --log-key"))
        policy.check_log(log_key)
    data = _read(args.file)
    moment = int(time.time()) if now is None else now
    try:
        file = AttestationFile.from_bytes(data)
        verified = verify_attestation(file, auditors, now=moment, log_key=log_key, policy=policy)
    except AttestationError as error:
        if args.json:
            detail = {"check": error.check, "message": error.message}
            stdout.write(_dumps({"ok": False, "file": str(args.file), "error": detail}))
        else:
            stdout.write(
                _(
                    "INVALID attestation {file}\n  check: {check} ({get})\n  what:  {message}"
                ).format(
                    file=args.file,
                    check=error.check,
                    get=CHECKS.get(error.check, _("see the message")),
                    message=error.message,
                )
                + "\n"
            )
        return EXIT_INVALID
    if args.json:
        stdout.write(_dumps(_valid_json(args.file, verified)))
    else:
        stdout.write(_valid_text(args.file, verified, moment))
    return EXIT_VALID


def _read_key(path: Path) -> bytes:
    return read_limited(path, SMALL_LIMIT, _("the key file"))


def _read(path: Path) -> bytes:
    try:
        return read_limited(path, MAX_FILE_SIZE, _("the attestation file"))
    except FileNotFoundError:
        raise SourceError(
            _("the attestation file {path} does not exist").format(path=path)
        ) from None


def _valid_json(path: Path, verified: VerifiedAttestation) -> dict[str, Any]:
    attestation = verified.attestation
    value: dict[str, Any] = {
        "ok": True,
        "file": str(path),
        "origin": attestation.origin,
        "account": attestation.account,
        "score": attestation.score,
        "grade": attestation.grade,
        "tree_size": attestation.size,
        "root": attestation.root.hex(),
        "expires": attestation.expires,
        "auditor": verified.auditor.encode(),
        "log_signature_checked": verified.signed_checkpoint is not None,
    }
    if verified.witnesses is not None:
        value["witnesses"] = dict(verified.witnesses.cosigned)
    return value


def _valid_text(path: Path, verified: VerifiedAttestation, now: int) -> str:
    attestation = verified.attestation
    days = round((attestation.expires - now) / DAY_S)
    left = (
        ngettext("{days} more day", "{days} more days", days).format(days=days)
        if days >= 1
        else _("less than a day")
    )
    log = (
        _("the checkpoint is signed by the log's key")
        if verified.signed_checkpoint is not None
        else _("the log's signature on the checkpoint was not checked (give --log-key)")
    )
    lines = [
        _("VALID attestation {path}").format(path=path),
        "  "
        + _("resident:  account {account} of log {origin}").format(
            account=attestation.account, origin=excerpt(attestation.origin)
        ),
        "  "
        + _("grade:     {grade} (score {score})").format(
            grade=attestation.grade, score=attestation.score
        ),
        "  "
        + _(
            "auditor:   {auditor} (key {key}) recomputed it from the log's first {size} entries"
        ).format(
            auditor=excerpt(verified.auditor.name),
            key=verified.auditor.describe(),
            size=f"{attestation.size:,}",
        ),
        "  " + _("log:       {log}").format(log=log),
    ]
    if verified.witnesses is not None:
        lines.append(
            "  " + _("witnesses: {witnesses}").format(witnesses=verified.witnesses.describe())
        )
    lines.append(
        "  "
        + _("valid:     until {when} ({left})").format(when=_when(attestation.expires), left=left)
    )
    return "\n".join(lines) + "\n"


def _when(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return _("{seconds} (POSIX seconds)").format(seconds=seconds)


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"
