"""Many towns' logs at once: ``redlist-verify bundles DIR...`` (docs/adr/0037).

A county or a province audits hundreds of towns' bundles. Each bundle is audited
exactly as ``redlist-verify bundle DIR --log-key VKEY --json`` audits it, by
``audit_bundle``: one call per log, in a process of its own, returning that log's
JSON object. The calls are independent, so they run side by side, either on a pool
of at most one process per core (``run_here``) or as tasks on a Dask distributed
cluster (``redlist.verifier.cluster``); either way a log's object is the one a
single run prints, entry for entry.

The log keys come from outside the bundles (DESIGN 5): ``LogKeys`` maps each
origin to the verifier key string given for it (a C2SP verifier key is named after
its log's origin, so the key list needs no separate mapping). A bundle's checkpoint
names its origin on its first line; that line only *chooses* the key, which must
then verify the checkpoint, so a bundle cannot bring its own key.

A log's outcome is ``verified`` (exit status 0 of a single run), ``failed`` (1: a
defect in the data, the first bad entry named) or ``unchecked`` (2: the bundle
cannot be read, or no key was given for its origin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redlist.ledger import bundle, logkeyfile
from redlist.ledger.cores import available_cores
from redlist.ledger.errors import KeyFileError, NoteError, RedlistError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.sigworkers import tune_interpreter
from redlist.verifier import report
from redlist.verifier.failure import cannot_start_json, failure_json, failure_of
from redlist.verifier.files import NOTE_LIMIT, SMALL_LIMIT, read_limited
from redlist.verifier.source import BundleSource, audit

VERIFIED = "verified"
FAILED = "failed"
UNCHECKED = "unchecked"
#: The exit status of a single run with each outcome (DESIGN 5).
STATUS = {VERIFIED: 0, FAILED: 1, UNCHECKED: 2}
#: A file of log keys: a province's 1,800 towns take about 200 KB.
KEYS_LIMIT = 16 << 20


class BundlesArgumentError(RedlistError):
    """The bundles named cannot be audited at all (exit 2)."""


@dataclass(frozen=True)
class LogJob:
    """One bundle to audit and the verifier key string (from outside it) to audit it with."""

    bundle: str
    log_key: str


@dataclass(frozen=True)
class LogOutcome:
    """What the audit of one bundle found: its outcome and its single-run JSON object."""

    bundle: str
    origin: str
    outcome: str
    #: Exactly what ``redlist-verify bundle DIR --log-key VKEY --json`` prints.
    json: dict[str, Any]

    @property
    def status(self) -> int:
        return STATUS[self.outcome]

    def to_json(self) -> dict[str, Any]:
        """The single-run object with the bundle's path and the origin beside it."""
        return {"bundle": self.bundle, **self.json, "origin": self.origin}


def audit_bundle(job: LogJob) -> LogOutcome:
    """Audit one bundle as a single ``redlist-verify bundle --json`` run does, signatures
    verified on this process's own thread (the parallelism is one log per process).

    A module-level function of plain values, so that a process pool and a Dask
    worker can run it. Never raises for anything the bundle or the key holds.
    """
    tune_interpreter()
    log_key = VerifierKey.parse(job.log_key)
    try:
        audited = audit(BundleSource(job.bundle), log_key, workers=1)
    except VerificationError as error:
        from redlist.verifier.explain import with_masked_names  # on failure (ADR 0041)

        found = with_masked_names(failure_of(error), Path(job.bundle))
        return LogOutcome(job.bundle, log_key.name, FAILED, failure_json(found))
    except RedlistError as error:
        value = cannot_start_json(error.diagnostics())
        return LogOutcome(job.bundle, log_key.name, UNCHECKED, value)
    return LogOutcome(job.bundle, log_key.name, VERIFIED, report.result_json(audited.result))


def unchecked(directory: Path, origin: str, message: str) -> LogOutcome:
    """The outcome of a bundle that was never audited (``message`` says why)."""
    return LogOutcome(str(directory), origin, UNCHECKED, cannot_start_json(message))


