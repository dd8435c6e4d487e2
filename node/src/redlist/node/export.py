"""Write a bundle (DESIGN 3.6) from a log: what auditors verify offline.

The exporter reads one signed checkpoint and then exactly the leaves it covers,
so a node may keep appending while an export runs (open the log read-only); the
bundle is the log as of that checkpoint. Leaves are streamed to disk one at a
time, so memory stays flat however long the log.

A bundle is assembled in a hidden staging directory next to its destination
and renamed into place only when every file is complete and flushed to disk: a
crash or a refused export never leaves a half-written bundle under the
destination's name. Before the rename the exporter recomputes the Merkle root
of the leaves it wrote and compares it with the checkpoint's, so a damaged store
is reported here instead of being handed to auditors.

With ``texts``, the free texts the node holds for the bundle's entries go to a texts
file of their own (``textcommit``'s format): personal data, readable by its owner only,
and never inside the bundle, which is public (a folder published whole must not carry
every note unmasked). It is written beside its destination and linked into place once
the bundle is, so neither appears without the other, and an existing file is never
replaced.

The bundle's checkpoint carries the witnesses' cosignatures when the node has
collected them for exactly that checkpoint (``DIR/cosigned-checkpoint``, kept by
:mod:`redlist.node.cosigning`); otherwise it carries the log's signature only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger import bundle, merkle
from redlist.ledger.errors import IntegrityError, StoreError
from redlist.ledger.i18n import _
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.syncdir import sync_directory
from redlist.ledger.textcommit import encode_texts_file
from redlist.node.publicity import Publicity
from redlist.node.texts import bundle_texts

# Leaves are small (typically 200-400 bytes); a large buffer keeps writes few.
_WRITE_BUFFER = 1 << 20
_BUNDLE_DIR_MODE = 0o755
#: Personal data (texts.jsonl): its owner's alone.
_PRIVATE_FILE_MODE = 0o600


@dataclass(frozen=True)
class ExportResult:
    """Where a bundle was written, what it holds and the checkpoint it ends at."""

    path: Path
    manifest: bundle.Manifest
    checkpoint: SignedCheckpoint
    #: How many free texts the texts file holds (None: not written).
    texts: int | None = None
    #: Where the texts file was written (None: not written).
    texts_path: Path | None = None


def export_full(
    log: Log,
    out: Path,
    cosigned: SignedCheckpoint | None = None,
    *,
    texts: Path | None = None,
    texts_out: Path | None = None,
) -> ExportResult:
    """Write a full bundle of ``log`` (leaves ``[0, end)``) to the new directory ``out``.

    ``out`` must not exist or be an empty directory; its parent is created if
    needed. ``cosigned`` is the cosigned checkpoint kept beside the log: written
    instead of the plain one when its text is the latest checkpoint's. Raises
    ``StoreError`` when ``out`` is taken or cannot be written and
    ``IntegrityError`` when the stored leaves do not match the checkpoint. ``texts``:
    the data directory whose free texts go to the new file ``texts_out``, outside ``out``.
    """
    _check_destination(out)
    check_texts_destination(out, texts, texts_out)
    # Verified with the log's own key (IntegrityError if not); its size is the end.
    checkpoint = log.checkpoint()
    if cosigned is not None and cosigned.text == checkpoint.text:
        checkpoint = cosigned
    manifest = bundle.Manifest(origin=log.origin, start=0, end=checkpoint.size)
    placed: list[_StagedTexts] = []
    with _staging_with_texts(out, log, manifest, texts, texts_out, placed) as staging:
        root = _write_leaves(log, staging / bundle.LEAVES_FILE, manifest.start, manifest.end)
        if root != checkpoint.root:
            raise IntegrityError(
                _(
                    "the stored leaves of log {origin} do not match its checkpoint at size {size}: "
                    "the store is damaged; nothing was exported"
                ).format(origin=log.origin, size=checkpoint.size)
            )
        _write_file(staging / bundle.CHECKPOINT_FILE, checkpoint.to_bytes())
        _write_file(staging / bundle.MANIFEST_FILE, bundle.encode_manifest(manifest))
    return _finished(ExportResult(out, manifest, checkpoint), placed)


def export_month(
    log: Log,
    out: Path,
    publicity: Publicity,
    csv_bytes: bytes,
    html_text: str,
    cosigned: SignedCheckpoint | None = None,
    *,
    texts: Path | None = None,
    texts_out: Path | None = None,
) -> ExportResult:
    """Write month ``publicity.month``'s bundle (DESIGN 3.6) to the new directory ``out``.

    Leaves ``[start, end)`` of the month's range, ``left`` (when ``start`` > 0), the
    checkpoint at ``end`` (cosigned when ``cosigned`` is that checkpoint),
    ``previous-checkpoint`` (the one at ``start``, when ``start`` > 0) and the two
    publicity files; with ``texts``, the texts file ``texts_out`` of the month's entries.
    Errors as :func:`export_full`.
    """
    _check_destination(out)
    check_texts_destination(out, texts, texts_out)
    found = publicity.found
    checkpoint = found.checkpoint
    if cosigned is not None and cosigned.text == checkpoint.text:
        checkpoint = cosigned
    manifest = bundle.Manifest(origin=log.origin, start=found.start, end=found.end)
    left = log.compact_range(found.start)
    placed: list[_StagedTexts] = []
    with _staging_with_texts(out, log, manifest, texts, texts_out, placed) as staging:
        tree = merkle.CompactRange.from_hashes(left.end, left.hashes)
        _write_leaves(log, staging / bundle.LEAVES_FILE, found.start, found.end, tree)
        if tree.root() != checkpoint.root:
            raise IntegrityError(
                _(
                    "the stored leaves of log {origin} do not match its checkpoint at size {size}: "
                    "the store is damaged; nothing was exported"
                ).format(origin=log.origin, size=checkpoint.size)
            )
        if found.start > 0:
            _write_file(staging / bundle.LEFT_FILE, bundle.encode_left(left))
        if found.previous is not None:
            _write_file(staging / bundle.PREVIOUS_CHECKPOINT_FILE, found.previous.to_bytes())
        _write_file(staging / bundle.CHECKPOINT_FILE, checkpoint.to_bytes())
        _write_file(staging / bundle.MANIFEST_FILE, bundle.encode_manifest(manifest))
        _write_file(staging / bundle.PUBLICITY_CSV_FILE, csv_bytes)
        _write_file(staging / bundle.PUBLICITY_HTML_FILE, html_text.encode("utf-8"))
    return _finished(ExportResult(out, manifest, checkpoint), placed)


def _write_leaves(
    log: Log, path: Path, start: int, end: int, tree: merkle.CompactRange | None = None
) -> bytes:
    """Stream leaves ``[start, end)`` into ``path`` as bin frames, appending their hashes
    to ``tree`` (the range before ``start``; empty by default); return its root."""
    tree = merkle.CompactRange() if tree is None else tree
    leaves = log.leaves(start, end)
    try:
        with open(path, "xb", buffering=_WRITE_BUFFER) as handle:
            for _seq, leaf in leaves:
                handle.write(bundle.encode_leaf_frame(leaf))
                tree.append(merkle.leaf_hash(leaf))
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if isinstance(leaves, Generator):
            leaves.close()  # ends the read transaction at once when abandoned early
    return tree.root()


@dataclass(frozen=True)
class _StagedTexts:
    """A texts file written in full beside its destination, not yet in place."""

    temporary: Path
    destination: Path
    count: int

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.temporary.unlink()

    def place(self) -> None:
        """Link the file to its destination (never replacing one), then drop its
        temporary name."""
        try:
            os.link(self.temporary, self.destination)
        except OSError as error:
            self.discard()
            raise self._failed(error) from None
        self.discard()
        try:
            sync_directory(self.destination.parent)
        except OSError as error:
            raise self._failed(error) from None

    def _failed(self, error: OSError) -> StoreError:
        return StoreError(
            _(
                "the bundle was written, but the free texts could not be written to "
                "{path}: {strerror}; export again to a new --out and --texts"
            ).format(path=self.destination, strerror=error.strerror)
        )


def _stage_texts(
    log: Log, manifest: bundle.Manifest, texts: Path | None, texts_out: Path | None
) -> _StagedTexts | None:
    """The free texts of the bundle's entries (from the data directory ``texts``)
    written beside ``texts_out``; None without ``texts``."""
    if texts is None or texts_out is None:
        return None
    lines = list(bundle_texts(texts, log, manifest.start, manifest.end))
    try:
        descriptor, name = tempfile.mkstemp(
            prefix=f".{texts_out.name}.", suffix=".partial", dir=texts_out.parent
        )
    except OSError as error:
        raise StoreError(
            _("cannot write the free texts to {path}: {strerror}").format(
                path=texts_out, strerror=error.strerror
            )
        ) from None
    temporary = Path(name)
    try:
        with open(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), _PRIVATE_FILE_MODE)
            handle.write(encode_texts_file(lines))
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise StoreError(
                _("cannot write the free texts to {path}: {strerror}").format(
                    path=texts_out, strerror=error.strerror
                )
            ) from None
        raise
    return _StagedTexts(temporary, texts_out, len(lines))


@contextlib.contextmanager
def _staging_with_texts(
    out: Path,
    log: Log,
    manifest: bundle.Manifest,
    texts: Path | None,
    texts_out: Path | None,
    placed: list[_StagedTexts],
) -> Iterator[Path]:
    """``_staging(out)``, the texts file (with ``texts``) written beside ``texts_out``
    once the block has written the bundle, and put in ``placed`` once the bundle is in
    place; removed if the bundle is not."""
    staged: _StagedTexts | None = None
    try:
        with _staging(out) as staging:
            yield staging
            staged = _stage_texts(log, manifest, texts, texts_out)
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    if staged is not None:
        placed.append(staged)


def _finished(result: ExportResult, placed: list[_StagedTexts]) -> ExportResult:
    """``result``, with the staged texts file put in place (the bundle is in place)."""
    if not placed:
        return result
    staged = placed[0]
    staged.place()
    return dataclasses.replace(result, texts=staged.count, texts_path=staged.destination)


def check_texts_destination(out: Path, texts: Path | None, texts_out: Path | None) -> None:
    """The texts file goes to a new file outside the bundle ``out``, in a directory that
    exists (``StoreError`` otherwise); nothing to check without ``texts``."""
    if texts is None:
        return
    if texts_out is None:
        raise StoreError(_("say where the free texts go: --texts FILE, outside --out"))
    bundle_path, texts_path = out.resolve(), texts_out.resolve()
    if texts_path == bundle_path or bundle_path in texts_path.parents:
        raise StoreError(
            _(
                "--texts {path} lies inside the bundle {out}: the free texts are personal data "
                "and the bundle is public; write them outside it, e.g. --texts {example}"
            ).format(path=texts_out, out=out, example=_texts_example(out))
        )
    if os.path.lexists(texts_out):
        raise StoreError(
            _("{path} already exists; the free texts go to a new file (none is replaced)").format(
                path=texts_out
            )
        )
    if not texts_path.parent.is_dir():
        raise StoreError(
            _("the directory {directory} of --texts does not exist").format(
                directory=texts_out.parent
            )
        )


def _texts_example(out: Path) -> Path:
    """A texts file beside the bundle ``out``, for a message."""
    return out.parent / f"{out.name}-texts.jsonl"


def _write_file(path: Path, data: bytes, mode: int | None = None) -> None:
    with open(path, "xb") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _check_destination(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise StoreError(
            _("{out} already exists and is not a directory; choose a new --out").format(out=out)
        )
    if out.is_dir() and any(out.iterdir()):
        raise StoreError(
            _("{out} is not empty; a bundle is written only into a new or empty directory").format(
                out=out
            )
        )


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden directory next to ``out`` that becomes ``out`` when the block succeeds."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as error:
        raise StoreError(
            _("cannot create the bundle directory {out}: {strerror}").format(
                out=out, strerror=error.strerror
            )
        ) from None
    try:
        yield staging
        staging.chmod(_BUNDLE_DIR_MODE)  # mkdtemp makes it private; a bundle is public
        sync_directory(staging)
        # rename() replaces an empty directory atomically and refuses a non-empty one.
        os.rename(staging, out)
        sync_directory(out.parent)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise StoreError(
            _("cannot write the bundle to {out}: {strerror}").format(
                out=out, strerror=error.strerror
            )
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
