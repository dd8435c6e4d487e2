"""``redlist-node check``: check a data directory's stored log against itself."""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from redlist.ledger.errors import IntegrityError, NoteError, StoreError
from redlist.ledger.fullcheck import Progress, check_full
from redlist.ledger.i18n import N_, _
from redlist.ledger.logdir import LOG_PUB_NAME
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.progress import ProgressBar
from redlist.ledger.store import ENV_DIR_NAME, FORMAT_MARKER, LmdbStore, StoreReader
from redlist.ledger.tailcheck import TAIL_LEAVES, check_tail

DESCRIPTION = N_("""\
Check that the log stored in a data directory is sound: the hash chain, the
Merkle tree, the signed checkpoints and the metadata the node appends to.

Without --full the check is quick (the newest {TAIL_LEAVES} entries, the tree's
right border and the latest checkpoint: what the node checks when it starts).
With --full every entry is decoded and replayed, every Merkle node recomputed,
every checkpoint verified, and the balances, keys, rules and indexes re-derived
and compared with what is stored; a state record whose checksum does not match
is reported as damaged (the node stops taking entries when it reads one).

The directory is opened read-only, so the check may run while the node serves;
it reads one consistent snapshot. Exit status: 0 consistent, 1 a problem was
found (the report names the entry), 2 the directory could not be opened, 130
interrupted (Ctrl-C).""")

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_CANNOT_OPEN = 2
# A child that failed in an unexpected way (a bug: its traceback is on stderr).
_EXIT_CHILD_FAILED = 70


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help=_("check the stored log's integrity"),
        description=_(DESCRIPTION).format(TAIL_LEAVES=TAIL_LEAVES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help=_("check everything (every entry, node, checkpoint and balance), not only the head"),
    )
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Outcome:
    """What a check found: the exit status and the text to print (stdout, or stderr for 2)."""

    code: int
    text: str


def run(args: argparse.Namespace) -> int:
    with ProgressBar(sys.stderr if args.full else io.StringIO(), _("checking"), "") as bar:

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(done, total, _("checking {stage}").format(stage=stage))

        # The child draws the bar; the terminal line is shared, and erased here after it.
        outcome = isolated(
            lambda: check_data_dir(
                args.data, full=args.full, progress=progress if bar.shown else None
            ),
            args.data,
        )
    if outcome.code == EXIT_CANNOT_OPEN:
        raise StoreError(outcome.text)  # the CLI prints it and exits 2
    print(outcome.text)
    return outcome.code


def check_data_dir(data_dir: Path, *, full: bool, progress: Progress | None = None) -> Outcome:
    """Open ``data_dir``'s ledger read-only and check it; never raises a ``RedlistError``."""
    env_dir = data_dir / ENV_DIR_NAME
    if not data_dir.exists():
        return Outcome(
            EXIT_CANNOT_OPEN,
            _("the data directory {data_dir} does not exist").format(data_dir=data_dir),
        )
    if not env_dir.is_dir():
        return Outcome(
            EXIT_CANNOT_OPEN,
            _("{data_dir} is not a redlist data directory (it has no {ENV_DIR_NAME})").format(
                data_dir=data_dir, ENV_DIR_NAME=ENV_DIR_NAME
            ),
        )
    try:
        published = _published_key(data_dir)
        store = LmdbStore.open(env_dir, readonly=True)
    except IntegrityError as error:  # the file itself is damaged (a truncated file)
        return _problem(data_dir, error.diagnostics())
    except StoreError as error:
        return Outcome(EXIT_CANNOT_OPEN, error.diagnostics())
    try:
        with store.read() as reader:
            if full:
                return _full(data_dir, reader, published, progress)
            return _quick(data_dir, reader)
    except StoreError as error:  # LMDB failed while reading pages it had opened
        return _problem(
            data_dir,
            _("the database could not be read: {diagnostics}").format(
                diagnostics=error.diagnostics()
            ),
        )
    finally:
        store.close()


