"""Where the audited bytes come from, and the audit loop that feeds them to the Auditor.

A ``Source`` hands over what a log shows: the signed checkpoint, where the data
starts (and the compact range before it), and each leaf's exact bytes. ``audit``
runs the same sequence for every source: checkpoint first, then the leaves, then
the totals. ``BundleSource`` reads an exported bundle directory (DESIGN 3.6); a
source that asks a node over gRPC plugs in the same way.

Errors: data that is wrong is a ``VerificationError`` (exit 1), data that cannot
be read at all (missing directory or file, I/O failure) a ``SourceError`` (exit 2).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger import bundle
from redlist.ledger.errors import (
    FormatError,
    NoteError,
    RedlistError,
    SourceError,
    VerificationError,
)
from redlist.ledger.i18n import N_, _
from redlist.ledger.merkle import CompactRange
from redlist.ledger.note.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.note.signed import Note
from redlist.ledger.sigschedule import SignatureScheduler, check_leaves
from redlist.verifier.audit import Auditor, Observer
from redlist.verifier.failure import AuditFailed, Failure
from redlist.verifier.files import NOTE_LIMIT, SMALL_LIMIT, open_regular, read_limited
from redlist.verifier.results import AuditResult, ResumePoint, TrustedHead

#: Bytes read from the leaves file at a time.
READ_SIZE = 1 << 20
#: Leaves per chunk whose signatures are verified together, and chunks out at once:
#: with three (some 3 MiB of readings more than two), the workers' queue still holds
#: a chunk while the auditor applies one, from the small first chunks on (1% sooner
#: on the 100,005-entry bench bundle; four gained nothing more).
CHUNK_SIZE = 2048
IN_FLIGHT = 3

#: ``progress(done, total)``: entries checked so far and entries to check.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Opening:
    """What a source shows before its leaves: the checkpoint and where the data starts."""

    #: Verified with the log key as the source read it.
    checkpoint: SignedCheckpoint
    start: int
    end: int
    left: CompactRange | None = None
    #: Checkpoints the source itself carries that the log must extend (already verified).
    trusted: tuple[TrustedHead, ...] = ()


class Source(ABC):
    """A log to audit. ``open`` first, then ``leaves``, then ``close``."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data comes from, for messages ("bundle /path", "node host:port")."""

    @abstractmethod
    def open(self, log_key: VerifierKey) -> Opening:
        """Read and verify the checkpoint, then read what comes before the leaves.

        Raises ``SourceError`` when it cannot be read and ``VerificationError``
        when what was read is wrong (a checkpoint that does not verify with
        ``log_key`` fails the check ``checkpoint``).
        """

    @abstractmethod
    def leaves(self) -> Iterator[bytes]:
        """Each leaf's exact bytes from ``start`` on, in order.

        Raises ``FormatError`` where the data cannot be split into leaves (it is
        reported at the seq of the next leaf) and ``SourceError`` on I/O failure.
        """

    def close(self) -> None:  # noqa: B027 - most sources have nothing to release
        """Release what the source holds."""


@dataclass(frozen=True)
class Audited:
    """An audit's result and, after a full (or resumed) audit, where a later one resumes."""

    result: AuditResult
    resume_point: ResumePoint | None


def audit(
    source: Source,
    log_key: VerifierKey,
    *,
    keep_statements_for: str | None = None,
    trusted: Sequence[TrustedHead] = (),
    progress: Progress | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    resume: ResumePoint | None = None,
    partial_ok: bool = False,
    observer: Observer | None = None,
) -> Audited:
    """Audit what ``source`` shows against ``log_key`` and the ``trusted`` heads.

    Data that starts after entry 0 is audited in full when ``resume`` (the state an
    earlier audit reached) ends exactly where the data starts. Without it, such data
    can be checked only for its structure and hashes, which is refused (SourceError:
    the check cannot start) unless ``partial_ok`` says that is what the caller wants.
    ``observer`` sees every entry the audit accepts (``Auditor``).
    """
    auditor: Auditor | None = None
    try:
        opening = source.open(log_key)
        resuming = resume is not None and opening.start > 0 and resume.size == opening.start
        left = opening.left
        if (
            resuming
            and resume is not None
            and left is not None
            and left.hashes != resume.tree.hashes
        ):
            raise VerificationError(
                "consistency",
                f"the entries before {opening.start} that this data builds on (its 'left' "
                "hashes) are not the ones verified earlier: the history was rewritten",
            )
        auditor = Auditor(
            log_key,
            keep_statements_for=keep_statements_for,
            left=None if resuming else opening.left,
            resume=resume if resuming else None,
            trusted=(*trusted, *opening.trusted),
            observer=observer,
        )
        if observer is not None and resume is not None and opening.start != resume.size:
            # Monthly bundles in sequence (--publicity): a gap or an overlap is a defect.
            raise VerificationError(
                "month",
                f"{source.describe()} starts at entry {opening.start}, but the entries "
                f"verified before (the state file) end at entry {resume.size}: the monthly "
                "bundles do not follow one another (a month skipped or repeated?)",
            )
        # The checkpoint's signature, origin and fit with the trusted heads come
        # first, so a forged checkpoint or a rollback is refused before any leaf.
        auditor.check_checkpoint(opening.checkpoint)
        if opening.start > 0 and not resuming and not partial_ok and resume is not None:
            raise SourceError(
                _(
                    "{source} starts at entry {start}, but the entries verified "
                    "before (the state file) end at entry {size}: verify the "
                    "bundles in between first, in order, with the same --state "
                    "FILE"
                ).format(source=source.describe(), start=opening.start, size=resume.size)
            )
        if opening.start > 0 and not resuming and not partial_ok:
            raise SourceError(
                _(
                    "{source} starts at entry {start}: its signatures and "
                    "balances depend on every entry before it. Verify the "
                    "earlier entries first with --state FILE (the same file for "
                    "every month), or pass --structure-only to check only this "
                    "part's order, hash chain and Merkle root"
                ).format(source=source.describe(), start=opening.start)
            )
        total = opening.end - opening.start
        try:
            done = feed_leaves(
                auditor,
                source.leaves(),
                total=total,
                workers=workers,
                executor=executor,
                progress=progress,
            )
        except FormatError as exc:
            raise auditor.fail_at_next("format", str(exc)) from None
        result = auditor.finish(opening.checkpoint)
        if progress is not None:
            progress(done, total)
        full = result.balances_recomputed and result.checkpoint.size > 0
        point = auditor.resume_point() if full else None
        return Audited(result, point)
    except AuditFailed:
        raise
    except VerificationError as error:
        if auditor is None:
            raise AuditFailed(Failure(error)) from None
        raise AuditFailed(auditor.explain(_confirmed(auditor, source, error))) from None
    finally:
        source.close()