class LogKeys:
    """The log keys an auditor was given, by origin (the key's name)."""

    def __init__(self, keys: Iterable[VerifierKey] = ()) -> None:
        self._keys: dict[str, VerifierKey] = {}
        for key in keys:
            self.add(key)

    @classmethod
    def load(cls, given: Sequence[str], files: Sequence[Path]) -> LogKeys:
        """From ``--log-key`` values (a key string or a file holding one) and ``--log-keys``
        files (one verifier key string a line; blank lines and ``#`` comments skipped)."""
        keys = cls(logkeyfile.read_log_key(text, _read_small) for text in given)
        for path in files:
            try:
                text = read_limited(path, KEYS_LIMIT, _("the log keys file")).decode("utf-8")
            except UnicodeDecodeError:
                raise KeyFileError(
                    _("the log keys file {path} is not UTF-8 text").format(path=path)
                ) from None
            except OSError as exc:
                raise KeyFileError(
                    _("cannot read the log keys file {path}: {value}").format(
                        path=path, value=exc.strerror or exc
                    )
                ) from None
            for number, line in enumerate(text.splitlines(), start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    keys.add(VerifierKey.parse(line))
                except NoteError as exc:
                    raise KeyFileError(
                        _("{path}, line {number}: not a log's verifier key string: {exc}").format(
                            path=path, number=number, exc=exc
                        )
                    ) from None
        if not keys._keys:
            raise KeyFileError(
                _(
                    "no log keys: give each town's verifier key with --log-key "
                    "VKEY (repeatable) or a file of them with --log-keys FILE, "
                    "obtained from the towns, never from the bundles"
                )
            )
        return keys

    def add(self, key: VerifierKey) -> None:
        known = self._keys.get(key.name)
        if known is not None and known != key:
            raise KeyFileError(
                _(
                    "two different keys were given for log {name}: {known} and "
                    "{key}; check with the town which one is its log key"
                ).format(name=key.name, known=known.encode(), key=key.encode())
            )
        self._keys[key.name] = key

    def get(self, origin: str) -> VerifierKey | None:
        return self._keys.get(origin)


def find_bundles(paths: Sequence[Path]) -> list[Path]:
    """The bundles named: each path is a bundle (it holds a manifest) or a directory whose
    subdirectories holding one are bundles, taken in name order. A path that is neither
    is a ``BundlesArgumentError``."""
    found: list[Path] = []
    for path in paths:
        if (path / bundle.MANIFEST_FILE).is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise BundlesArgumentError(
                _("{path} is not a directory (expected a bundle)").format(path=path)
            )
        inside = sorted(
            child for child in path.iterdir() if (child / bundle.MANIFEST_FILE).is_file()
        )
        if not inside:
            raise BundlesArgumentError(
                _(
                    "{path} is neither a bundle (it has no {MANIFEST_FILE}) nor "
                    "a directory of bundles"
                ).format(path=path, MANIFEST_FILE=bundle.MANIFEST_FILE)
            )
        found.extend(inside)
    return found


def plan(directories: Sequence[Path], keys: LogKeys) -> tuple[list[LogJob], list[LogOutcome]]:
    """A job per bundle whose origin has a key; an ``unchecked`` outcome for the others.

    The origin is the first line of the bundle's checkpoint. It only picks the key:
    that key must then verify the checkpoint, as in a single run.
    """
    jobs: list[LogJob] = []
    skipped: list[LogOutcome] = []
    for directory in directories:
        try:
            origin = _origin_line(directory)
        except RedlistError as error:
            skipped.append(unchecked(directory, "?", error.diagnostics()))
            continue
        key = keys.get(origin)
        if key is None:
            skipped.append(
                unchecked(
                    directory,
                    origin,
                    f"no log key was given for log {origin!r}, which {directory} names: "
                    "obtain the town's key and add it with --log-key or --log-keys",
                )
            )
            continue
        jobs.append(LogJob(str(directory), key.encode()))
    return jobs, skipped


def _origin_line(directory: Path) -> str:
    path = directory / bundle.CHECKPOINT_FILE
    try:
        data = read_limited(
            path, NOTE_LIMIT, _("the bundle's {name} file").format(name=bundle.CHECKPOINT_FILE)
        )
    except FileNotFoundError:
        raise BundlesArgumentError(
            _("the bundle has no {CHECKPOINT_FILE} file ({path})").format(
                CHECKPOINT_FILE=bundle.CHECKPOINT_FILE, path=path
            )
        ) from None
    return data.split(b"\n", 1)[0].decode("utf-8", errors="replace")


def run_here(
    jobs: Sequence[LogJob], processes: int | None = None, *, done: Callable[[], None] | None = None
) -> Iterator[LogOutcome]:
    """Audit ``jobs`` on at most ``processes`` worker processes (default and at most: one
    per core), yielding each outcome as it finishes; ``done`` is called after each."""
    if not jobs:
        return
    # Loaded here, not with the module: every verifier command loads this one, and only
    # this command starts a process pool (ADR 0041).
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    count = max(1, min(processes or available_cores(), available_cores(), len(jobs)))
    # Spawned, not forked: a worker starts clean whatever threads the caller runs.
    with ProcessPoolExecutor(count, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(audit_bundle, job) for job in jobs]):
            yield future.result()
            if done is not None:
                done()


def _read_small(path: Path) -> bytes:
    return read_limited(path, SMALL_LIMIT, _("the log key file"))


__all__ = [
    "FAILED",
    "UNCHECKED",
    "VERIFIED",
    "BundlesArgumentError",
    "LogJob",
    "LogKeys",
    "LogOutcome",
    "audit_bundle",
    "find_bundles",
    "plan",
    "run_here",
    "unchecked",
]
