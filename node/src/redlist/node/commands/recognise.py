"""``redlist-node recognise``: record other towns' grades from auditors' attestations."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from redlist.ledger.entry import Envelope, Genesis, Leaf, decode_body
from redlist.ledger.errors import AttestationError, FormatError, RedlistError
from redlist.ledger.i18n import N_, _
from redlist.ledger.log import Log
from redlist.ledger.recognitionstore import (
    RECOGNITION_ENV_NAME,
    Recognition,
    RecognitionStore,
    StaleRecognitionError,
)
from redlist.node.configfile import load_config_file
from redlist.node.recognition import RecognitionConfig, RecognitionError, recognise

#: An attestation file is a few kilobytes; anything larger is refused unread.
MAX_FILE_BYTES = 4 << 20

DESCRIPTION = N_("""\
Recognise residents' grades from other towns. Each FILE is an attestation an
independent auditor signed after verifying that town's whole log
('redlist-verify ... --attest-out'). It is accepted when it verifies (signed by an
auditor listed in [recognition] of --config, not expired, its checkpoint the
attested one, signed by the town's log key when the config gives it) and that
town's grade has an equivalent in the config's table. Accepted ones are kept in
DIR/{RECOGNITION_ENV_NAME} (not in the log) and shown by 'redlist account'; each
refused file is named with the reason, and nothing is recorded for it.

The attestation names the resident's account in the other town. --as ACCOUNT
records the grades under that account of this town (all FILEs are then the same
resident's); without it the account ids are the same in both towns.

  redlist-node recognise --data town --config town.toml --as wdg-0042 rs-0042.attestation.json

Safe while the node is serving. Exit status: 0 every file recognised, 1 at least
one refused (the others are recorded), 2 could not start.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "recognise",
        help=_("recognise other towns' grades from auditors' attestations"),
        description=_(DESCRIPTION).format(RECOGNITION_ENV_NAME=RECOGNITION_ENV_NAME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        metavar="FILE",
        help=_("the node's TOML settings, with the [recognition] table"),
    )
    parser.add_argument(
        "--as",
        dest="local_account",
        metavar="ACCOUNT",
        help=_("the resident's account in this town (default: the attested account id)"),
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help=_("attestation files"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = _config(args.config)
    with Log.open(args.data, readonly=True) as log:
        ours = _our_grades(log)
    config.check_grades(ours)
    now = int(time.time())
    accepted: list[tuple[Path, Recognition]] = []
    refused = 0
    for path in args.files:
        try:
            recognition = recognise(_read(path), config, local_account=args.local_account, now=now)
        except AttestationError as error:
            _refuse(path, f"{error.message} [{error.check}]")
            refused += 1
            continue
        except RecognitionError as error:
            _refuse(path, str(error))
            refused += 1
            continue
        accepted.append((path, recognition))
    if accepted:
        store = RecognitionStore.open(args.data)
        try:
            for path, recognition in accepted:
                try:  # one transaction per file: a refused file leaves the others recorded
                    store.record([recognition])
                except StaleRecognitionError as error:
                    _refuse(path, str(error))
                    refused += 1
                    continue
                print(
                    _(
                        "recognised {path}: account {account} holds grade {equivalent} here (grade "
                        "{grade} in {origin} as {foreign_account}, score {score}), until {date}"
                    ).format(
                        path=path,
                        account=recognition.account,
                        equivalent=recognition.equivalent,
                        grade=recognition.grade,
                        origin=recognition.origin,
                        foreign_account=recognition.foreign_account,
                        score=recognition.score,
                        date=_date(recognition.expires),
                    )
                )
        finally:
            store.close()
    if refused:
        print(
            _("{refused} of {files_count} file(s) refused; nothing recorded for them.").format(
                refused=refused, files_count=len(args.files)
            ),
            file=sys.stderr,
        )
        return 1
    return 0


def _refuse(path: Path, reason: str) -> None:
    print(_("refused {path}: {reason}").format(path=path, reason=reason), file=sys.stderr)


def _config(path: Path) -> RecognitionConfig:
    recognition = load_config_file(path).get("recognition")
    if recognition is None:
        raise FormatError(
            _(
                "config file {path} has no [recognition] table: list the trusted auditors and "
                "the towns whose grades count here (see docs/operations.md)"
            ).format(path=path)
        )
    if not isinstance(recognition, RecognitionConfig):  # load_config_file parses it
        raise FormatError(
            _("config file {path}: [recognition] could not be read").format(path=path)
        )
    return recognition


def _our_grades(log: Log) -> list[str]:
    for _seq, data in log.leaves(0, 1):
        genesis = decode_body(Envelope.from_bytes(Leaf.from_bytes(data).envelope).body)
        if isinstance(genesis, Genesis):
            return [grade.name for grade in genesis.config.grades]
    raise RedlistError(
        _("the log in {data_dir} has no genesis to read its grades from").format(
            data_dir=log.data_dir
        )
    )


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise AttestationError("format", _("the file does not exist")) from None
    except OSError as error:
        raise AttestationError(
            "format", _("cannot read it: {strerror}").format(strerror=error.strerror)
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise AttestationError("format", _("it is larger than an attestation file can be"))
    return data


def _date(seconds: int) -> str:
    try:
        return time.strftime("%Y-%m-%d", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):  # a date past what the clock can show
        return _("{seconds} (POSIX seconds)").format(seconds=seconds)
