"""Build a town for tests: its staff keys and signed entries, as the bytes a node receives.

A :class:`Town` holds one key per staff role (an admin, a grid worker, two council
members, a cashier), the log's note signer and Wendeng's published configuration.
Its methods return signed *envelope bytes*, ready for ``Log.append`` or ``Submit``::

    town = Town.generate()                       # random keys; Town.from_seed(b"x") is fixed
    log = create_log(tmp_path / "data", town)    # genesis only
    log.append(town.setup(), now_ms=town.now_ms) # register the staff keys and standard rules
    log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)

Conventions:

* every body's ``at`` is ``town.now_ms`` unless given (move the clock with
  ``town.now_ms += ...``); pass the same ``now_ms`` to ``append``;
* entry ids come from a per-town counter (``town.next_id()``), so they are unique within
  a town and reproducible;
* signers default to whoever the rules want (admin for keys and rules, grid for awards,
  both council members for council rules and reversals, cashier for redemptions); pass
  ``signers=`` to sign with others, for example to test a refusal;
* the standard rules (``STANDARD_RULES``) are registered by :meth:`Town.setup`;
* an award's deed ``date`` is the day of its ``at`` in the town's time zone unless given
  (``town.day()``);
* free texts (a note, an item, an objection's text, a reason) go into the body as
  commitments (DESIGN 9.2), salted reproducibly from the entry id; the texts themselves
  are remembered by envelope (``texts_of``), and ``submit_request`` sends them beside
  the envelopes as a clerk's tool does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from unittest import mock

from redlist.ledger import codec, deeddate, idindex, merkle
from redlist.ledger.crypto import SigningKey, sign_entry
from redlist.ledger.entry import (
    Award,
    Body,
    Envelope,
    Genesis,
    KeyChange,
    Leaf,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    TownConfig,
    decode_body,
)
from redlist.ledger.idruns import IndexShape
from redlist.ledger.log import AppendResult, Log
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.textcommit import SALT_SIZE, EntryText
from redlist.node.texts import NodeTexts
from redlist.node.towncfg import DEFAULT_TOWN_CONFIG
from redlist.v1 import ledger_pb2 as pb

#: The origin (log name) of the test town; also the name of its log key.
ORIGIN = "wendeng.redlist.example/log"

#: 2026-01-01T00:00:00Z in ms: the default author and node time of a new town.
START_MS = 1_767_225_600_000

#: Wendeng's published scale (DESIGN 3.4), which is also a new node's default.
WENDENG_CONFIG = DEFAULT_TOWN_CONFIG


#: The texts of every envelope a Town made that has any, by envelope bytes.
_TEXTS: dict[bytes, dict[str, EntryText]] = {}


def test_salt(entry_id: bytes, name: str) -> bytes:
    """The salt of text field ``name`` of entry ``entry_id`` in tests: reproducible, so
    golden bundles come out byte for byte (a clerk's tool draws a random one)."""
    return hashlib.sha256(b"redlist test salt/" + entry_id + name.encode()).digest()[:SALT_SIZE]


def texts_of(envelope: bytes) -> dict[str, EntryText]:
    """The texts of an envelope made by a Town, by field (empty when it has none)."""
    return dict(_TEXTS.get(envelope, {}))


def send_with_texts(envelope: bytes, texts: dict[str, EntryText]) -> bytes:
    """``envelope``, to be sent with ``texts`` instead of its own (to test a refusal)."""
    _TEXTS[envelope] = dict(texts)
    return envelope


def entry_texts_message(texts: dict[str, EntryText]) -> pb.EntryTexts:
    return pb.EntryTexts(
        fields={name: pb.Text(text=value.text, salt=value.salt) for name, value in texts.items()}
    )


def submit_request(envelopes: Sequence[bytes]) -> pb.SubmitRequest:
    """A Submit request for ``envelopes`` with their texts beside them."""
    texts = [texts_of(envelope) for envelope in envelopes]
    if not any(texts):
        return pb.SubmitRequest(envelopes=list(envelopes))
    return pb.SubmitRequest(
        envelopes=list(envelopes), texts=[entry_texts_message(value) for value in texts]
    )


@dataclass(frozen=True)
class RuleSpec:
    """A catalogue rule as ``rule set`` registers it."""

    code: str
    title: str
    module: str
    points: int
    council: bool = False
    max_qty: int | None = None
    max_per_month: int | None = None
    #: The meeting that voted the rule (kept as a text commitment in the body).
    decided: str | None = None


#: Registered by ``Town.setup``: bonuses and deductions, two needing council quorum.
STANDARD_RULES = (
    RuleSpec("clean-pond", "Cleaned the village pond", "environment", 5),
    RuleSpec("epidemic-duty", "Epidemic prevention duty", "public-service", 10),
    RuleSpec("mediate-dispute", "Mediated a neighbourhood dispute", "harmony", 20, council=True),
    RuleSpec("burn-straw", "Burned straw in the open", "environment", -20),
    RuleSpec("litter", "Littering", "environment", -5),
    RuleSpec("elder-neglect", "Did not support elderly parents", "family", -100, council=True),
)


@dataclass
class Town:
    """A test town: staff keys, log signer, configuration, clock and id counter."""

    admin: SigningKey
    grid: SigningKey
    council: tuple[SigningKey, SigningKey]
    cashier: SigningKey
    log_signer: NoteSigner
    origin: str = ORIGIN
    config: TownConfig = WENDENG_CONFIG
    now_ms: int = START_MS
    _ids: int = field(default=0, repr=False)

    @classmethod
    def generate(cls, origin: str = ORIGIN) -> Town:
        """A town with fresh random keys."""
        return cls(
            admin=SigningKey.generate(),
            grid=SigningKey.generate(),
            council=(SigningKey.generate(), SigningKey.generate()),
            cashier=SigningKey.generate(),
            log_signer=NoteSigner(origin, SigningKey.generate()),
            origin=origin,
        )

    @classmethod
    def from_seed(cls, seed: bytes, origin: str = ORIGIN) -> Town:
        """A town whose keys are derived from ``seed``: the same seed, the same bytes."""

        def key(role: str) -> SigningKey:
            return SigningKey.from_seed(hashlib.sha256(seed + b"/" + role.encode()).digest())

        return cls(
            admin=key("admin"),
            grid=key("grid"),
            council=(key("council-1"), key("council-2")),
            cashier=key("cashier"),
            log_signer=NoteSigner(origin, key("log")),
            origin=origin,
        )

    # -- plumbing -----------------------------------------------------------

    @property
    def governors(self) -> tuple[SigningKey, ...]:
        """The admin and both council members: the default governance quorum of a key or
        rule entry once the log is set up (docs/format.md, "Governance")."""
        return (self.admin, *self.council)

    def next_id(self) -> bytes:
        """A new 16-byte entry id, unique within this town."""
        self._ids += 1
        return hashlib.sha256(f"{self.origin}/entry/{self._ids}".encode()).digest()[:16]

    def sign(self, body: Body | bytes, *signers: SigningKey) -> bytes:
        """Envelope bytes: ``body`` (a Body or canonical body bytes) signed by ``signers``.

        Signatures are put in increasing key id order, as the format requires.
        """
        body_bytes = body if isinstance(body, bytes) else body.to_bytes()
        ordered = sorted(signers, key=lambda key: key.key_id)
        sigs = [[key.key_id, sign_entry(key, body_bytes)] for key in ordered]
        return codec.encode([body_bytes, sigs])

    def text(self, entry_id: bytes, name: str, text: str) -> EntryText:
        """The text of field ``name`` of entry ``entry_id``, with its test salt."""
        return EntryText(text, test_salt(entry_id, name))

    def _signed(
        self, body: Body, texts: dict[str, EntryText], signers: Sequence[SigningKey]
    ) -> bytes:
        envelope = self.sign(body, *signers)
        if texts:
            _TEXTS[envelope] = texts
        return envelope

    def day(self, at: int | None = None, *, days_before: int = 0) -> str:
        """The deed date of the day of ``at`` (default: now) in the town's time zone,
        or ``days_before`` days earlier."""
        zone = deeddate.log_zone(self.config.tz)
        day = deeddate.day_of(self.now_ms if at is None else at, zone)
        return deeddate.format_date(day - timedelta(days=days_before))

    def _common(self, at: int | None, entry_id: bytes | None) -> tuple[str, bytes, int]:
        return (
            self.origin,
            self.next_id() if entry_id is None else entry_id,
            self.now_ms if at is None else at,
        )

    # -- entries ------------------------------------------------------------

    def genesis(self, *, at: int | None = None, entry_id: bytes | None = None) -> bytes:
        """The genesis (entry 0) naming the admin key and the town's config."""
        body = Genesis(*self._common(at, entry_id), admin=self.admin.public, config=self.config)
        return self.sign(body, self.admin)

    def add_key(
        self,
        key: SigningKey,
        name: str,
        roles: Sequence[str],
        *,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        body = KeyChange(*self._common(at, entry_id), "add", key.public, name, tuple(roles))
        return self.sign(body, *(signers or self.governors))

    def revoke_key(
        self,
        key: SigningKey,
        *,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        body = KeyChange(*self._common(at, entry_id), "revoke", key.public)
        return self.sign(body, *(signers or self.governors))

    def set_rule(
        self,
        rule: RuleSpec,
        *,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        common = self._common(at, entry_id)
        texts = {}
        if rule.decided is not None:
            texts["decided"] = self.text(common[1], "decided", rule.decided)
        body = RuleChange(
            *common,
            "set",
            rule.code,
            rule.title,
            rule.module,
            rule.points,
            rule.council,
            rule.max_qty,
            rule.max_per_month,
            texts["decided"].commitment if texts else None,
        )
        return self._signed(body, texts, signers or self.governors)

    def retire_rule(
        self,
        code: str,
        *,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        body = RuleChange(*self._common(at, entry_id), "retire", code)
        return self.sign(body, *(signers or self.governors))

    def award(
        self,
        account: str,
        rule: str,
        qty: int = 1,
        *,
        note: str | None = None,
        date: str | None = None,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        """An award under ``rule``; council rules get both council signatures by default,
        and the deed date is the day of ``at`` unless ``date`` is given."""
        common = self._common(at, entry_id)
        deed = self.day(common[2]) if date is None else date
        texts = {} if note is None else {"note": self.text(common[1], "note", note)}
        commitment = None if note is None else texts["note"].commitment
        body = Award(*common, account, rule, qty, commitment, date=deed)
        if signers is None:
            needs_council = any(spec.council for spec in STANDARD_RULES if spec.code == rule)
            signers = self.council if needs_council else (self.grid,)
        return self._signed(body, texts, signers)

    def redeem(
        self,
        account: str,
        points: int,
        item: str = "rice, 5 kg",
        *,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        common = self._common(at, entry_id)
        texts = {"item": self.text(common[1], "item", item)}
        body = Redeem(*common, account, points, texts["item"].commitment)
        return self._signed(body, texts, signers or (self.cashier,))

    def objection(
        self,
        target: int,
        text: str = "the resident disputes this award",
        *,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        common = self._common(at, entry_id)
        texts = {"text": self.text(common[1], "text", text)}
        body = Objection(*common, target, texts["text"].commitment)
        return self._signed(body, texts, signers or (self.grid,))

    def reverse(
        self,
        target: int,
        reason: str = "objection upheld by the council",
        *,
        signers: Sequence[SigningKey] | None = None,
        at: int | None = None,
        entry_id: bytes | None = None,
    ) -> bytes:
        common = self._common(at, entry_id)
        texts = {"reason": self.text(common[1], "reason", reason)}
        body = Reverse(*common, target, texts["reason"].commitment)
        return self._signed(body, texts, signers or self.council)

    def setup(self) -> list[bytes]:
        """Register the staff keys and ``STANDARD_RULES``: append right after the genesis.

        The keys are signed by the admin alone (the log is being set up: no rule yet),
        the rules by the admin and both council members (the governance quorum)."""
        alone = (self.admin,)
        entries = [
            self.add_key(self.grid, "grid-wang", ["grid"], signers=alone),
            self.add_key(self.council[0], "council-li", ["council"], signers=alone),
            self.add_key(self.council[1], "council-zhao", ["council"], signers=alone),
            self.add_key(self.cashier, "cashier-sun", ["cashier"], signers=alone),
        ]
        entries.extend(self.set_rule(rule) for rule in STANDARD_RULES)
        return entries


def append_with_texts(log: Log, envelopes: Sequence[bytes], now_ms: int) -> AppendResult:
    """Append ``envelopes`` as the node does: their texts stored beside the log first."""
    NodeTexts(log.data_dir, log).admit(envelopes, [texts_of(envelope) for envelope in envelopes])
    return log.append(envelopes, now_ms=now_ms)


def corrupt_signature(envelope: bytes, which: int = 0) -> bytes:
    """The envelope with one bit of signature ``which`` flipped (still well formed)."""
    body, sigs = codec.decode(envelope, "envelope")
    key_id, signature = sigs[which]
    sigs[which] = [key_id, bytes([signature[0] ^ 0x01]) + signature[1:]]
    return codec.encode([body, sigs])


#: An entry-id index that makes runs of 3 ids and merges 2 of them, up to runs of 12: the
#: 32 entries of :func:`build_town_log` then sit in level 0 and runs of every tier.
SMALL_ID_INDEX = IndexShape(level0_max=3, fanout=2, top_tier=2)


@contextmanager
def id_index_shape(shape: IndexShape) -> Iterator[None]:
    """Logs created in the block keep ``shape`` for their entry-id index (a small one makes
    the index's runs and merges happen within a few dozen entries)."""
    with mock.patch.object(idindex, "shape_for_new_logs", shape):
        yield


def create_log(
    data_dir: Path, town: Town, *, setup: bool = False, map_size: int | None = None
) -> Log:
    """A new log for ``town`` in ``data_dir`` (genesis only, or with ``setup`` appended)."""
    log = Log.create(
        data_dir,
        origin=town.origin,
        log_signer=town.log_signer,
        genesis=town.genesis(),
        now_ms=town.now_ms,
        map_size=map_size,
    )
    if setup:
        log.append(town.setup(), now_ms=town.now_ms)
    return log


# ---------------------------------------------------------------------------
# Reading a log through its public API, as the node and the auditor read it


def leaf_at(log: Log, seq: int) -> bytes:
    """The exact bytes of leaf ``seq``, read with ``Log.leaves`` (which refuses a seq the
    log does not have with ``StoreError``). Unpacking reads the stream to its end, which
    ends its read transaction."""
    ((_, leaf),) = log.leaves(seq, seq + 1)
    return leaf


def root_from_leaves(log: Log, size: int | None = None) -> bytes:
    """The Merkle root of the first ``size`` leaves (default: all), hashed from the leaves
    ``Log.leaves`` returns, as an auditor computes it: independent of the stored nodes
    the log's proofs come from."""
    end = log.size if size is None else size
    return merkle.root_of([merkle.leaf_hash(leaf) for _, leaf in log.leaves(0, end)])


def signed_root(log: Log, size: int | None = None) -> bytes:
    """The root of the checkpoint the log signed at tree size ``size`` (default: its
    latest), verified with the log's own key (a ``SignedCheckpoint`` always is)."""
    checkpoint = log.checkpoint() if size is None else log.checkpoint_at(size)
    assert checkpoint is not None, f"the log signed no checkpoint at tree size {size}"
    assert checkpoint.log_key == log.verifier_key
    return checkpoint.root


def town_config(log: Log) -> TownConfig:
    """The town's configuration, from the genesis (leaf 0)."""
    genesis = decode_body(Envelope.from_bytes(Leaf.from_bytes(leaf_at(log, 0)).envelope).body)
    assert isinstance(genesis, Genesis), "leaf 0 is not a genesis"
    return genesis.config


#: The tree sizes at which :func:`build_town_log` commits a batch (and signs a checkpoint).
TOWN_LOG_CHECKPOINT_SIZES = (1, 11, 15, 19, 23, 27, 31, 32)


def build_town_log(data_dir: Path, town: Town) -> None:
    """A closed log of 32 entries in 8 batches holding every kind of entry: the genesis,
    staff and rules, awards and deductions, a council award, a redemption, an objection
    and the reversal it led to, a retired rule."""
    with create_log(data_dir, town, setup=True) as log:
        for _ in range(4):
            town.now_ms += 60_000
            awards = [town.award(f"resident-{n}", "clean-pond") for n in range(3)]
            log.append([*awards, town.award("resident-3", "burn-straw")], now_ms=town.now_ms)
        log.append(
            [
                town.award("resident-1", "mediate-dispute"),
                town.redeem("resident-0", 5),
                town.objection(11),
                town.reverse(11),
            ],
            now_ms=town.now_ms,
        )
        log.append([town.retire_rule("litter")], now_ms=town.now_ms)
        assert log.size == TOWN_LOG_CHECKPOINT_SIZES[-1]
