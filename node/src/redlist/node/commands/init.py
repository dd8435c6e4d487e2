"""``redlist-node init``: create a town's log, its log key and its genesis entry."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from redlist.ledger import crypto
from redlist.ledger.entry import (
    ID_SIZE,
    MAX_FUTURE_MS,
    EntrySignature,
    Envelope,
    Genesis,
    TownConfig,
)
from redlist.ledger.errors import NoteError, StoreError
from redlist.ledger.i18n import N_, _
from redlist.ledger.keyfile import read_signing_key
from redlist.ledger.log import Log
from redlist.ledger.logdir import LOG_PUB_NAME
from redlist.ledger.note.keys import NoteSigner
from redlist.node.towncfg import DEFAULT_TOWN_CONFIG, load_town_config

DESCRIPTION = N_("""\
Create a new log for a town in an empty data directory.

A new log key is made (saved in DIR/log.key, keep it secret; its public
verifier key is saved in DIR/log.pub and printed: hand it to auditors).
Entry 0, the genesis, records the town's scoring rules and the admin's public
key, and is signed with the admin's private key (--admin-key, a file made by
'redlist keygen'). The admin then registers the other staff keys.

Without --config the town uses Wendeng's published scale: base score 1000;
grades AAA from 1050, AA from 1030, A from 960, B from 850, C from 600, D below;
council quorum 2; objection window 7 days; days and months in Asia/Shanghai;
deeds dated up to 92 days back. A TOML file may override any of base, quorum,
publicity_days, tz, backdate_days and grades
(as [[grades]] tables with name and min; the last grade has no min).
The configuration can never be changed after the genesis.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "init",
        help=_("create a new log (log key and genesis entry)"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="DIR",
        help=_("the new data directory (must not exist or be empty)"),
    )
    parser.add_argument(
        "--origin",
        required=True,
        help=_(
            "the log's name, unique among towns, no spaces or '+', e.g. wendeng.example/redlist"
        ),
    )
    parser.add_argument(
        "--admin-key",
        required=True,
        type=Path,
        metavar="FILE",
        help=_("the admin's private key file (from 'redlist keygen')"),
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="TOML",
        help=_("town configuration overriding the default scale"),
    )
    parser.add_argument(
        "--genesis-at",
        type=_milliseconds,
        metavar="MS",
        help=_(
            "the time of the genesis in ms since 1970 UTC, recorded as both the admin's "
            "and the node's time (default: now); for reproducible logs, never in the future"
        ),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Everything is checked before the data directory is touched.
    log_signer = _log_signer(args.origin)
    admin = read_signing_key(args.admin_key)
    config = load_town_config(args.config) if args.config else DEFAULT_TOWN_CONFIG
    # --genesis-at stands for the node's clock too, so a log can start in the past
    # (later entries' node times then follow from there, never going back).
    now_ms = time.time_ns() // 1_000_000 if args.genesis_at is None else args.genesis_at
    genesis = Genesis(
        log=args.origin,
        id=os.urandom(ID_SIZE),
        at=now_ms,
        admin=admin.public,
        config=config,
    ).to_bytes()
    envelope = Envelope(genesis, (EntrySignature(admin.key_id, crypto.sign_entry(admin, genesis)),))
    try:
        with Log.create(
            args.data,
            origin=args.origin,
            log_signer=log_signer,
            genesis=envelope.to_bytes(),
            now_ms=now_ms,
        ) as log:
            verifier_key = log.verifier_key.encode()
    except OSError as error:  # e.g. a folder the admin may not write to
        raise StoreError(
            _("cannot create the data directory {data}: {value}").format(
                data=args.data, value=error.strerror or error
            )
        ) from None
    print(_("created log {origin} in {data}").format(origin=args.origin, data=args.data))
    print(_("entry 0 (genesis) signed by the admin key {hex}").format(hex=admin.key_id.hex()))
    print(
        _("town configuration: {describe_config}").format(describe_config=describe_config(config))
    )
    print(
        _("log verifier key (give it to auditors; saved in {value}):").format(
            value=args.data / LOG_PUB_NAME
        )
    )
    print(verifier_key)
    return 0


def describe_config(config: TownConfig) -> str:
    """The configuration in one line a town official can check."""
    grades = _(", ").join(
        _("{name} from {min}").format(name=grade.name, min=grade.min)
        if grade.min is not None
        else _("{name} below").format(name=grade.name)
        for grade in config.grades
    )
    return _(
        "base score {base}; grades {grades}; council quorum {quorum}; objection window "
        "{publicity_days} days; time zone {tz}; deeds dated up to {deed_window_days} "
        "days back"
    ).format(
        base=config.base,
        grades=grades,
        quorum=config.quorum,
        publicity_days=config.publicity_days,
        tz=config.tz,
        deed_window_days=config.deed_window_days,
    )


def _log_signer(origin: str) -> NoteSigner:
    try:
        return NoteSigner.generate(origin)
    except NoteError as error:
        raise NoteError(
            _(
                "--origin {origin!r} cannot name a log ({diagnostics}); use a form like "
                "town.example/redlist"
            ).format(origin=origin, diagnostics=error.diagnostics())
        ) from None


def _milliseconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("{text!r} is not a whole number of milliseconds").format(text=text)
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(_("a time before 1970 is not allowed"))
    if value > time.time_ns() // 1_000_000 + MAX_FUTURE_MS:
        raise argparse.ArgumentTypeError(
            _("{value} lies in the future; a log cannot start later").format(value=value)
        )
    return value
