"""``redlist-node texts``: the free texts kept beside the log (DESIGN 9.2)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from redlist.ledger.errors import FormatError
from redlist.ledger.formatv1 import is_valid_account
from redlist.ledger.i18n import N_, _
from redlist.ledger.log import Log
from redlist.ledger.textcommit import ALL_TEXT_FIELDS
from redlist.ledger.textstore import TEXTS_ENV_NAME
from redlist.node.commands.serve import check_data_dir
from redlist.node.texts import Erasure, erase_account, erase_entry

DESCRIPTION = N_("""\
The free texts of the log's entries (an award's note, a redemption's item, an
objection's words, a reversal's reason, the meeting that decided a rule). The log
holds only a salted commitment to each; the texts and salts live in
DIR/{TEXTS_ENV_NAME}, beside the log, and can be erased.

  erase --account A        every text of A's awards and redemptions, and of the
                           objections and reversals that target them
  erase --seq N [--field F]  the texts of one entry (or only its field F)

Erasure deletes text and salt for good and rewrites the store's files without them;
the commitments stay in the log, which still verifies. Safe while the node serves.

Exit status: 0 done, 1 refused (the entry holds no such text), 2 could not start.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "texts",
        help=_("the free texts beside the log: erase"),
        description=_(DESCRIPTION).format(TEXTS_ENV_NAME=TEXTS_ENV_NAME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title=_("actions"), metavar="ACTION", required=True)
    erase = actions.add_parser(
        "erase",
        help=_("erase free texts for good (the log still verifies)"),
        description=_(DESCRIPTION).format(TEXTS_ENV_NAME=TEXTS_ENV_NAME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    erase.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    which = erase.add_mutually_exclusive_group(required=True)
    which.add_argument("--account", metavar="ACCOUNT", help=_("every text of this account"))
    which.add_argument("--seq", type=int, metavar="N", help=_("the texts of entry N"))
    erase.add_argument(
        "--field",
        choices=sorted(ALL_TEXT_FIELDS),
        help=_("with --seq: only this field's text"),
    )
    erase.add_argument("--yes", action="store_true", help=_("confirm: erasing cannot be undone"))
    erase.set_defaults(run=run_erase)


def run_erase(args: argparse.Namespace) -> int:
    check_data_dir(args.data)
    if args.field is not None and args.seq is None:
        raise FormatError(_("--field goes with --seq (one entry's field)"))
    if args.account is not None and not is_valid_account(args.account):
        raise FormatError(
            _("{account!r} is not an account id (lower case, like dgc-0001)").format(
                account=args.account
            )
        )
    if args.seq is None:
        what = _("the texts of {account}'s entries").format(account=args.account)
    else:
        what = _("the texts of entry {seq}").format(seq=args.seq)
    if not args.yes:
        raise FormatError(
            _("erasing {what} cannot be undone. Run again with --yes").format(what=what)
        )
    now_ms = time.time_ns() // 1_000_000
    with Log.open(args.data, readonly=True) as log:
        if args.seq is not None:
            erasure = erase_entry(args.data, log, args.seq, args.field, now_ms)
        else:
            erasure = erase_account(args.data, log, args.account, now_ms)
    print(_summary(what, erasure))
    if erasure.fields:
        print(
            _(
                "The files of {value} were rewritten without them; the commitments stay in the "
                "log, which still verifies."
            ).format(value=args.data / TEXTS_ENV_NAME)
        )
        print(_("Copies of the data directory made before now (backups) still hold them."))
    return 0


def _summary(what: str, erasure: Erasure) -> str:
    if not erasure.fields:
        return _("Nothing to erase: the log holds none of {what}.").format(what=what)
    listed = _(", ").join(
        _("{field} of entry {seq}").format(field=field, seq=seq) for seq, field in erasure.fields
    )
    return _("Erased {what}: {listed} ({deleted} stored text(s) deleted).").format(
        what=what, listed=listed, deleted=erasure.deleted
    )
