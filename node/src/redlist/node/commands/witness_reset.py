"""``redlist-node witness-reset``: accept a witness state older than its journal, on purpose."""

from __future__ import annotations

import argparse
from pathlib import Path

from redlist.ledger.errors import StoreError
from redlist.ledger.i18n import N_, _
from redlist.ledger.witnessjournal import JOURNAL_NAME
from redlist.ledger.witnessstore import WITNESS_ENV_NAME, WitnessStore

DESCRIPTION = N_("""\
A witness never rolls back: every head it stores in DIR/{WITNESS_ENV_NAME} is also
written to its journal, DIR/{JOURNAL_NAME}, and 'redlist-node serve' refuses a
state older than the journal (an old copy of {WITNESS_ENV_NAME} put back, say),
because from an older head the witness could cosign a history that contradicts one
it already cosigned.

Without --accept-rollback this command only says, for each watched log, whether the
state is older than the journal (exit 1 if so, 0 if not). The best repair is to put
the newest {WITNESS_ENV_NAME} back. If it is lost, --accept-rollback records in the
journal that the operator accepted the older heads (of the logs named by --origin,
all when none is named), and the witness serves again from them. The towns it
witnesses then see it behind (it reports its size, and they catch it up); anyone
holding a cosignature it gave beyond that size can hold it to it. Stop the node
first: the state is locked while it serves.

Exit status: 0 nothing to reset or reset done, 1 the state is older than the
journal (nothing changed), 2 could not start.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "witness-reset",
        help=_("accept a witness state older than its journal (after restoring an old copy)"),
        description=_(DESCRIPTION).format(
            WITNESS_ENV_NAME=WITNESS_ENV_NAME, JOURNAL_NAME=JOURNAL_NAME
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    parser.add_argument(
        "--origin",
        dest="origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help=_("reset only this log (its checkpoint origin; repeatable; default: every log)"),
    )
    parser.add_argument(
        "--accept-rollback",
        action="store_true",
        help=_("record the reset in the journal, so that the witness serves again"),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data: Path = args.data
    if not (data / WITNESS_ENV_NAME).is_dir():
        raise StoreError(
            _("{data} holds no witness state ({WITNESS_ENV_NAME}): nothing to reset").format(
                data=data, WITNESS_ENV_NAME=WITNESS_ENV_NAME
            )
        )
    store = WitnessStore.open(data, check=False)
    try:
        if store.journal_missing:
            print(store.refusal_message())
            if not args.accept_rollback:
                return 1
            store.reset()
            print(
                _("Wrote a new journal {value} from the state, as a reset.").format(
                    value=data / JOURNAL_NAME
                )
            )
            return 0
        unknown = set(args.origins) - {r.journal.origin for r in store.rollbacks}
        if unknown:
            raise StoreError(
                _("no log of origin {join} is behind its journal in {value}").format(
                    join=", ".join(sorted(unknown)), value=data / WITNESS_ENV_NAME
                )
            )
        if not store.rollbacks:
            print(
                _(
                    "The witness state in {data} is not older than its journal: nothing to reset."
                ).format(data=data)
            )
            return 0
        chosen = [
            rollback
            for rollback in store.rollbacks
            if not args.origins or rollback.journal.origin in args.origins
        ]
        print(_("The witness state is older than its journal:"))
        for rollback in chosen:
            print(f"  {rollback.describe()}")
        if not args.accept_rollback:
            print(
                _(
                    "Put the newest witness.lmdb back, or run again with --accept-rollback to "
                    "accept these heads on purpose."
                )
            )
            return 1
        accepted = store.reset(args.origins)
        print(
            _("Reset {accepted_count} log(s); recorded in {value}.").format(
                accepted_count=len(accepted), value=data / JOURNAL_NAME
            )
        )
        return 0
    finally:
        store.close()
