"""``redlist-verify evidence FILE --log-key VKEY``: does this file prove a split view?

A witness or mirror that was shown two checkpoints of one log that cannot both be
true keeps them as an evidence file (DESIGN 8.5). This checks one offline, with the
log's key alone (:func:`redlist.ledger.witness.check_evidence`):

* exit 1: both checkpoints are validly signed by the log and contradict each other;
  the log showed two histories, and the file proves it to anyone;
* exit 0: the file proves nothing against this log (a note not signed by its key,
  or two checkpoints that can both be true);
* exit 2: the file cannot be read, or is not an evidence file (the caller reports
  the ``SourceError``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from redlist.ledger import logkeyfile
from redlist.ledger.errors import NoteError, SourceError
from redlist.ledger.i18n import N_, _
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.splitwords import proof_words
from redlist.ledger.witness import SplitViewEvidence, check_evidence
from redlist.verifier.files import SMALL_LIMIT, read_limited

#: Two notes of at most 1 MiB each and a proof: anything larger is not evidence.
EVIDENCE_LIMIT = 4 << 20
EXIT_NOTHING_PROVEN = 0
EXIT_SPLIT_VIEW = 1

HELP = N_(
    "Check a split-view evidence file (kept by a witness in its evidence/ directory) "
    "offline, with the log's key. Exit 1 when both checkpoints in it are signed by the "
    "log and cannot both be true (the log showed two histories), 0 when the file proves "
    "nothing against that log, 2 when it cannot be read."
)


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "evidence", help=_("check a split-view evidence file"), description=_(HELP)
    )
    parser.add_argument("file", metavar="FILE", type=Path, help=_("the evidence file"))
    parser.add_argument(
        "--log-key",
        metavar="VKEY",
        required=True,
        help=_(
            "the log's verifier key string, or a file holding it; obtain it from the "
            "town, never from the evidence"
        ),
    )
    parser.set_defaults(json=False, run_command=run)


def run(args: argparse.Namespace, stdout: TextIO) -> int:
    log_key = logkeyfile.read_log_key(
        args.log_key, lambda path: read_limited(path, SMALL_LIMIT, _("the log key file"))
    )
    evidence = read_evidence(args.file)
    proven = check_evidence(evidence, log_key)
    if proven is not None:
        stdout.write(
            _(
                "SPLIT VIEW PROVEN for log {excerpt}: both checkpoints in {file} "
                "are validly signed by the log's key, and {proven}."
            ).format(excerpt=excerpt(evidence.origin), file=args.file, proven=proof_words(proven))
            + "\n"
        )
        return EXIT_SPLIT_VIEW
    stdout.write(
        _("Nothing proven against log {excerpt}: {why_not}").format(
            excerpt=excerpt(log_key.name), why_not=_why_not(evidence, log_key)
        )
        + "\n"
    )
    return EXIT_NOTHING_PROVEN


def read_evidence(path: Path) -> SplitViewEvidence:
    """The evidence in ``path``; ``SourceError`` when it cannot be read as such."""
    try:
        data = read_limited(path, EVIDENCE_LIMIT, _("the evidence file"))
    except FileNotFoundError:
        raise SourceError(_("the evidence file {path} does not exist").format(path=path)) from None
    try:
        return SplitViewEvidence.from_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SourceError(
            _("the evidence file {path} is not UTF-8 text").format(path=path)
        ) from None
    except NoteError as error:
        raise SourceError(
            _("{path} is not an evidence file: {diagnostics}").format(
                path=path, diagnostics=error.diagnostics()
            )
        ) from None


def _why_not(evidence: SplitViewEvidence, log_key: VerifierKey) -> str:
    for which, note in ((N_("earlier"), evidence.earlier), (N_("later"), evidence.later)):
        try:
            open_checkpoint(note, log_key)
        except NoteError as error:
            return _(
                "the {which} checkpoint is not validly signed by this log key ({error}), so "
                "the file says nothing about this log"
            ).format(which=_(which), error=error)
    return _(
        "both checkpoints are signed by the log, but they can both be true (the file's "
        "proof does not show the later tree failing to extend the earlier one); ask the "
        "log for a consistency proof between them"
    )