def _full(
    data_dir: Path,
    reader: StoreReader,
    published: VerifierKey | None,
    progress: Progress | None,
) -> Outcome:
    report = check_full(reader, verifier_key=published, progress=progress)
    if report.problem is not None:
        return _problem(data_dir, report.problem.describe())
    return Outcome(EXIT_OK, report.summary())


def _quick(data_dir: Path, reader: StoreReader) -> Outcome:
    if reader.format_marker() != FORMAT_MARKER:
        return _problem(data_dir, _("the ledger's metadata lacks the redlist format marker"))
    try:
        check_tail(reader, data_dir=data_dir)
    except IntegrityError as error:
        return _problem(data_dir, error.diagnostics())
    size = reader.size()
    newest = min(size, TAIL_LEAVES)
    return Outcome(
        EXIT_OK,
        _(
            "Checked the newest {newest:,} of {size:,} entries, the Merkle tree's head and "
            "the latest checkpoint: consistent. This was a quick check; --full checks every "
            "entry, the whole tree, every checkpoint and the balances."
        ).format(newest=newest, size=size),
    )


def _problem(data_dir: Path, description: str) -> Outcome:
    return Outcome(
        EXIT_PROBLEM,
        _("Problem found in {data_dir}: {description}").format(
            data_dir=data_dir, description=description
        ),
    )


def _published_key(data_dir: Path) -> VerifierKey | None:
    """The log key published next to the ledger (``log.pub``), when there is one."""
    path = data_dir / LOG_PUB_NAME
    if not path.is_file():
        return None
    try:
        return VerifierKey.parse(path.read_text(encoding="utf-8").strip())
    except OSError as error:
        raise StoreError(
            _("cannot read the log's published key {path}: {strerror}").format(
                path=path, strerror=error.strerror
            )
        ) from None
    except UnicodeDecodeError:
        raise StoreError(
            _("the log's published key {path} is not UTF-8 text").format(path=path)
        ) from None
    except NoteError as error:
        raise StoreError(
            _("the log's published key {path} is not a verifier key: {diagnostics}").format(
                path=path, diagnostics=error.diagnostics()
            )
        ) from None


# ---------------------------------------------------------------------------
# Running the check in a child process


def isolated(work: Callable[[], Outcome], data_dir: Path) -> Outcome:
    """Run ``work`` (the check of ``data_dir``) in a forked child; return its outcome.

    LMDB trusts its file: some damage (a page whose internal offsets were changed)
    makes it read outside the mapped file, and the process dies of SIGBUS or SIGSEGV
    instead of raising. The parent survives that and reports it as a damaged file.
    Ctrl-C stops the child and raises ``KeyboardInterrupt`` here.
    Without ``fork`` (not POSIX) the work runs in this process.
    """
    if not hasattr(os, "fork"):
        return work()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        faulthandler.disable()  # a crash is reported by the parent, in words
        code = 0
        try:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(json.dumps(asdict(work())).encode("utf-8"))
        except BaseException:  # a bug: show it, and let the parent say so
            traceback.print_exc()
            code = _EXIT_CHILD_FAILED
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            payload = pipe.read()
        _pid, status = os.waitpid(pid, 0)
    except KeyboardInterrupt:
        # Stop the child too, then let the command line report Ctrl-C (exit 130).
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        raise
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return Outcome(
            EXIT_PROBLEM,
            _(
                "Problem found in {data_dir}: reading the ledger database crashed the check "
                "({name}). LMDB cannot read the file safely: data.mdb is damaged below the level "
                "of the log's own records. Restore it from a backup or a mirror."
            ).format(data_dir=data_dir, name=name),
        )
    if os.WEXITSTATUS(status) != 0 or not payload:
        return Outcome(EXIT_CANNOT_OPEN, _("the check failed unexpectedly (see the message above)"))
    value = json.loads(payload)
    return Outcome(int(value["code"]), str(value["text"]))
