"""``redlist-verify``: audit a town's log offline and say, in plain words, what holds.

    redlist-verify bundle DIR --log-key VKEY [--state FILE] [--json] [--account A]
    redlist-verify node ADDR --log-key VKEY [--state FILE] [--json] [--account A]
    redlist-verify evidence FILE --log-key VKEY   (``redlist.verifier.evidence``)
    redlist-verify attestation FILE --auditor-key VKEY [--log-key VKEY]
                                                  (``redlist.verifier.attest``)
    redlist-verify bundles DIR... --log-keys FILE [--json] [--scheduler ADDRESS]
                                                  (``redlist.verifier.bundlescmd``)

``bundle`` and ``node`` also take a witness policy: ``--policy FILE`` (C2SP
tlog-policy) or ``--witness VKEY`` (repeatable) with ``--min-witnesses K``; the final
checkpoint must meet it. With ``--attest-key FILE --attest-out DIR`` they sign one
attestation per account once the whole audit has passed (``redlist.verifier.attest``).

Exit status (DESIGN 5): 0 verified; 1 verification failed (any defect in the data,
undecodable bytes included; the report names the first bad entry and the check, says
whether the data was changed after signing, an entry broke a town rule, or what was
published or answered does not match the log (``checkwords``), and names the resident
and award concerned (``failure``));
2 the check could not start (bad arguments, a missing file, an unusable key, a node
that cannot be reached or refuses to answer); 130 interrupted (Ctrl-C); 141 the
reader of the report went away (``| head``).

The log key must come from outside the data: ``--log-key`` (the verifier key
string, or a file holding it such as a node's ``log.pub``) or a ``--state`` file
written by an earlier run. Every error is turned into output in ``_report_error``.

``bundle`` builds a ``Source`` and hands it to ``_audit``; ``node`` runs
``nodeaudit.verify_node``, which audits the node's leaves the same way and then
checks its answers (``_verify_node``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from redlist.ledger import i18n, logkeyfile
from redlist.ledger.console import discard_stdout
from redlist.ledger.cores import WORKERS_PER_CORE, available_cores, most_workers
from redlist.ledger.entry import is_valid_account
from redlist.ledger.errors import (
    KeyFileError,
    RedlistError,
    SourceError,
    VerificationError,
)
from redlist.ledger.i18n import N_, _
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.progress import ProgressBar
from redlist.ledger.sigworkers import tune_interpreter
from redlist.verifier import attest, bundlescmd, evidence, report
from redlist.verifier.checkwords import advice
from redlist.verifier.failure import cannot_start_json, failure_json, failure_of, failure_text
from redlist.verifier.files import SMALL_LIMIT, read_limited
from redlist.verifier.heap import map_large_blocks
from redlist.verifier.results import STATE_FILE_SOURCE, AuditResult, ResumePoint
from redlist.verifier.source import BundleSource, Source, audit
from redlist.verifier.witnesses import load_policy, require

if TYPE_CHECKING:
    from redlist.verifier.statefile import PinnedState

PROGRAM = "redlist-verify"
#: Defaults of ``node``'s options: the gRPC client's timeout and
#: ``nodeaccounts.DEFAULT_ACCOUNT_BOUND`` (a test holds them equal). They are repeated
#: here because the node's client is loaded only when ``node`` runs (ADR 0041).
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_ACCOUNT_BOUND = 1000
EXIT_VERIFIED = 0
EXIT_FAILED = 1
EXIT_CANNOT_START = 2
#: 128 + SIGINT and 128 + SIGPIPE, as shells report a command stopped by those signals.
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class _BadArguments(Exception):
    """Arguments the verifier cannot run with (exit 2). Never leaves this module."""

    def diagnostics(self) -> str:
        return str(self)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _BadArguments(
            _("{message} (see {prog} --help)").format(message=message, prog=self.prog)
        )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
        description=_(
            "Re-verify a town's credit-point log: signatures, rules, balances, "
            "hash chain and the signed checkpoint."
        ),
        epilog=_("Exit status: 0 verified, 1 verification failed, 2 could not start."),
    )
    i18n.add_option(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bundle = commands.add_parser(
        "bundle", help=_("verify an exported bundle directory"), description=_(_BUNDLE_HELP)
    )
    bundle.add_argument("directory", metavar="DIR", type=Path, help=_("the bundle directory"))
    _common_arguments(bundle)
    bundle.add_argument(
        "--structure-only",
        action="store_true",
        help=_(
            "for a bundle that starts after entry 0 with no earlier state: check only its "
            "order, hash chain and Merkle root (signatures and balances are not recomputed)"
        ),
    )
    bundle.add_argument(
        "--publicity",
        action="store_true",
        help=_(
            "a monthly bundle: check that it holds one month, after the state file's, "
            "re-derive every row of its publicity.csv (points, running scores, grades) from "
            "the entries, and hold the printed notice publicity.html to it"
        ),
    )
    bundle.add_argument(
        "--texts",
        type=Path,
        metavar="PATH",
        help=_(
            "also check the free texts in PATH (the file 'redlist-node export --texts' "
            "writes, or a directory holding a texts.jsonl) against the commitments in the log"
        ),
    )
    bundle.set_defaults(make_source=lambda args: BundleSource(args.directory))
    node = commands.add_parser(
        "node", help=_("verify a live town node over gRPC"), description=_(_NODE_HELP)
    )
    node.add_argument("address", metavar="ADDR", help=_("the node's HOST:PORT"))
    _common_arguments(node)
    node.add_argument(
        "--check-accounts",
        metavar="N|all",
        type=_account_bound,
        default=DEFAULT_ACCOUNT_BOUND,
        help=_(
            "ask the node for every account when the log has at most N (default "
            "{DEFAULT_ACCOUNT_BOUND}), else for a random sample of N; 'all' asks for every "
            "one"
        ).format(DEFAULT_ACCOUNT_BOUND=DEFAULT_ACCOUNT_BOUND),
    )
    node.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=_("how long one call to the node may take (default {DEFAULT_TIMEOUT_S:g})").format(
            DEFAULT_TIMEOUT_S=DEFAULT_TIMEOUT_S
        ),
    )
    tls = node.add_argument_group(_("reaching the node over TLS (plaintext when not given)"))
    tls.add_argument("--tls-ca", type=Path, metavar="FILE", help=_("the CA (PEM) of the node"))
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help=_("this client's cert (PEM)"))
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help=_("the key (PEM) of --tls-cert"))
    evidence.add_parser(commands)
    attest.add_parser(commands)
    bundlescmd.add_parser(commands)
    return parser


_BUNDLE_HELP = N_(
    "Verify a bundle written by 'redlist-node export'. A full bundle (from entry 0) is "
    "re-checked completely and every balance recomputed. A bundle that starts later (a "
    "month) is re-checked completely when --state FILE holds the state an earlier run "
    "reached exactly where the bundle starts (verify each month with the same state "
    "file); otherwise it is refused, unless --structure-only asks for its format, order, "
    "hash chain and Merkle root alone."
)


_NODE_HELP = N_(
    "Verify a live node: fetch its signed checkpoint, stream every entry it covers and "
    "re-check them all as for a bundle, then check the node's own answers (account "
    "figures, inclusion and consistency proofs) against the recomputed ones. With --state, "
    "a later run proves the node's new checkpoint extends the pinned one and fetches only "
    "the entries added since: the points state at the pinned checkpoint is kept in "
    "FILE.semantics next to the state file. That file grows with the log (entry ids and "
    "every award and redemption; about 50 bytes per entry on disk and 500 in memory "
    "while used), which is fine on an auditor's machine; if it is missing or does "
    "not match, the run starts from entry 0 and says so."
)


def _account_bound(text: str) -> int | None:
    if text == "all":
        return None
    try:
        bound = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("{text!r} is not a number or 'all'").format(text=text)
        ) from None
    if bound < 0:
        raise argparse.ArgumentTypeError(_("must not be negative"))
    return bound


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-key",
        metavar="VKEY",
        help=_(
            "the town log's verifier key string, or a file holding it (e.g. the node's "
            "log.pub); obtain it from the town, never from the data being checked"
        ),
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        type=Path,
        help=_(
            "remember the verified checkpoint in FILE and, on later runs, require the log "
            "to extend it (also pins the log key)"
        ),
    )
    parser.add_argument("--json", action="store_true", help=_("print one JSON object"))
    parser.add_argument(
        "--account", metavar="ACCOUNT", help=_("also print this resident's statement")
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        help=_("workers verifying signatures (default: one per core; at most four per core)"),
    )
    policy = parser.add_argument_group(
        _("witness policy (the checkpoint must carry the cosignatures it asks for)")
    )
    policy.add_argument(
        "--policy",
        metavar="FILE",
        type=Path,
        help=_("a C2SP tlog-policy file (log, witness, group, quorum lines)"),
    )
    policy.add_argument(
        "--witness",
        metavar="VKEY",
        action="append",
        default=[],
        help=_("a witness's cosigning key (verifier key string); repeat for each witness"),
    )
    policy.add_argument(
        "--min-witnesses",
        metavar="K",
        type=int,
        help=_("how many of the --witness keys must have cosigned (default: all)"),
    )
    attest.add_signing_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verifier; returns the exit status."""
    try:
        status = _main(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows here, not at exit as a traceback
    except BrokenPipeError:
        # The reader (head, less) went away: end silently, as a command stopped by SIGPIPE.
        discard_stdout()
        return EXIT_BROKEN_PIPE
    return status


def _main(argv: Sequence[str] | None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    json_mode = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        words = i18n.setup_from_argv(argv)  # first: help is translated as the parser is built
        if json_mode:  # machine output: every word of it English, errors included
            i18n.setup(i18n.ENGLISH)
        if stdout is None:  # started with its output closed (>&-): no audit, no verdict
            return _no_output(stderr)
        args = _parser().parse_args(words)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_VERIFIED
    except _BadArguments as error:
        return _report_error(error, json_mode, stdout, stderr)
    tune_interpreter()  # thread switch interval and garbage collector for long audits
    map_large_blocks()  # growing state arrays leave no holes in the heap
    try:
        if args.command == "node":
            return _verify_node(args, stdout, stderr)
        if args.command in ("evidence", "attestation"):
            return int(args.run_command(args, stdout))
        if args.command == "bundles":
            return bundlescmd.run(args, stdout, stderr)
        return _audit(args, args.make_source(args), stdout, stderr)
    except (RedlistError, _BadArguments) as error:
        directory = args.directory if args.command == "bundle" else None
        return _report_error(error, args.json, stdout, stderr, directory)
    except KeyboardInterrupt:
        stderr.write(
            "\n" + _("{program}: interrupted; nothing was verified").format(program=PROGRAM) + "\n"
        )
        return EXIT_INTERRUPTED


def _audit(args: argparse.Namespace, source: Source, stdout: TextIO, stderr: TextIO) -> int:
    # What only some runs need is loaded when they ask for it (ADR 0041): the state
    # file (--state), the texts (--texts), the publicity list (--publicity), and the
    # explanation of a failure.
    _check_common_arguments(args)
    pinned = _load_pinned(args.state)
    log_key = _resolve_log_key(args.log_key, pinned)
    policy = load_policy(args.policy, args.witness, args.min_witnesses)
    if policy is not None:
        policy.check_log(log_key)
    attestations = attest.plan(args)
    given_texts = None
    if getattr(args, "texts", None) is not None:  # read first: a missing file stops at once
        from redlist.verifier.texts import read_texts_file

        given_texts = read_texts_file(args.texts)
    resume = None
    if pinned is not None and args.account is None:
        # A bundle that starts where the pinned audit ended resumes from its state.
        from redlist.verifier.statefile import load_semantics

        with contextlib.suppress(SourceError):
            resume = load_semantics(args.state, pinned)
    watch = None
    if getattr(args, "publicity", False):
        if args.structure_only:
            raise _BadArguments(
                _("--publicity re-derives scores, which --structure-only does not compute")
            )
        from redlist.verifier.publicitycheck import MonthWatch

        watch = MonthWatch(resume.last_time if resume is not None else None)
    progress = ProgressBar(stderr, _("checking"), _("entries"))
    try:
        audited = audit(
            source,
            log_key,
            keep_statements_for=args.account,
            trusted=(pinned.head(),) if pinned is not None else (),
            progress=progress.update if progress.shown else None,
            workers=args.workers,
            resume=resume,
            partial_ok=args.structure_only,
            observer=watch,
        )
    finally:
        progress.close()
    result = audited.result
    texts_checked, verdict, publicity = None, None, None
    passed: list[str] = []
    try:
        if given_texts is not None:
            from redlist.verifier.texts import check_texts

            texts_checked = check_texts(*given_texts, source.leaves(), result.start)
            passed.append("texts")
        if policy is not None:
            verdict = require(policy, result.checkpoint)
            passed.append("witness-policy")
        if watch is not None:  # before the state moves on: a failed month pins nothing
            from redlist.verifier.publicitycheck import check_csv

            texts = given_texts[1] if given_texts is not None else None
            standings = {
                account: (summary.score, summary.grade)
                for account, summary in result.accounts.items()
            }
            publicity = check_csv(
                args.directory, watch.month, watch.recorder.entries, texts, standings
            )
    except VerificationError as error:
        from redlist.verifier.explain import explain_after

        raise explain_after(error, source, audited, *passed) from None
    # A draft ends mid-month: the month's publication starts where it does, so the
    # state stays where it was for it.
    if args.state is not None and not (publicity is not None and publicity.draft):
        _save_state(args.state, result, audited.resume_point)
    written = _attest(attestations, result, stderr)
    if args.json:
        value = report.result_json(result, args.account, verdict)
        if publicity is not None:
            value["publicity"] = publicity.to_json()
        if written is not None:
            value["attestations"] = written.to_json()
        if texts_checked is not None:
            value["texts_checked"] = texts_checked.count
        stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    else:
        stdout.write(report.summary_text(result, verdict))
        if publicity is not None:
            stdout.write(publicity.summary())
        if texts_checked is not None:
            stdout.write(
                _("Free texts: all {count} in {path} match their commitments.").format(
                    count=texts_checked.count, path=texts_checked.path
                )
                + "\n"
            )
        if args.account is not None:
            stdout.write("\n" + report.statement_text(result, args.account))
        if written is not None:
            stdout.write(written.summary())
    return EXIT_VERIFIED


def _check_common_arguments(args: argparse.Namespace) -> None:
    if args.account is not None and not is_valid_account(args.account):
        raise _BadArguments(
            _("--account {account!r} is not an account id").format(account=args.account)
        )
    if args.workers is not None and args.workers < 1:
        raise _BadArguments(_("--workers must be at least 1"))
    if args.workers is not None and args.workers > most_workers():
        raise _BadArguments(
            _(
                "--workers {count} is more than this machine can use: at most {most} "
                "({per} for each of its {cores} cores)"
            ).format(
                count=args.workers,
                most=most_workers(),
                per=WORKERS_PER_CORE,
                cores=available_cores(),
            )
        )


def _verify_node(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    # Loaded on use, so that every other command starts without gRPC (ADR 0041).
    from redlist.proto.client import NodeClient, RemoteTLS
    from redlist.verifier.nodeaudit import PinnedHead, verify_node

    _check_common_arguments(args)
    if not args.timeout > 0:
        raise _BadArguments(_("--timeout must be a positive number of seconds"))
    pinned = _load_pinned(args.state)
    log_key = _resolve_log_key(args.log_key, pinned)
    policy = load_policy(args.policy, args.witness, args.min_witnesses)
    if policy is not None:
        policy.check_log(log_key)
    attestations = attest.plan(args)
    resume, fallback, head = None, None, None
    if pinned is not None:
        head = PinnedHead(pinned.checkpoint, STATE_FILE_SOURCE)
        if args.account is not None:
            fallback = _("a statement (--account) needs every entry")
        else:
            from redlist.verifier.statefile import load_semantics

            try:
                resume = load_semantics(args.state, pinned)
            except SourceError as error:
                fallback = error.diagnostics()
        if fallback is not None:
            stderr.write(
                _("{program}: note: checking from entry 0: {reason}").format(
                    program=PROGRAM, reason=fallback
                )
                + "\n"
            )
    tls = None
    if args.tls_ca or args.tls_cert or args.tls_key:
        tls = RemoteTLS(args.tls_ca, args.tls_cert, args.tls_key)
    progress = ProgressBar(stderr, _("checking"), _("entries"))
    verdict = None
    try:
        with NodeClient(args.address, tls=tls, timeout=args.timeout) as client:
            outcome = verify_node(
                client,
                log_key,
                pinned=head,
                resume=resume,
                fallback=fallback,
                keep_statements_for=args.account,
                account_bound=args.check_accounts,
                extra_accounts=(args.account,) if args.account is not None else (),
                workers=args.workers,
                progress=progress.update if progress.shown else None,
            )
            progress.close()
            result = outcome.result
            if policy is not None:
                from redlist.verifier.nodewitnesses import await_witnesses

                result, verdict = await_witnesses(client, log_key, policy, result, stderr)
    finally:
        progress.close()
    if args.state is not None:
        _save_state(args.state, result, outcome.resume_point)
    written = _attest(attestations, result, stderr)
    if args.json:
        value = report.result_json(result, args.account, verdict)
        value["node"] = outcome.to_json()
        if written is not None:
            value["attestations"] = written.to_json()
        stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    else:
        stdout.write(report.summary_text(result, verdict))
        stdout.write("\n" + _("Checked against the node:") + "\n")
        stdout.write("".join(line + "\n" for line in outcome.summary_lines()))
        if args.account is not None:
            stdout.write("\n" + report.statement_text(result, args.account))
        if written is not None:
            stdout.write(written.summary())
    return EXIT_VERIFIED


def _attest(
    attestations: attest.AttestPlan | None, result: AuditResult, stderr: TextIO
) -> attest.Written | None:
    """Sign one attestation per account: only ever called once the whole audit passed."""
    if attestations is None:
        return None
    with ProgressBar(stderr, _("signing attestations"), _("accounts")) as progress:
        return attest.write_attestations(
            attestations, result, progress=progress.update if progress.shown else None
        )


def _load_pinned(path: Path | None) -> PinnedState | None:
    """The state pinned in ``path`` (``--state``), None without one."""
    if path is None:
        return None
    from redlist.verifier.statefile import load_state  # only with --state (ADR 0041)

    return load_state(path)


def _save_state(path: Path, result: AuditResult, resume_point: ResumePoint | None) -> None:
    """Pin ``result`` in ``path``, with the points state at ``resume_point`` beside it."""
    from redlist.verifier import statefile  # only with --state (ADR 0041)

    semantics = None
    if resume_point is not None:
        semantics = statefile.save_semantics(path, result.origin, resume_point)
    statefile.save_state(path, statefile.PinnedState.from_result(result, semantics))


def _resolve_log_key(given: str | None, pinned: PinnedState | None) -> VerifierKey:
    """The log key: from ``--log-key``, else the state file; never from the data itself."""
    if given is None:
        if pinned is None:
            raise _BadArguments(
                _(
                    "no log key: give --log-key with the town's verifier key (obtained from "
                    "the town, not from the bundle), or --state with a file from an earlier run"
                )
            )
        return pinned.log_key
    log_key = logkeyfile.read_log_key(
        given, lambda path: read_limited(path, SMALL_LIMIT, _("the log key file"))
    )
    if pinned is not None and log_key != pinned.log_key:
        raise KeyFileError(
            _(
                "the log key given ({given}) is not the key pinned in the state file "
                "({pinned}); if the town really changed its key, check the new key with the "
                "town and start a new state file"
            ).format(given=log_key.encode(), pinned=pinned.log_key.encode())
        )
    return log_key


def _no_output(stderr: TextIO | None) -> int:
    """The command was started with its standard output closed: it refuses to start
    (exit 2), since no verdict it reached could be shown, and says so where it can."""
    if stderr is not None:
        stderr.write(
            _(
                "error: {program}'s standard output is closed, so its report would go "
                "nowhere: nothing was checked. Send the output to a file or to the "
                "terminal (for the exit status alone: > /dev/null)"
            ).format(program=PROGRAM)
            + "\n"
        )
    return EXIT_CANNOT_START


def _report_error(
    error: RedlistError | _BadArguments,
    json_mode: bool,
    stdout: TextIO,
    stderr: TextIO,
    directory: Path | None = None,
) -> int:
    """The one place where errors become output and an exit status. ``directory`` is the
    bundle's, whose publicity.csv may give the masked name of the resident concerned."""
    if isinstance(error, VerificationError):
        found = failure_of(error)
        if directory is not None:
            from redlist.verifier.explain import with_masked_names  # on failure (ADR 0041)

            found = with_masked_names(found, directory)
        if json_mode:
            stdout.write(json.dumps(failure_json(found), ensure_ascii=False) + "\n")
            # Whoever reads only stderr (a script's log) gets the same advice.
            stderr.write(
                _("{program}: verification failed ({kind}). {advice}").format(
                    program=PROGRAM, kind=found.kind, advice=_(advice(found.kind))
                )
                + "\n"
            )
        else:
            stdout.write(failure_text(found))
        return EXIT_FAILED
    message = i18n.in_words(error)
    if json_mode:
        stdout.write(json.dumps(cannot_start_json(message), ensure_ascii=False) + "\n")
    else:
        # "cannot reach the node ..." says it already: no "cannot verify: cannot ...".
        template = (
            _("{program}: {message}")
            if message.startswith(("cannot ", _("cannot ")))
            else _("{program}: cannot verify: {message}")
        )
        stderr.write(template.format(program=PROGRAM, message=message) + "\n")
    return EXIT_CANNOT_START


if __name__ == "__main__":
    sys.exit(main())
