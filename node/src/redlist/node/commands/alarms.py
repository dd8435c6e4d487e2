"""``redlist-node alarms``: list the split-view evidence a witness kept (DESIGN 8.5)."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from redlist.ledger import logkeyfile
from redlist.ledger.i18n import N_, _
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.splitwords import proof_words
from redlist.ledger.witness import check_evidence
from redlist.node.configfile import load_config_file
from redlist.node.evidence import EVIDENCE_DIR_NAME, EvidenceFile, list_evidence

DESCRIPTION = N_("""\
List the split-view evidence in DIR/{EVIDENCE_DIR_NAME}/: pairs of checkpoints of one
log, both signed by its key, that cannot both be true. A witness keeps one file per
split view it refused ('redlist-node serve --witness-key ...'; the same one shown
again is not kept twice, and at most 100 for a log), a mirror one per split view it
was shown ('redlist-node mirror'). For each file: the log's origin, when it was written,
and what it proves, checked with the log's key when that key is known (--witness-for,
witness_for in --config, or the DIR/log.pub of a mirror's data directory); anyone can
check a file offline with 'redlist-verify evidence FILE --log-key VKEY'.

Exit status: 0 no evidence, 1 there is evidence (an alarm), 2 could not start.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "alarms",
        help=_("list split-view evidence kept by this node's witness"),
        description=_(DESCRIPTION).format(EVIDENCE_DIR_NAME=EVIDENCE_DIR_NAME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help=_("the node's TOML settings (for witness_for)")
    )
    parser.add_argument(
        "--witness-for",
        dest="witness_for",
        action="append",
        default=[],
        metavar="VKEY",
        help=_("a witnessed log's verifier key string or key file (repeatable)"),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    given: list[str] = list(args.witness_for)
    if args.config is not None:
        values: dict[str, Any] = load_config_file(args.config)
        given.extend(values.get("witness_for", ()))
    own = args.data / logkeyfile.LOG_PUB_NAME  # a mirror's: the key of the log it copies
    if own.is_file():
        given.append(str(own))
    keys = {}
    for text in given:
        log_key = logkeyfile.read_log_key(text)
        keys[log_key.name] = log_key
    found = list_evidence(args.data)
    if not found:
        print(_("No split-view evidence in {value}.").format(value=args.data / EVIDENCE_DIR_NAME))
        return 0
    print(
        _("{found_count} split-view evidence file(s) in {value}:").format(
            found_count=len(found), value=args.data / EVIDENCE_DIR_NAME
        )
    )
    for item in found:
        print(_describe(item, keys))
    return 1


def _describe(item: EvidenceFile, keys: dict[str, VerifierKey]) -> str:
    written = datetime.datetime.fromtimestamp(item.path.stat().st_mtime, datetime.UTC)
    head = _("{path}\n  written {isoformat}").format(
        path=item.path, isoformat=written.isoformat(timespec="seconds")
    )
    if item.evidence is None:
        return _("{head}\n  unreadable: {problem}").format(head=head, problem=item.problem)
    origin = excerpt(item.evidence.origin)
    log_key = keys.get(item.evidence.origin)
    if log_key is None:
        verdict = _("not checked: the log's key is not known here (give --witness-for)")
    else:
        proven = check_evidence(item.evidence, log_key)
        verdict = (
            _("PROVES A SPLIT VIEW: {proven}").format(proven=proof_words(proven))
            if proven is not None
            else _("proves nothing with the configured log key")
        )
    return _("{head}\n  log {origin}\n  {verdict}").format(
        head=head, origin=origin, verdict=verdict
    )
