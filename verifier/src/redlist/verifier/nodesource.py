"""Auditing a live node: its log streamed over gRPC and audited like a bundle, then its
answers (account figures, Merkle proofs) checked against the verifier's own results.

``verify_node`` runs these steps, in this order, and trusts nothing the node says:

1. ``GetCheckpoint``, verified with the log key before anything else is asked.
2. With a checkpoint pinned by an earlier run: a smaller tree is a rollback, the same
   size with another root a fork, and otherwise the node's consistency proof from the
   pinned size must verify. A rewritten history is refused here, before any leaf is
   read, and the message quotes both signed checkpoints as evidence.
3. The leaves ``[start, size)`` of *that* checkpoint (not of whatever size the node has
   grown to meanwhile), fed to the same ``Auditor`` as a bundle's. ``start`` is 0, or
   the pinned size when the run resumes from the semantics state saved by the earlier
   run (``statefile``): then only the new leaves are fetched, and still every rule and
   balance is checked, because the audit starts from the state it had verified.
4. Inclusion proofs for a few of the fetched entries (the first, the last and random
   ones), verified against the checkpoint's root. Without a pin, also a consistency
   proof from a random earlier size, verified against the root this audit computed.
5. ``GetAccount`` for every account the log mentions; above ``account_bound`` accounts,
   for a random sample of that many (drawn from the operating system's random source,
   so the node cannot tell which accounts will be asked). The node's score, spendable,
   redeemed and earned points and grade must equal the recomputed ones. A node that
   has grown since step 1 answers at a later checkpoint: that checkpoint must verify
   and extend the audited one, and the award and redemption list it sends must add up
   to the recomputed figures at the audited size (and to its own figures at its size).

Any defect is a ``VerificationError`` (exit 1) naming the entry or the account and the
check (``account-view``, ``inclusion``, ``consistency``, ``rollback`` or an audit check).
A node that cannot be reached or refuses a call is a ``SourceError`` (exit 2).
"""

from __future__ import annotations

import queue
import secrets
import textwrap
import threading
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

from redlist.ledger import merkle
from redlist.ledger.entry import TownConfig
from redlist.ledger.errors import (
    FormatError,
    NoteError,
    ProofError,
    SourceError,
    VerificationError,
)
from redlist.ledger.note import Checkpoint, VerifierKey, open_checkpoint
from redlist.proto.client import NodeClient, RemoteAccount, RemoteEntry
from redlist.verifier.audit import (
    AccountSummary,
    Auditor,
    AuditResult,
    ResumePoint,
    TrustedHead,
)
from redlist.verifier.source import Opening, Progress, Source

#: Accounts asked with GetAccount when the log has more than this many: a random sample.
DEFAULT_ACCOUNT_BOUND = 1000
#: Entries whose inclusion proof is asked for (the first and last fetched among them).
DEFAULT_INCLUSION_SAMPLES = 4
#: GetAccount calls in flight at once.
ACCOUNT_WORKERS = 8
#: Accounts asked per round (bounds the answers held in memory at once).
_ACCOUNT_BATCH = 256
#: Leaves read ahead of the audit: batches of this many, at most this many batches.
READ_AHEAD_BATCH = 256
READ_AHEAD_DEPTH = 32

_RANDOM = secrets.SystemRandom()


