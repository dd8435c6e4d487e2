"""Logs and bundles for verifier tests, built from the format alone.

Envelopes come from ``tests.builders.Town`` (signed bodies); leaves, the hash chain,
the Merkle root, the signed checkpoint and the bundle files are made here directly
with the pure core, the way an outsider reading DESIGN 3.6 would, so the verifier is
never checked only against the node's own export code. Nothing here enforces the
points rules: a test can append any entry, including ones a node would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.builders import Town, texts_of

from redlist.ledger import bundle, merkle
from redlist.ledger.entry import ZERO_HASH, Envelope, Leaf
from redlist.ledger.note.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from redlist.ledger.note.cosignature import cosign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.points import apply_entry
from redlist.ledger.state import MemoryState
from redlist.ledger.textcommit import TEXTS_FILE, BundleText, encode_texts_file

#: Node time between two entries of a built log (one hour, so statements span days).
STEP_MS = 3_600_000


@dataclass
class LogBuilder:
    """A log as a list of leaf bytes, appended without any rule checks."""

    town: Town
    leaves: list[bytes] = field(default_factory=list)

    def append(
        self,
        envelope: bytes,
        *,
        time: int | None = None,
        seq: int | None = None,
        prev: bytes | None = None,
    ) -> int:
        """Append ``envelope`` as the next leaf (``seq``/``prev``/``time`` overridable to
        build broken logs); the town's clock moves on by ``STEP_MS``. Returns the seq."""
        position = len(self.leaves)
        if prev is None:
            prev = merkle.leaf_hash(self.leaves[-1]) if self.leaves else ZERO_HASH
        leaf = Leaf(
            position if seq is None else seq,
            self.town.now_ms if time is None else time,
            prev,
            envelope,
        )
        self.leaves.append(leaf.to_bytes())
        self.town.now_ms += STEP_MS
        return position

    def extend(self, envelopes: list[bytes]) -> None:
        for envelope in envelopes:
            self.append(envelope)

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        return merkle.root_of([merkle.leaf_hash(leaf) for leaf in self.leaves[:size]])

    def checkpoint(self, size: int | None = None, root: bytes | None = None) -> SignedCheckpoint:
        """The signed checkpoint at ``size`` (default: every leaf)."""
        size = len(self.leaves) if size is None else size
        root = self.root(size) if root is None else root
        return sign_checkpoint(Checkpoint(self.town.origin, size, root), self.town.log_signer)

    def left(self, start: int) -> merkle.CompactRange:
        compact = merkle.CompactRange()
        compact.extend(merkle.leaf_hash(leaf) for leaf in self.leaves[:start])
        return compact

    def write_bundle(
        self,
        directory: Path,
        *,
        start: int = 0,
        end: int | None = None,
        previous: int | None = None,
        cosigners: Sequence[tuple[NoteSigner, int]] = (),
    ) -> Path:
        """Write the bundle of leaves ``[start, end)``; ``previous`` adds that size's
        checkpoint as ``previous-checkpoint`` (as a monthly bundle has); each of
        ``cosigners`` (a witness and a time) cosigns the bundle's checkpoint."""
        end = len(self.leaves) if end is None else end
        directory.mkdir(parents=True, exist_ok=True)
        manifest = bundle.Manifest(self.town.origin, start, end)
        (directory / bundle.MANIFEST_FILE).write_bytes(bundle.encode_manifest(manifest))
        checkpoint = self.checkpoint(end)
        for witness, timestamp in cosigners:
            checkpoint = cosign_checkpoint(checkpoint, witness, timestamp)
        (directory / bundle.CHECKPOINT_FILE).write_bytes(checkpoint.to_bytes())
        (directory / bundle.LEAVES_FILE).write_bytes(bundle.encode_leaves(self.leaves[start:end]))
        if start > 0:
            (directory / bundle.LEFT_FILE).write_bytes(bundle.encode_left(self.left(start)))
        if previous is not None:
            (directory / bundle.PREVIOUS_CHECKPOINT_FILE).write_bytes(
                self.checkpoint(previous).to_bytes()
            )
        return directory

    def bundle_texts(self, start: int = 0, end: int | None = None) -> list[BundleText]:
        """The free texts of leaves ``[start, end)``, as a texts file lists them."""
        end = len(self.leaves) if end is None else end
        found: list[BundleText] = []
        for seq in range(start, end):
            envelope = Leaf.from_bytes(self.leaves[seq]).envelope
            texts = texts_of(envelope)
            found.extend(BundleText(seq, name, texts[name]) for name in sorted(texts))
        return found

    def write_texts(
        self, directory: Path, start: int = 0, end: int | None = None, *, name: str = TEXTS_FILE
    ) -> Path:
        """Write the texts file of leaves ``[start, end)`` into ``directory``, as ``name``."""
        path = directory / name
        path.write_bytes(encode_texts_file(self.bundle_texts(start, end)))
        return path


def new_log(seed: bytes = b"verifier-tests", origin: str | None = None) -> LogBuilder:
    """A log holding only the genesis of a town with fixed keys (and ``origin``, when given)."""
    town = Town.from_seed(seed) if origin is None else Town.from_seed(seed, origin)
    log = LogBuilder(town)
    log.append(town.genesis())
    return log


def standard_log(seed: bytes = b"verifier-tests", origin: str | None = None) -> LogBuilder:
    """A small, valid log: setup, awards (one council rule), a deduction, a redemption,
    an objection and a reversal, over three residents."""
    log = new_log(seed, origin)
    town = log.town
    log.extend(town.setup())
    log.append(town.award("res-001", "clean-pond", 3))  # +15
    log.append(town.award("res-001", "mediate-dispute"))  # +20, council quorum
    log.append(town.award("res-002", "epidemic-duty", 6))  # +60
    log.append(town.award("res-003", "burn-straw"))  # -20
    disputed = log.append(town.award("res-003", "litter", 2))  # -10
    log.append(town.redeem("res-002", 25))
    log.append(town.objection(disputed))
    log.append(town.reverse(disputed))
    log.append(town.award("res-002", "clean-pond"))  # +5
    return log


def replay(log: LogBuilder) -> MemoryState:
    """The reference: every leaf straight through ``apply_entry`` (no threads, no chunks)."""
    state = MemoryState()
    for raw in log.leaves:
        leaf = Leaf.from_bytes(raw)
        apply_entry(
            state,
            origin=log.town.origin,
            seq=leaf.seq,
            time=leaf.time,
            envelope=Envelope.from_bytes(leaf.envelope),
        )
    return state