def origin_named(checkpoint_bytes: bytes) -> str | None:
    """The origin of a checkpoint whose first signature names the same log; None if it
    cannot be read or the two differ (a changed origin line: tampering, reported as such).

    Such a checkpoint, of another log than the key's, is the wrong key, or the wrong
    bundle or node, which the auditor can put right: not a verdict on the data (exit 2). One
    changed byte cannot make it: the origin and the signature line would both change.
    """
    try:
        note = Note.parse(checkpoint_bytes)
        origin = Checkpoint.from_text(note.text).origin
    except (NoteError, ValueError):
        return None
    return origin if note.signatures[0].name == origin else None


def _confirmed(auditor: Auditor, source: Source, error: VerificationError) -> VerificationError:
    """``auditor.confirm_signed`` with the leaves after the failed entry, read again
    from ``source``; ``error`` as it is when they cannot be read (it was found first)."""
    if error.seq is None or error.seq < auditor.start:
        return error
    try:
        later = itertools.islice(source.leaves(), error.seq - auditor.start + 1, None)
        return auditor.confirm_signed(error, later)
    except (RedlistError, OSError):
        return error


def feed_leaves(
    auditor: Auditor,
    leaves: Iterable[bytes],
    *,
    total: int,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> int:
    """Run ``leaves`` (``total`` of them expected) through ``auditor``, verifying their
    signatures ahead in parallel; the number read.

    Signatures are verified on ``executor`` when given (the caller's; ``workers``
    should be its size), else on worker processes for a long log and on threads
    otherwise (``SignatureScheduler.for_entries``). An error the stream raises is
    raised once every leaf before it was checked.
    """
    if executor is not None:
        scheduler = SignatureScheduler(workers, executor=executor)
    else:
        scheduler = SignatureScheduler.for_entries(
            total if auditor.checks_signatures else 0, workers
        )
    if progress is not None:
        progress(0, total)
        leaves = _reporting(leaves, total, progress)
    with scheduler:
        return check_leaves(
            auditor, leaves, scheduler, chunk_size=CHUNK_SIZE, in_flight=IN_FLIGHT, total=total
        )


def _reporting(leaves: Iterable[bytes], total: int, progress: Progress) -> Iterator[bytes]:
    for done, leaf in enumerate(leaves, start=1):
        yield leaf
        if done % 1024 == 0:
            progress(done, total)


#: ``TrustedHead.source`` of a bundle's previous checkpoint (translated where shown).
PREVIOUS_CHECKPOINT_SOURCE = N_("the bundle's previous-checkpoint file")


class BundleSource(Source):
    """An exported bundle directory (DESIGN 3.6); files it does not know are ignored."""

    def __init__(self, directory: Path | str) -> None:
        self._directory = Path(directory)
        self._manifest: bundle.Manifest | None = None

    def describe(self) -> str:
        return _("bundle {directory}").format(directory=self._directory)

    def open(self, log_key: VerifierKey) -> Opening:
        try:
            is_directory = self._directory.is_dir()
        except (OSError, ValueError) as exc:
            raise SourceError(
                _("cannot open the bundle directory {directory}: {exc}").format(
                    directory=self._directory, exc=exc
                )
            ) from None
        if not is_directory:
            raise SourceError(
                _("{directory} is not a directory (expected a bundle)").format(
                    directory=self._directory
                )
            )
        checkpoint_bytes = self._read(bundle.CHECKPOINT_FILE)
        manifest_bytes = self._read(bundle.MANIFEST_FILE)
        # The signature first: nothing else in the bundle is worth reading if it fails.
        try:
            checkpoint = open_checkpoint(checkpoint_bytes, log_key)
        except NoteError as exc:
            origin = origin_named(checkpoint_bytes)
            if origin is not None and origin != log_key.name:
                raise SourceError(
                    _(
                        "{directory} is a bundle of log {origin}, but the log key given is of "
                        "log {name}: verify it with the log key of {origin} (the log.pub of "
                        "that town's node), or check that this is the bundle you meant"
                    ).format(directory=self._directory, origin=origin, name=log_key.name)
                ) from None
            raise VerificationError(
                "checkpoint", f"the checkpoint does not verify: {exc}"
            ) from None
        try:
            manifest = bundle.decode_manifest(manifest_bytes)
        except FormatError as exc:
            raise VerificationError("manifest", str(exc)) from None
        if manifest.origin != checkpoint.origin:
            raise VerificationError(
                "manifest",
                f"the manifest names log {manifest.origin!r} but the checkpoint is for "
                f"{checkpoint.origin!r}",
            )
        if manifest.end != checkpoint.size:
            raise VerificationError(
                "manifest",
                f"the manifest says the bundle ends at entry {manifest.end} but the "
                f"checkpoint covers {checkpoint.size} entries",
            )
        self._manifest = manifest
        return Opening(
            checkpoint=checkpoint,
            start=manifest.start,
            end=manifest.end,
            left=self._left(manifest),
            trusted=self._previous_checkpoint(log_key),
        )

    def leaves(self) -> Iterator[bytes]:
        if self._manifest is None:
            raise SourceError(_("the bundle must be opened before its leaves are read"))
        decoder = bundle.LeafStreamDecoder(self._manifest.start)
        path = self._directory / bundle.LEAVES_FILE
        try:
            stream = open_regular(path, "the leaves file")
        except FileNotFoundError:
            raise SourceError(
                _("the bundle has no {LEAVES_FILE} file ({path})").format(
                    LEAVES_FILE=bundle.LEAVES_FILE, path=path
                )
            ) from None
        except OSError as exc:
            raise SourceError(
                _("cannot read {path}: {value}").format(path=path, value=exc.strerror or exc)
            ) from None
        with stream:
            while True:
                try:
                    chunk = stream.read(READ_SIZE)
                except OSError as exc:
                    raise SourceError(
                        _("cannot read {path}: {value}").format(
                            path=path, value=exc.strerror or exc
                        )
                    ) from None
                if not chunk:
                    break
                yield from decoder.feed(chunk)
        decoder.finish()

    def _left(self, manifest: bundle.Manifest) -> CompactRange | None:
        path = self._directory / bundle.LEFT_FILE
        if manifest.start == 0:
            if path.exists():
                raise VerificationError(
                    "left",
                    "the bundle starts at entry 0 yet has a left file: the manifest or the "
                    "left file is wrong",
                )
            return None
        if not path.exists():
            # The manifest and the files disagree: a defect of the bundle, not a missing input.
            raise VerificationError(
                "left",
                f"the manifest says the bundle starts at entry {manifest.start}, but there is "
                f"no {bundle.LEFT_FILE} file with the tree before it",
            )
        data = self._read(bundle.LEFT_FILE)
        try:
            return bundle.decode_left(data, manifest.start)
        except FormatError as exc:
            raise VerificationError("left", str(exc)) from None

    def _previous_checkpoint(self, log_key: VerifierKey) -> tuple[TrustedHead, ...]:
        path = self._directory / bundle.PREVIOUS_CHECKPOINT_FILE
        if not path.exists():
            return ()
        try:
            previous = open_checkpoint(self._read(bundle.PREVIOUS_CHECKPOINT_FILE), log_key)
        except NoteError as exc:
            raise VerificationError(
                "previous-checkpoint", f"the previous checkpoint does not verify: {exc}"
            ) from None
        source = PREVIOUS_CHECKPOINT_SOURCE
        return (TrustedHead(previous.size, previous.root, source),)

    def _read(self, name: str) -> bytes:
        path = self._directory / name
        limit = NOTE_LIMIT if name in _NOTE_FILES else SMALL_LIMIT
        try:
            return read_limited(path, limit, _("the bundle's {name} file").format(name=name))
        except FileNotFoundError:
            raise SourceError(
                _("the bundle has no {name} file ({path})").format(name=name, path=path)
            ) from None


#: The bundle files that hold a signed note; every other small file is far smaller.
_NOTE_FILES = frozenset({bundle.CHECKPOINT_FILE, bundle.PREVIOUS_CHECKPOINT_FILE})


__all__ = ["READ_SIZE", "BundleSource", "Opening", "Progress", "Source", "audit", "feed_leaves"]