class NodeSource(Source):
    """A node's log as a ``Source``: its current checkpoint, then leaves ``[start, size)``.

    ``open`` verifies the checkpoint with the log key before anything else is read.
    The client stays the caller's (``close`` does not close it).
    """

    def __init__(self, client: NodeClient, *, start: int = 0) -> None:
        self._client = client
        self._start = start
        self._checkpoint: Checkpoint | None = None

    def describe(self) -> str:
        return self._client.describe()

    @property
    def checkpoint(self) -> Checkpoint:
        """The verified checkpoint (after ``open``)."""
        if self._checkpoint is None:
            raise SourceError("the node's checkpoint must be read before its leaves")
        return self._checkpoint

    def open(self, log_key: VerifierKey) -> Opening:
        checkpoint, text = self.fetch_checkpoint(log_key)
        if checkpoint.size < self._start:
            raise VerificationError(
                "rollback",
                f"the node's checkpoint covers {checkpoint.size} entries, fewer than the "
                f"{self._start} verified before",
            )
        return Opening(text.encode("utf-8"), self._start, checkpoint.size)

    def fetch_checkpoint(self, log_key: VerifierKey) -> tuple[Checkpoint, str]:
        """The node's checkpoint, verified with ``log_key``, and its signed text."""
        text = self._client.get_checkpoint()
        try:
            checkpoint = open_checkpoint(text, log_key)
        except NoteError as exc:
            raise VerificationError(
                "checkpoint",
                f"the checkpoint the node at {self._client.address} serves does not verify: {exc}",
            ) from None
        self._checkpoint = checkpoint
        return checkpoint, text

    def leaves(self) -> Generator[bytes, None, None]:
        """The leaves, read ahead on a thread so receiving overlaps with the audit."""
        return read_ahead(self._client.get_leaves(self._start, self.checkpoint.size))


