"""``redlist-verify bundles DIR... --log-keys FILE [--json] [--scheduler ADDRESS]``.

Audits many towns' bundles at once (``redlist.verifier.many``) and prints one table,
a row per log: origin, entries, accounts, root and verdict; with ``--json`` one
object per log and line, the object a single ``redlist-verify bundle --json`` run
prints with ``bundle`` (its path) and ``origin`` added. Rows and lines follow the
order the bundles were named in, whatever order the audits finished in.

Exit status: 0 when every log verified; 1 when any log failed verification (a defect
in its data); else 2 when any log could not be checked (an unreadable bundle, no key
for its origin) or the command could not start (bad arguments, no keys, no scheduler).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from redlist.ledger.i18n import N_, _, ngettext
from redlist.ledger.progress import ProgressBar
from redlist.ledger.tables import print_table
from redlist.verifier.failure import KIND_NAMES
from redlist.verifier.many import (
    FAILED,
    UNCHECKED,
    VERIFIED,
    BundlesArgumentError,
    LogKeys,
    LogOutcome,
    find_bundles,
    plan,
    run_here,
)

HELP = N_(
    "Verify many towns' bundles at once, each exactly as 'redlist-verify bundle' does, "
    "one process per log on every core (or one task per log on a Dask cluster with "
    "--scheduler). Each DIR is a bundle or a directory of bundles. Each log's key is "
    "chosen by the origin its checkpoint names from the keys given with --log-key or "
    "--log-keys, never from the bundles."
)

HEADERS = (N_("origin"), N_("entries"), N_("accounts"), N_("root"), N_("verdict"))


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "bundles", help=_("verify many towns' bundles at once"), description=_(HELP)
    )
    parser.add_argument(
        "directories",
        metavar="DIR",
        type=Path,
        nargs="+",
        help=_("a bundle or a directory of them"),
    )
    parser.add_argument(
        "--log-key",
        metavar="VKEY",
        action="append",
        default=[],
        help=_("a town log's verifier key string, or a file holding it (repeatable)"),
    )
    parser.add_argument(
        "--log-keys",
        metavar="FILE",
        type=Path,
        action="append",
        default=[],
        help=_("a file of towns' verifier key strings, one a line ('#' starts a comment)"),
    )
    parser.add_argument("--json", action="store_true", help=_("print one JSON object per log"))
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs",
        metavar="N",
        type=int,
        help=_("audit at most N logs at a time (default and at most: one per core)"),
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=_(
            "run the audits on the Dask distributed cluster of this scheduler "
            "(tcp://HOST:PORT; needs the 'dask' extra, and the bundles at the same paths "
            "on every worker)"
        ),
    )


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise BundlesArgumentError(_("--jobs must be at least 1"))
    keys = LogKeys.load(args.log_key, args.log_keys)
    directories = find_bundles(args.directories)
    jobs, skipped = plan(directories, keys)
    outcomes = {outcome.bundle: outcome for outcome in skipped}
    with ProgressBar(stderr, _("auditing"), _("logs")) as progress:
        total = len(directories)
        progress.update(len(outcomes), total)

        def done() -> None:
            progress.update(len(outcomes), total)

        if args.scheduler is not None:
            finished = _cluster_runner()(args.scheduler, jobs, done=done)
        else:
            finished = run_here(jobs, args.jobs, done=done)
        for outcome in finished:
            outcomes[outcome.bundle] = outcome
    ordered = [outcomes[str(directory)] for directory in directories]
    if args.json:
        for outcome in ordered:
            stdout.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
    else:
        print_table(
            stdout, tuple(_(header) for header in HEADERS), [_row(outcome) for outcome in ordered]
        )
        stdout.write(_summary(ordered))
    return exit_status(ordered)


def _cluster_runner() -> Any:
    """``cluster.run_on_cluster``, imported only when asked for: Dask is an optional extra."""
    try:
        from redlist.verifier import cluster
    except ImportError as exc:
        raise BundlesArgumentError(
            _(
                "--scheduler needs Dask ({exc}): install the verifier with its "
                "dask extra, pip install 'redlist-verifier[dask]'"
            ).format(exc=exc)
        ) from None
    return cluster.run_on_cluster


def exit_status(outcomes: list[LogOutcome]) -> int:
    """1 when any log failed; else 2 when any could not be checked; else 0."""
    found = {outcome.outcome for outcome in outcomes}
    if FAILED in found:
        return 1
    return 2 if UNCHECKED in found else 0


def _row(outcome: LogOutcome) -> tuple[str, ...]:
    value = outcome.json
    if outcome.outcome == VERIFIED:
        entries = value["tree_size"] - value["start"]
        return (
            outcome.origin,
            f"{entries:,}",
            f"{len(value['accounts']):,}",
            value["root"],
            _("verified"),
        )
    error = value["error"]
    if outcome.outcome == FAILED:
        where = (
            _("entry {seq}").format(seq=error["seq"]) if error["seq"] is not None else _("the log")
        )
        kind = "; " + _(KIND_NAMES.get(error["kind"], error["kind"])) if error.get("kind") else ""
        verdict = _("FAILED at {where} ({check}{kind}): {message}").format(
            where=where, check=error["check"], kind=kind, message=error["message"]
        )
    else:
        verdict = _("NOT CHECKED ({bundle}): {message}").format(
            bundle=outcome.bundle, message=error["message"]
        )
    return (outcome.origin, "-", "-", "-", verdict)


def _summary(outcomes: list[LogOutcome]) -> str:
    count = {name: 0 for name in (VERIFIED, FAILED, UNCHECKED)}
    for outcome in outcomes:
        count[outcome.outcome] += 1
    line = ngettext(
        "{logs} log: {verified} verified, {failed} failed, {unchecked} not checked.",
        "{logs} logs: {verified} verified, {failed} failed, {unchecked} not checked.",
        len(outcomes),
    ).format(
        logs=f"{len(outcomes):,}",
        verified=f"{count[VERIFIED]:,}",
        failed=f"{count[FAILED]:,}",
        unchecked=f"{count[UNCHECKED]:,}",
    )
    return "\n" + line + "\n"


__all__ = ["HEADERS", "add_parser", "exit_status", "run"]
