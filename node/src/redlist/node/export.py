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

With ``texts``, the bundle also gets ``texts.jsonl`` (``textcommit.TEXTS_FILE``): the
free texts the node holds for its entries, personal data, written readable by its owner
only.

The bundle's checkpoint carries the witnesses' cosignatures when the node has
collected them for exactly that checkpoint (``DIR/cosigned-checkpoint``, kept by
:mod:`redlist.node.cosigning`); otherwise it carries the log's signature only.
"""

from __future__ import annotations

import contextlib
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
from redlist.ledger.textcommit import TEXTS_FILE, encode_texts_file
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
    #: How many free texts ``texts.jsonl`` holds (None: not written).
    texts: int | None = None


def export_full(
    log: Log, out: Path, cosigned: SignedCheckpoint | None = None, *, texts: Path | None = None
) -> ExportResult:
    """Write a full bundle of ``log`` (leaves ``[0, end)``) to the new directory ``out``.

    ``out`` must not exist or be an empty directory; its parent is created if
    needed. ``cosigned`` is the cosigned checkpoint kept beside the log: written
    instead of the plain one when its text is the latest checkpoint's. Raises
    ``StoreError`` when ``out`` is taken or cannot be written and
    ``IntegrityError`` when the stored leaves do not match the checkpoint. ``texts``:
    the data directory whose free texts go into ``texts.jsonl``.
    """
    _check_destination(out)
    # Verified with the log's own key (IntegrityError if not); its size is the end.
    checkpoint = log.checkpoint()
    if cosigned is not None and cosigned.text == checkpoint.text:
        checkpoint = cosigned
    manifest = bundle.Manifest(origin=log.origin, start=0, end=checkpoint.size)
    with _staging(out) as staging:
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
        count = None
        if texts is not None:
            lines = list(bundle_texts(texts, log, manifest.start, manifest.end))
            _write_file(staging / TEXTS_FILE, encode_texts_file(lines), mode=_PRIVATE_FILE_MODE)
            count = len(lines)
    return ExportResult(out, manifest, checkpoint, count)


def export_month(
    log: Log,
    out: Path,
    publicity: Publicity,
    csv_bytes: bytes,
    html_text: str,
    cosigned: SignedCheckpoint | None = None,
    *,
    texts: Path | None = None,
) -> ExportResult:
    """Write month ``publicity.month``'s bundle (DESIGN 3.6) to the new directory ``out``.

    Leaves ``[start, end)`` of the month's range, ``left`` (when ``start`` > 0), the
    checkpoint at ``end`` (cosigned when ``cosigned`` is that checkpoint),
    ``previous-checkpoint`` (the one at ``start``, when ``start`` > 0) and the two
    publicity files; with ``texts``, ``texts.jsonl`` of the month's entries. Errors as
    :func:`export_full`.
    """
    _check_destination(out)
    found = publicity.found
    checkpoint = found.checkpoint
    if cosigned is not None and cosigned.text == checkpoint.text:
        checkpoint = cosigned
    manifest = bundle.Manifest(origin=log.origin, start=found.start, end=found.end)
    left = log.compact_range(found.start)
    with _staging(out) as staging:
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
        count = None
        if texts is not None:
            lines = list(bundle_texts(texts, log, manifest.start, manifest.end))
            _write_file(staging / TEXTS_FILE, encode_texts_file(lines), mode=_PRIVATE_FILE_MODE)
            count = len(lines)
    return ExportResult(out, manifest, checkpoint, count)


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