def read_ahead(
    items: Iterator[bytes], *, batch: int = READ_AHEAD_BATCH, depth: int = READ_AHEAD_DEPTH
) -> Generator[bytes, None, None]:
    """``items`` in order, taken from it by a reader thread up to ``batch * depth`` ahead.

    An exception ``items`` raises is raised here after the items before it. When the
    consumer stops early, the reader stops at its next batch and closes ``items``.
    """
    channel: queue.Queue[list[bytes] | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def hand_over(item: list[bytes] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        pending: list[bytes] = []
        try:
            for item in items:
                pending.append(item)
                if len(pending) >= batch:
                    if not hand_over(pending):
                        return
                    pending = []
            if hand_over(pending):
                hand_over(None)
        except BaseException as exc:  # handed to the consumer, raised after what came before
            if hand_over(pending):
                hand_over(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=reader, name="redlist-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            got = channel.get()
            if got is None:
                return
            if isinstance(got, BaseException):
                raise got
            yield from got
    finally:
        stop.set()


@dataclass(frozen=True)
class NodeAudit:
    """What ``verify_node`` established, beyond the audit result itself."""

    address: str
    result: AuditResult
    #: Where a later run can resume from (save it with ``statefile.save_semantics``).
    resume_point: ResumePoint
    #: The pinned size this run resumed from, or None for a run from entry 0.
    resumed_from: int | None
    #: Why a pinned state was not resumed from, when it was not.
    fallback: str | None
    leaves_fetched: int
    #: The earlier tree size a consistency proof was verified from, if any.
    consistency_from: int | None
    inclusion_checked: tuple[int, ...]
    accounts_total: int
    accounts_checked: int
    #: Accounts the node answered at a checkpoint later than the audited one.
    accounts_later: int

    @property
    def sampled(self) -> bool:
        return self.accounts_checked < self.accounts_total

    def summary_lines(self, width: int = 88) -> list[str]:
        """What was checked against the node, in plain words, for the human report."""
        wrapped: list[str] = []
        for sentence in self._sentences():
            wrapped.extend(
                textwrap.wrap(
                    sentence.strip(), width, initial_indent="  ", subsequent_indent="    "
                )
            )
        return wrapped

    def _sentences(self) -> list[str]:
        lines = [f"  Node {self.address}: fetched {self.leaves_fetched:,} entries."]
        if self.resumed_from is not None:
            lines.append(
                f"  Resumed from the {self.resumed_from:,} entries verified by the earlier run "
                "(state file); only the entries after them were fetched and checked."
            )
        elif self.fallback is not None:
            lines.append(f"  Checked from entry 0: {self.fallback}.")
        if self.consistency_from is not None:
            lines.append(
                f"  The node's consistency proof from {self.consistency_from:,} entries to "
                f"{self.result.tree_size:,} verifies."
            )
        if self.inclusion_checked:
            seqs = ", ".join(str(seq) for seq in self.inclusion_checked)
            lines.append(f"  The node's inclusion proofs for entries {seqs} verify.")
        if self.accounts_total:
            which = (
                f"a random sample of {self.accounts_checked:,} of the {self.accounts_total:,} "
                "accounts"
                if self.sampled
                else f"all {self.accounts_checked:,} accounts"
            )
            lines.append(
                f"  The node's figures for {which} match the recomputed ones "
                "(score, spendable, redeemed, grade)."
            )
            if self.accounts_later:
                lines.append(
                    f"  {self.accounts_later:,} of them were answered at a later checkpoint "
                    "(the node grew meanwhile); they were compared at the audited size."
                )
        return lines

    def to_json(self) -> dict[str, Any]:
        """The ``node`` member of the ``--json`` object."""
        return {
            "address": self.address,
            "resumed_from": self.resumed_from,
            "fallback": self.fallback,
            "leaves_fetched": self.leaves_fetched,
            "consistency_from": self.consistency_from,
            "inclusion_checked": list(self.inclusion_checked),
            "accounts_total": self.accounts_total,
            "accounts_checked": self.accounts_checked,
            "accounts_sampled": self.sampled,
            "accounts_at_later_checkpoint": self.accounts_later,
        }


@dataclass(frozen=True)
class PinnedHead:
    """A checkpoint verified by an earlier run: its size, root and signed text."""

    size: int
    root: bytes
    checkpoint_text: str
    source: str


def verify_node(
    client: NodeClient,
    log_key: VerifierKey,
    *,
    pinned: PinnedHead | None = None,
    resume: ResumePoint | None = None,
    fallback: str | None = None,
    keep_statements_for: str | None = None,
    account_bound: int | None = DEFAULT_ACCOUNT_BOUND,
    extra_accounts: Sequence[str] = (),
    inclusion_samples: int = DEFAULT_INCLUSION_SAMPLES,
    workers: int | None = None,
    progress: Progress | None = None,
) -> NodeAudit:
    """Audit the node behind ``client`` (see the module docstring for the steps).

    ``resume`` (a snapshot at ``pinned.size``) makes the run incremental; a statement
    for ``keep_statements_for`` then covers only the entries fetched. ``account_bound``
    None asks every account; ``extra_accounts`` are asked in any case.
    """
    if resume is not None and (pinned is None or resume.size != pinned.size):
        resume, fallback = None, "the saved state is not of the pinned checkpoint"
    start = resume.size if resume is not None else 0
    source = NodeSource(client, start=start)
    checkpoint, checkpoint_text = source.fetch_checkpoint(log_key)
    consistency_from = None
    if pinned is not None:  # also catches a log smaller than where a resumed run starts
        _check_extends(client, pinned, checkpoint, checkpoint_text)
        if checkpoint.size > pinned.size:  # equal sizes need no proof, only equal roots
            consistency_from = pinned.size
    trusted = (TrustedHead(pinned.size, pinned.root, pinned.source),) if pinned else ()
    inclusion_seqs = _sample_range(start, checkpoint.size, inclusion_samples)
    sample_size = None
    if pinned is None and checkpoint.size >= 2:
        sample_size = _RANDOM.randrange(1, checkpoint.size)
    observer = _Observer(inclusion_seqs, sample_size)
    with Auditor(
        log_key,
        keep_statements_for=keep_statements_for,
        resume=resume,
        trusted=trusted,
        workers=workers,
    ) as auditor:
        auditor.check_checkpoint(checkpoint_text)
        total, done = checkpoint.size - start, 0
        if progress is not None:
            progress(0, total)
        leaves = source.leaves()
        try:
            for leaf in leaves:
                observer.see(start + done, leaf)
                auditor.feed(leaf)
                done += 1
                if progress is not None and done % 1024 == 0:
                    progress(done, total)
        except FormatError as exc:
            raise auditor.fail_at_next("seq", str(exc)) from None
        finally:
            leaves.close()  # stops the reader thread when the audit stops early
        result = auditor.finish(checkpoint_text)
        resume_point = auditor.resume_point()
        if progress is not None:
            progress(done, total)
    _check_inclusion(client, checkpoint, observer.leaf_hashes)
    if sample_size is not None and observer.sample_root is not None:
        _check_consistency_sample(client, checkpoint, sample_size, observer.sample_root)
        consistency_from = sample_size
    accounts, total_accounts = _accounts_to_check(result, account_bound, extra_accounts)
    checker = _AccountChecker(client, log_key, checkpoint, checkpoint_text, result)
    later = checker.check_all(accounts)
    return NodeAudit(
        address=client.address,
        result=result,
        resume_point=resume_point,
        resumed_from=resume.size if resume is not None else None,
        fallback=fallback,
        leaves_fetched=done,
        consistency_from=consistency_from,
        inclusion_checked=tuple(sorted(observer.leaf_hashes)),
        accounts_total=total_accounts,
        accounts_checked=len(accounts),
        accounts_later=later,
    )


# -- the history: pinned checkpoint, consistency and inclusion proofs ---------------


def _check_extends(
    client: NodeClient, pinned: PinnedHead, checkpoint: Checkpoint, checkpoint_text: str
) -> None:
    """The node's checkpoint must extend the pinned one; both are quoted if it does not."""
    if checkpoint.size < pinned.size:
        raise VerificationError(
            "rollback",
            f"the node at {client.address} serves a log of {checkpoint.size} entries, smaller "
            f"than the {pinned.size} entries verified before ({pinned.source}): the log was "
            "rolled back" + _evidence(pinned, checkpoint_text),
        )
    if checkpoint.size == pinned.size:
        if checkpoint.root != pinned.root:
            raise VerificationError(
                "consistency",
                f"the node's checkpoint and {pinned.source} both cover {pinned.size} entries "
                "but with different roots: the log has shown two histories"
                + _evidence(pinned, checkpoint_text),
            )
        return
    proof = client.get_consistency_proof(pinned.size, checkpoint.size)
    try:
        if proof.tree_size not in (0, checkpoint.size):
            raise ProofError(f"the proof is for a tree of {proof.tree_size} entries")
        merkle.verify_consistency(
            pinned.size, checkpoint.size, proof.hashes, pinned.root, checkpoint.root
        )
    except ProofError as exc:
        raise VerificationError(
            "consistency",
            f"the node's checkpoint of {checkpoint.size} entries does not extend the "
            f"checkpoint of {pinned.size} entries held in {pinned.source}: the history "
            f"verified earlier was rewritten ({exc})" + _evidence(pinned, checkpoint_text),
        ) from None


def _evidence(pinned: PinnedHead, checkpoint_text: str) -> str:
    return (
        "\nThe two signed checkpoints, kept as evidence:\n"
        f"--- verified before ({pinned.source}) ---\n{pinned.checkpoint_text}"
        f"--- served by the node now ---\n{checkpoint_text}"
    )


class _Observer:
    """Remembers what the later proof checks need from the leaves as they stream by:
    the leaf hashes of the sampled entries, and the root at the sampled tree size."""

    def __init__(self, seqs: Sequence[int], sample_size: int | None) -> None:
        self._wanted = frozenset(seqs)
        self.leaf_hashes: dict[int, bytes] = {}
        self._sample_size = sample_size
        self._tree = merkle.CompactRange()
        self.sample_root: bytes | None = None

    def see(self, seq: int, leaf: bytes) -> None:
        if seq in self._wanted:
            self.leaf_hashes[seq] = merkle.leaf_hash(leaf)
        if self._sample_size is not None and seq < self._sample_size:
            self._tree.append(merkle.leaf_hash(leaf))
            if self._tree.end == self._sample_size:
                self.sample_root = self._tree.root()


def _check_inclusion(
    client: NodeClient, checkpoint: Checkpoint, leaf_hashes: dict[int, bytes]
) -> None:
    for seq in sorted(leaf_hashes):
        proof = client.get_inclusion_proof(seq, checkpoint.size)
        try:
            if proof.tree_size != checkpoint.size:
                raise ProofError(
                    f"the proof is for a tree of {proof.tree_size} entries, not {checkpoint.size}"
                )
            merkle.verify_inclusion(
                leaf_hashes[seq], seq, checkpoint.size, proof.hashes, checkpoint.root
            )
        except ProofError as exc:
            raise VerificationError(
                "inclusion",
                f"the node's inclusion proof for entry {seq} does not verify against its "
                f"checkpoint of {checkpoint.size} entries: {exc}",
                seq=seq,
            ) from None


def _check_consistency_sample(
    client: NodeClient, checkpoint: Checkpoint, size: int, root: bytes
) -> None:
    proof = client.get_consistency_proof(size, checkpoint.size)
    try:
        if proof.tree_size not in (0, checkpoint.size):
            raise ProofError(f"the proof is for a tree of {proof.tree_size} entries")
        merkle.verify_consistency(size, checkpoint.size, proof.hashes, root, checkpoint.root)
    except ProofError as exc:
        raise VerificationError(
            "consistency",
            f"the node's consistency proof from {size} to {checkpoint.size} entries does not "
            f"verify against the roots recomputed from its entries: {exc}",
        ) from None


def _sample_range(start: int, end: int, count: int) -> list[int]:
    """Up to ``count`` distinct seqs of ``[start, end)``: the first, the last, random others."""
    if end <= start or count <= 0:
        return []
    chosen = {start, end - 1} if count >= 2 else {end - 1}
    others = end - start - len(chosen)
    wanted = min(count - len(chosen), others)
    while wanted > 0:
        seq = _RANDOM.randrange(start, end)
        if seq not in chosen:
            chosen.add(seq)
            wanted -= 1
    return sorted(chosen)


# -- accounts ------------------------------------------------------------------


def _accounts_to_check(
    result: AuditResult, bound: int | None, extra: Sequence[str]
) -> tuple[list[str], int]:
    """The accounts to ask about (all, or a random sample above ``bound``), and how many
    the log mentions."""
    known = sorted(result.accounts)
    chosen = (
        set(known) if bound is None or len(known) <= bound else set(_RANDOM.sample(known, bound))
    )
    chosen.update(extra)
    return sorted(chosen), len(known)


class _AccountChecker:
    """Asks the node for accounts and compares its answers with the audit's figures."""

    def __init__(
        self,
        client: NodeClient,
        log_key: VerifierKey,
        checkpoint: Checkpoint,
        checkpoint_text: str,
        result: AuditResult,
    ) -> None:
        self._client = client
        self._log_key = log_key
        self._checkpoint = checkpoint
        self._checkpoint_text = checkpoint_text
        self._result = result
        # Later checkpoints already proven to extend the audited one, by size.
        self._later: dict[int, tuple[bytes, str]] = {}

    def check_all(self, accounts: Sequence[str]) -> int:
        """Check every account (the first bad one raises); how many came at a later size."""
        config = self._result.config
        if config is None or not accounts:
            return 0
        later = 0
        with ThreadPoolExecutor(ACCOUNT_WORKERS, thread_name_prefix="redlist-account") as pool:
            for begin in range(0, len(accounts), _ACCOUNT_BATCH):
                batch = accounts[begin : begin + _ACCOUNT_BATCH]
                for account, view in zip(
                    batch, pool.map(self._client.get_account, batch), strict=True
                ):
                    at = self._view_checkpoint(account, view)
                    expected = self._result.accounts.get(account) or _untouched(config)
                    compare_account(account, view, expected, config, self._checkpoint.size, at)
                    later += at.size > self._checkpoint.size
        return later

    def _view_checkpoint(self, account: str, view: RemoteAccount) -> Checkpoint:
        """The checkpoint the node's figures are at, verified and proven to extend ours."""
        try:
            at = open_checkpoint(view.checkpoint, self._log_key)
        except NoteError as exc:
            raise VerificationError(
                "account-view",
                f"the node's figures for account {account} come with a checkpoint that does "
                f"not verify: {exc}",
            ) from None
        audited = self._checkpoint
        if at.size < audited.size:
            raise VerificationError(
                "account-view",
                f"the node's figures for account {account} are as of {at.size} entries, "
                f"older than the {audited.size} entries it signed before",
            )
        pin = PinnedHead(audited.size, audited.root, self._checkpoint_text, "the audit")
        if at.size == audited.size:
            if at.root != audited.root:
                raise VerificationError(
                    "consistency",
                    f"the node's figures for account {account} come with a checkpoint of "
                    f"{at.size} entries whose root differs from the audited one: the node "
                    "shows two histories" + _evidence(pin, view.checkpoint),
                )
            return at
        known = self._later.get(at.size)
        if known is None:
            _check_extends(self._client, pin, at, view.checkpoint)
            self._later[at.size] = (at.root, view.checkpoint)
        elif known[0] != at.root:
            earlier = PinnedHead(at.size, known[0], known[1], "an earlier answer of the node")
            raise VerificationError(
                "consistency",
                f"the node answered with two checkpoints of {at.size} entries with different "
                f"roots (the second with account {account}): it shows two histories"
                + _evidence(earlier, view.checkpoint),
            )
        return at


def compare_account(
    account: str,
    view: RemoteAccount,
    expected: AccountSummary,
    config: TownConfig,
    audited_size: int,
    view_checkpoint: Checkpoint,
) -> None:
    """Compare the node's figures for ``account`` with the recomputed ``expected`` ones.

    ``view_checkpoint`` (verified, extending the audited tree of ``audited_size``) is
    what the node says its figures are at. At the audited size the figures must be
    equal; at a later size the award and redemption list must add up to ``expected``
    below ``audited_size``, and to the node's own figures at its size.
    """
    if view.account not in ("", account):
        _account_error(account, f"the node answered for account {view.account!r} instead")
    for entry in view.entries:
        if entry.kind not in ("award", "redeem") or entry.seq >= view_checkpoint.size:
            _account_error(
                account,
                f"the node lists a {entry.kind!r} entry {entry.seq} that is not an award or "
                f"redemption of its log of {view_checkpoint.size} entries",
            )
    if view_checkpoint.size == audited_size:
        stated = (view.score, view.spendable, view.redeemed, view.earned, view.grade)
        computed = (
            expected.score,
            expected.spendable,
            expected.redeemed,
            expected.earned,
            expected.grade,
        )
        if stated != computed:
            _account_error(
                account,
                f"the node says {_figures(*stated)}; its log gives {_figures(*computed)}",
            )
    earned, redeemed = figures_at(view.entries, audited_size)
    if (earned, redeemed) != (expected.earned, expected.redeemed):
        _account_error(
            account,
            f"the awards and redemptions the node lists add up to {earned} earned and "
            f"{redeemed} redeemed points at entry {audited_size}; its log gives "
            f"{expected.earned} and {expected.redeemed}",
        )
    earned, redeemed = figures_at(view.entries, view_checkpoint.size)
    score = config.base + earned
    listed = (score, earned - redeemed, redeemed, earned, config.grade_of(score))
    said = (view.score, view.spendable, view.redeemed, view.earned, view.grade)
    if said != listed:
        _account_error(
            account,
            f"the node says {_figures(*said)}, but the entries it lists give {_figures(*listed)}",
        )


def figures_at(entries: Sequence[RemoteEntry], size: int) -> tuple[int, int]:
    """Earned and redeemed points from an account's award and redemption list, counting
    only entries below ``size`` and reversals below ``size`` (DESIGN 3.4)."""
    earned = redeemed = 0
    for entry in entries:
        if entry.seq >= size or (entry.reversed_by is not None and entry.reversed_by < size):
            continue
        if entry.kind == "award":
            earned += entry.points
        else:
            redeemed += entry.points
    return earned, redeemed


def _untouched(config: TownConfig) -> AccountSummary:
    return AccountSummary(config.base, 0, 0, 0, config.grade_of(config.base), 0)


def _figures(score: int, spendable: int, redeemed: int, earned: int, grade: str) -> str:
    return (
        f"score {score} (grade {grade}), spendable {spendable}, redeemed {redeemed}, "
        f"earned {earned}"
    )


def _account_error(account: str, message: str) -> NoReturn:
    raise VerificationError("account-view", f"account {account}: {message}")


__all__ = [
    "ACCOUNT_WORKERS",
    "DEFAULT_ACCOUNT_BOUND",
    "DEFAULT_INCLUSION_SAMPLES",
    "NodeAudit",
    "NodeSource",
    "PinnedHead",
    "compare_account",
    "figures_at",
    "verify_node",
]
