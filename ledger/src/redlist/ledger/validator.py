"""One validator for every copy of a log: each check of format v1, leaf by leaf, pure.

``LogValidator`` is a state machine over bytes, in the manner of python-tuf's
``TrustedMetadataSet``: it is given where a log stands (its points state, the
compact range of its tree, the last leaf hash and node time) and then each next
leaf, and either accepts the leaf, moving on, or raises ``RuleViolation`` naming
the entry (``seq``) and the check, and stays where it was. It does no I/O, starts
no thread and reads no clock; fetching and storing leaves, and verifying
signatures in parallel (``sigschedule``), are its callers' business. The node's
append, the auditor and a mirror all run it, so a node refuses exactly what an
auditor would refuse.

The checks, in the order they are made for a leaf at position ``seq``:

1. ``format``: the leaf decodes as a canonical ``[seq, time, prev, envelope]``
   (``entry.Leaf``), and so do its envelope and body (``Envelope``, ``decode_body``);
2. ``seq``: the leaf's seq is its position;
3. ``time``: the node's time never goes back;
4. ``chain``: ``prev`` is the leaf hash of the entry before (zero at seq 0), when
   that hash is known;
5. ``format``: the envelope, then the body, decode;
6. the points semantics (``points.apply_entry``: genesis, log name, author time,
   unique id, signers, signatures, roles, quorum, rules, overdraw, reversals, range),
   or, for a copy that starts mid-log without the state of the entries before it,
   only the log name (``log``).

An accepted leaf's hash extends the tree (``root`` at the current size, so a
caller compares it with a checkpoint at any size it likes).

Reading is split from deciding so that callers can work ahead: ``read_leaf``
decodes bytes into a ``Reading`` without deciding anything (a reading that does not
decode carries why, and is refused when its turn comes), and ``KeyLookahead``
tells which signatures a reading will need, so they can be verified in parallel
before ``apply`` asks for them. ``apply`` takes those verdicts as a
``SignatureCheck``: ``Verdicts`` holds verdicts computed ahead and verifies on the
spot whatever it does not hold, so a precomputation never decides an outcome.

A node appends envelopes, not leaves: ``append`` makes the leaf from the head and
the node's time, then runs it through the same checks as ``apply``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from redlist.ledger import codec, crypto, merkle, points
from redlist.ledger.bodydecode import decode_common_body
from redlist.ledger.entry import (
    ZERO_HASH,
    AnyBody,
    Envelope,
    Genesis,
    KeyChange,
    Leaf,
    decode_body,
)
from redlist.ledger.envelope import decode_common
from redlist.ledger.errors import FormatError, RuleViolation
from redlist.ledger.points import Effect, SignatureCheck
from redlist.ledger.state import LedgerState, MemoryState

#: Every check the validator makes, by the identifier its ``RuleViolation`` carries.
CHECKS: Mapping[str, str] = {
    **points.CHECKS,
    "format": "every leaf, envelope and body must be well-formed, canonical format v1 bytes",
    "seq": "each entry's seq must be its position in the log",
    "time": "the node's integration time may never go back",
    "chain": "each entry's prev must be the leaf hash of the entry before it",
}

#: One signature to verify: (public key, body, signature), the arguments of
#: ``crypto.verify_entry``.
Triple = tuple[bytes, bytes, bytes]


class Reading(NamedTuple):
    """What one leaf's bytes decode to, before anything is decided about them.

    ``leaf``, ``envelope`` and ``body`` are None from the first part that does not
    decode on; ``problem`` then says why (the ``format`` refusal made when the
    leaf's turn comes). A named tuple rather than a dataclass: one is made for
    every leaf of an audit, and a tuple is the cheapest immutable value to build.
    """

    raw: bytes
    leaf: Leaf | None
    envelope: Envelope | None
    body: AnyBody | None
    problem: str | None


def read_leaf(raw: bytes, pack: codec.Pack | None = None) -> Reading:
    """Decode a leaf, its envelope and body as far as they go; never raises. ``pack``
    is ``codec.thread_pack()``, for a caller that reads many leaves in one thread."""
    if type(raw) is not bytes:  # keep exact, immutable bytes: they are hashed later
        raw = bytes(raw)
    if pack is None:
        pack = codec.thread_pack()
    # Almost every leaf: an award or redemption, every part in its common shape.
    common = decode_common(raw, pack)
    if common is not None:
        body = decode_common_body(common[1].body, pack)
        if body is not None:
            return _new_tuple(Reading, (raw, common[0], common[1], body, None))
    try:
        leaf = Leaf.from_bytes(raw)
    except FormatError as exc:
        return Reading(raw, None, None, None, f"the leaf cannot be read: {exc}")
    try:
        envelope = Envelope.from_bytes(leaf.envelope)
    except FormatError as exc:
        return Reading(raw, leaf, None, None, f"the envelope cannot be read: {exc}")
    try:
        body = decode_body(envelope.body)
    except FormatError as exc:
        return Reading(raw, leaf, envelope, None, str(exc))
    return Reading(raw, leaf, envelope, body, None)


# ``Reading(...)`` without its generated ``__new__``: the same tuple, one call less
# for every leaf an audit reads.
_new_tuple = tuple.__new__


class KeyLookahead:
    """Which signatures entries will need verified, known before the semantics runs.

    The public key of a signer is looked up in ``known`` (key id -> public key),
    then with ``stored`` (for a state kept elsewhere), and learned from the genesis
    and key registrations read so far. Key ids are never reused in a log, so a key
    id seen once names one public key for good; a wrong guess (a registration the
    semantics later refuses) costs only a verification on the spot, never a verdict.
    """

    __slots__ = ("_known", "_stored")

    def __init__(
        self,
        known: dict[bytes, bytes] | None = None,
        stored: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self._known: dict[bytes, bytes] = {} if known is None else known
        self._stored = stored

    def triples(self, envelope: Envelope, body: AnyBody | None) -> list[Triple]:
        """The (public key, body, signature) of each signature whose key is known."""
        known = self._known
        # ``type(...) is``: the body classes have no subclasses, and most bodies are
        # neither, which a type comparison says soonest.
        if type(body) is Genesis:
            known.setdefault(crypto.key_id(body.admin), body.admin)
        elif type(body) is KeyChange and body.op == "add":
            known.setdefault(crypto.key_id(body.pub), body.pub)
        found: list[Triple] = []
        stored = self._stored
        for signature in envelope.signatures:
            public = known.get(signature.key_id)
            if public is None and stored is not None:
                public = stored(signature.key_id)
            if public is not None:
                found.append((public, envelope.body, signature.signature))
        return found


class Verdicts:
    """Signature verdicts computed ahead, as a ``SignatureCheck`` for ``apply``.

    A verdict counts only for the exact (public key, body, signature) it was
    computed for; anything else is verified on the spot (``crypto.verify_entry``).
    """

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[bytes, tuple[bytes, bytes, bool]] = {}

    def add(self, triples: Sequence[Triple], outcomes: Sequence[bool] | None) -> None:
        """Take ``outcomes[i]`` as the verdict on ``triples[i]``. Outcomes of the wrong
        count, or None (they could not be computed), are ignored."""
        if outcomes is None or len(outcomes) != len(triples):
            return
        known = self._known
        for (public, body, signature), ok in zip(triples, outcomes, strict=True):
            known.setdefault(signature, (public, body, ok))

    def __call__(self, public: bytes, body: bytes, signature: bytes) -> bool:
        known = self._known.get(signature)
        if known is not None and known[0] == public and known[1] == body:
            return known[2]
        return crypto.verify_entry(public, body, signature)


class LogValidator:
    """Checks a log's leaves in order; see the module docstring for the checks.

    ``state`` is the points state after the entries before (a ``MemoryState`` for a
    new log when omitted), or None for a copy that starts mid-log without it: then
    only the structure and the log name are checked. ``tree`` is the compact range
    of the leaves before (empty by default; it is copied, never changed),
    ``last_leaf_hash`` the hash of the last of them (None: unknown, the first link
    is then not checked) and ``last_time`` its node time. A ``state`` given is
    changed as leaves are accepted.
    """

    def __init__(
        self,
        origin: str,
        *,
        state: LedgerState | None = None,
        partial: bool = False,
        tree: merkle.CompactRange | None = None,
        last_leaf_hash: bytes | None = ZERO_HASH,
        last_time: int = -1,
    ) -> None:
        if partial and state is not None:
            raise ValueError("a partial validator checks no semantics: it takes no state")
        self.origin = origin
        self._tree = merkle.CompactRange()
        if tree is not None:
            self._tree = merkle.CompactRange.from_hashes(tree.end, tree.hashes)
        self._state: LedgerState | None = None
        if not partial:
            self._state = MemoryState() if state is None else state
        self._size = self._tree.end
        self._last_leaf_hash = last_leaf_hash
        self._last_time = last_time
        self._signatures = 0
        self._lookahead: KeyLookahead | None = None

    # -- where the log stands ------------------------------------------------

    @property
    def size(self) -> int:
        """The number of leaves so far: the seq the next leaf must have."""
        return self._size

    @property
    def state(self) -> LedgerState | None:
        """The points state (None for a partial copy)."""
        return self._state

    @property
    def last_leaf_hash(self) -> bytes | None:
        return self._last_leaf_hash

    @property
    def last_time(self) -> int:
        return self._last_time

    @property
    def signatures_checked(self) -> int:
        """Signatures verified over the accepted entries."""
        return self._signatures

    def tree(self) -> merkle.CompactRange:
        """A copy of the compact range of the leaves so far."""
        return merkle.CompactRange.from_hashes(self._tree.end, self._tree.hashes)

    def root(self) -> bytes:
        """The Merkle root of the leaves so far (RFC 6962)."""
        return self._tree.root()

    # -- reading ahead -------------------------------------------------------

    @staticmethod
    def read(raw: bytes) -> Reading:
        """``read_leaf``: decode without deciding (safe to run ahead of ``apply``)."""
        return read_leaf(raw)

    @staticmethod
    def read_all(raws: list[bytes]) -> list[Reading]:
        """``read`` of each leaf of a chunk."""
        pack = codec.thread_pack()
        return [read_leaf(raw, pack) for raw in raws]

    def signatures_of(self, readings: list[Reading]) -> list[Triple]:
        """``signatures`` of each reading of a chunk, in order, in one list: a key
        registered in the chunk is known to the entries after it."""
        state, lookahead = self._state, self._lookahead
        if state is None:
            return []
        if lookahead is None:
            lookahead = self._lookahead = _lookahead_for(state)
        triples = lookahead.triples
        return [
            triple
            for _, _, envelope, body, _ in readings
            if envelope is not None
            for triple in triples(envelope, body)
        ]

    def signatures(self, reading: Reading) -> list[Triple]:
        """The signatures ``reading`` will need verified, as far as can be told now.

        Call it for readings in order, ahead of ``apply``; it learns the keys that
        genesis and key entries register (``KeyLookahead``).
        """
        return self.signatures_of([reading])

    # -- deciding ------------------------------------------------------------

    def apply(
        self, reading: Reading, verdicts: SignatureCheck = crypto.verify_entry
    ) -> Effect | None:
        """Check ``reading`` as the next leaf and accept it; its effect (None when the
        semantics is not checked). Raises ``RuleViolation`` located at the leaf's
        position, and then leaves everything as it was."""
        seq = self._size
        raw, leaf, envelope, body, problem = reading  # one step, not five attribute reads
        if leaf is None:
            raise RuleViolation("format", problem or "", seq=seq)
        expected = self._last_leaf_hash
        if not (
            leaf.seq == seq
            and leaf.time >= self._last_time
            and (expected is None or leaf.prev == expected)
        ):
            self._check_link(seq, leaf.seq, leaf.time, leaf.prev)  # says what is wrong
        if envelope is None:
            raise RuleViolation("format", problem or "", seq=seq)
        return self._accept(seq, leaf.time, raw, envelope, body, problem, verdicts)

    def append(
        self,
        raw_envelope: bytes,
        envelope: Envelope,
        body: AnyBody,
        time: int,
        verdicts: SignatureCheck = crypto.verify_entry,
    ) -> bytes:
        """Make the next leaf of a decoded envelope at node time ``time``, check it as
        ``apply`` would, accept it and return its bytes. For the node, whose caller
        decoded the envelope (``Envelope.from_bytes``, ``decode_body``) on receipt."""
        seq, prev = self._size, self._last_leaf_hash
        if prev is None:
            raise ValueError("a log's head must be known to append to it")
        leaf = codec.encode([seq, time, prev, raw_envelope])  # Leaf(...).to_bytes(), objectless
        self._check_link(seq, seq, time, prev)
        self._accept(seq, time, leaf, envelope, body, None, verdicts)
        return leaf

    def _check_link(self, seq: int, leaf_seq: int, time: int, prev: bytes) -> None:
        if leaf_seq != seq:
            raise RuleViolation(
                "seq",
                f"the entry at position {seq} says it is entry {leaf_seq}: entries were "
                "removed, inserted or reordered",
                seq=seq,
            )
        if time < self._last_time:
            raise RuleViolation(
                "time",
                f"the node's time {time} ms goes back from {self._last_time} ms at the "
                "entry before",
                seq=seq,
            )
        expected = self._last_leaf_hash
        if expected is not None and prev != expected:
            raise RuleViolation(
                "chain",
                "the entry's prev is not the leaf hash of the entry before it: the entry "
                "before was changed, removed or reordered",
                seq=seq,
            )

    def _accept(
        self,
        seq: int,
        time: int,
        raw_leaf: bytes,
        envelope: Envelope,
        body: AnyBody | None,
        problem: str | None,
        verdicts: SignatureCheck,
    ) -> Effect | None:
        if body is None:
            raise RuleViolation("format", problem or "", seq=seq)
        state = self._state
        effect: Effect | None = None
        if state is None:
            if body.log != self.origin:
                raise RuleViolation(
                    "log",
                    f"the entry is meant for log {body.log!r}, not for this log {self.origin!r}",
                    seq=seq,
                )
        else:
            effect = points.apply_decoded(state, self.origin, seq, time, envelope, body, verdicts)
            self._signatures += len(envelope.signatures)
        leaf_hash = merkle.leaf_hash(raw_leaf)
        self._tree.append(leaf_hash)
        self._last_leaf_hash = leaf_hash
        self._last_time = time
        self._size = seq + 1
        return effect


def _lookahead_for(state: LedgerState) -> KeyLookahead:
    if isinstance(state, MemoryState):  # a plain dictionary: the fastest look-up
        return KeyLookahead({key_id: record.public for key_id, record in state.keys.items()})

    def stored(key_id: bytes) -> bytes | None:
        record = state.key(key_id)
        return None if record is None else record.public

    return KeyLookahead(stored=stored)


__all__ = [
    "CHECKS",
    "KeyLookahead",
    "LogValidator",
    "Reading",
    "Triple",
    "Verdicts",
    "read_leaf",
]
