"""Full bundles of many awards for the audit benchmarks, written fast and kept between runs.

A bundle is what ``redlist-node export --full`` writes (DESIGN 3.6: ``manifest``,
``leaves``, ``checkpoint``; no ``left``, it starts at 0): the bench town's genesis,
its grid key and rule (``ingest.BenchTown``), then ``awards`` awards to ``accounts``
residents in turn, every one signed by the grid key. The ids come from a counter, so
the first ``n`` awards of every bundle with the same ``accounts`` are the same awards:
a smaller bundle is cut from a larger one already written (its first leaves, a new
checkpoint) instead of being signed again.

Signing is the slow part (about 25 µs an award on one core): it runs on every core,
a bounded number of chunks at a time, while this process chains the leaves, hashes
them into the tree and writes them. Ten million awards take some minutes and ~2 GB.

Bundles are kept under ``$REDLIST_BENCH_BUNDLES`` (default: ``redlist-bench-bundles``
in the temporary directory, ``TMPDIR``), one directory per (awards, accounts), made
under a temporary name and renamed when complete, so an interrupted run leaves
nothing a later run would trust. Delete the directory to free the disk.

Run alone (as ``make bench`` does) it writes or finds one bundle and prints its JSON::

    python benchmarks/_bundles.py [--awards 10000] [--accounts 1000]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from _limits import core_count
from ingest import ORIGIN, BenchTown

from redlist.ledger import bundle, merkle
from redlist.ledger.entry import ZERO_HASH, Leaf
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner

#: The node's clock moves on this much between two leaves (ms).
STEP_MS = 10
#: Awards signed per task when a bundle is written on several processes.
SIGN_CHUNK = 20_000
#: Bumped when what a bundle holds changes, so older cached bundles are not used.
_LAYOUT = 2
#: The entries before the awards: the genesis and ``BenchTown.setup`` (three keys, a rule).
HEAD_ENTRIES = 5


@dataclass(frozen=True)
class GeneratedBundle:
    """A full bundle on disk: its directory, its size, and the file of its log key."""

    directory: Path
    size: int

    @property
    def key_file(self) -> Path:
        return self.directory.parent / "log.vkey"


def cache_root() -> Path:
    default = Path(tempfile.gettempdir()) / "redlist-bench-bundles"
    return Path(os.environ.get("REDLIST_BENCH_BUNDLES", default))


def log_signer(town: BenchTown) -> NoteSigner:
    return NoteSigner(ORIGIN, town.log_key)


def _sign_awards(now_ms: int, first: int, count: int, accounts: int, head: int) -> list[bytes]:
    # A worker's own town: the keys are the same (from fixed seeds), the clock is set.
    # ``first``: the seq of the first award; ``head``: the entries before the awards.
    town = BenchTown()
    town.now_ms = now_ms
    town.skip_ids(first)
    return town.awards(count, accounts, first=first - head)


class _Writer:
    """Chains leaves onto a ``leaves`` file and the tree; writes the rest on ``close``."""

    def __init__(self, directory: Path, now_ms: int) -> None:
        directory.mkdir(parents=True)
        self.directory = directory
        self.now_ms = now_ms
        self.tree = merkle.CompactRange()
        self.prev = ZERO_HASH
        self.seq = 0
        self._file = open(directory / bundle.LEAVES_FILE, "wb")  # noqa: SIM115

    def envelopes(self, envelopes: list[bytes]) -> None:
        frames = []
        prev, seq, tree, now_ms = self.prev, self.seq, self.tree, self.now_ms
        for envelope in envelopes:
            leaf = Leaf(seq, now_ms + seq * STEP_MS, prev, envelope).to_bytes()
            prev = merkle.leaf_hash(leaf)
            tree.append(prev)
            frames.append(bundle.encode_leaf_frame(leaf))
            seq += 1
        self.prev, self.seq = prev, seq
        self._file.write(b"".join(frames))

    def close(self, signer: NoteSigner) -> None:
        self._file.close()
        manifest = bundle.Manifest(ORIGIN, 0, self.seq)
        (self.directory / bundle.MANIFEST_FILE).write_bytes(bundle.encode_manifest(manifest))
        checkpoint = sign_checkpoint(Checkpoint(ORIGIN, self.seq, self.tree.root()), signer)
        (self.directory / bundle.CHECKPOINT_FILE).write_bytes(checkpoint.to_bytes())
        key_file = self.directory.parent / "log.vkey"
        key_file.write_text(signer.verifier().encode() + "\n")


def write_bundle(directory: Path, town: BenchTown, awards: int, accounts: int) -> int:
    """Write the bundle of ``awards`` awards to ``accounts`` residents; its size."""
    writer = _Writer(directory, town.now_ms)
    head = [town.genesis(), *town.setup()]
    writer.envelopes(head)
    total = len(head) + awards
    starts = range(len(head), total, SIGN_CHUNK)
    counts = [min(SIGN_CHUNK, total - start) for start in starts]
    if awards <= SIGN_CHUNK or core_count() < 2:
        for start, count in zip(starts, counts, strict=True):
            writer.envelopes(_sign_awards(town.now_ms, start, count, accounts, len(head)))
    else:
        # A bounded number of chunks in flight: signed chunks never pile up in memory.
        with ProcessPoolExecutor(core_count()) as pool:
            pending: collections.deque[Future[list[bytes]]] = collections.deque()
            for start, count in zip(starts, counts, strict=True):
                pending.append(
                    pool.submit(_sign_awards, town.now_ms, start, count, accounts, len(head))
                )
                if len(pending) > 2 * core_count():
                    writer.envelopes(pending.popleft().result())
                    _progress(writer.seq, total)
            while pending:
                writer.envelopes(pending.popleft().result())
                _progress(writer.seq, total)
    writer.close(log_signer(town))
    return writer.seq


def _progress(seq: int, total: int) -> None:
    if seq % 1_000_000 < SIGN_CHUNK:
        print(f"  {seq:,} of {total:,} leaves written", file=sys.stderr)


def _cut(source: Path, directory: Path, size: int, signer: NoteSigner) -> None:
    """Write the bundle of the first ``size`` leaves of the bundle in ``source``."""
    decoder = bundle.LeafStreamDecoder()
    writer = _Writer(directory, 0)
    tree = writer.tree
    with open(source / bundle.LEAVES_FILE, "rb") as leaves, writer._file as out:
        while writer.seq < size:
            chunk = leaves.read(1 << 20)
            if not chunk:
                raise SystemExit(f"{source} holds fewer than {size} leaves")
            frames = []
            for leaf in decoder.feed(chunk)[: size - writer.seq]:
                tree.append(merkle.leaf_hash(leaf))
                frames.append(bundle.encode_leaf_frame(leaf))
                writer.seq += 1
            out.write(b"".join(frames))
    writer.close(signer)


def _name(awards: int, accounts: int) -> str:
    return f"v{_LAYOUT}-awards-{awards}-accounts-{accounts}"


def generated_bundle(awards: int, accounts: int) -> GeneratedBundle:
    """The cached bundle of ``awards`` awards to ``accounts`` residents, written if missing
    (cut from a larger cached bundle of the same residents when there is one)."""
    root = cache_root()
    place = root / _name(awards, accounts)
    size = awards + HEAD_ENTRIES
    if (place / "bundle" / bundle.CHECKPOINT_FILE).exists():
        return GeneratedBundle(place / "bundle", size)
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f"partial-{_name(awards, accounts)}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    larger = _larger(root, awards, accounts)
    town = BenchTown()
    if larger is not None:
        print(f"cutting {size:,} leaves from {larger}", file=sys.stderr)
        _cut(larger, scratch / "bundle", size, log_signer(town))
    else:
        print(f"writing a bundle of {awards:,} awards to {accounts:,} residents", file=sys.stderr)
        if write_bundle(scratch / "bundle", town, awards, accounts) != size:
            raise SystemExit(f"the bundle written does not hold {size} leaves")
    shutil.rmtree(place, ignore_errors=True)
    scratch.rename(place)
    return GeneratedBundle(place / "bundle", size)


def _larger(root: Path, awards: int, accounts: int) -> Path | None:
    best: tuple[int, Path] | None = None
    prefix = f"v{_LAYOUT}-awards-"
    suffix = f"-accounts-{accounts}"
    for place in root.glob(f"{prefix}*{suffix}"):
        count = place.name.removeprefix(prefix).removesuffix(suffix)
        if not count.isdigit() or int(count) <= awards:
            continue
        if (place / "bundle" / bundle.CHECKPOINT_FILE).exists() and (
            best is None or int(count) < best[0]
        ):
            best = (int(count), place / "bundle")
    return None if best is None else best[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--awards", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    generated = generated_bundle(args.awards, args.accounts)
    output = {
        "benchmark": "bundle",
        "directory": str(generated.directory),
        "entries": generated.size,
        "accounts": args.accounts,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(output))
    return 0


__all__ = ["STEP_MS", "GeneratedBundle", "cache_root", "generated_bundle", "write_bundle"]


if __name__ == "__main__":
    sys.exit(main())
