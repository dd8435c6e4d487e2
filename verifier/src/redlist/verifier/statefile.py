"""The ``--state`` file: what an earlier successful run established, pinned for the next.

It holds the log key, the origin and the last verified checkpoint (its text, tree
size and root). The next run takes its log key from here when none is given (and
refuses a different one), and requires the new checkpoint to extend the pinned one,
so a log that later rewrites or rolls back its history is caught.

The file is JSON, written only after a successful audit and atomically (a temporary
file in the same directory, flushed to disk, then renamed over the old one), so an
interrupted run leaves the previous state intact. On reading, the pinned checkpoint
is verified again with the pinned key and must match the recorded size and root:
a damaged or hand-edited file is refused rather than trusted.

The semantics snapshot. ``redlist-verify node`` also keeps, next to the state
file (``FILE.semantics``), the points semantics' state at the pinned checkpoint:
town configuration, staff keys, rules, balances, the award and redemption
records later entries may object to or reverse, the monthly counts of the rules'
caps, every entry id (ids are unique
per log), the compact Merkle range and the last entry's leaf hash and time.
From it the next run checks only the entries added since, balances included.
The state file records the snapshot's SHA-256 and tree size (``semantics``), so
a damaged, stale or swapped snapshot is noticed and not used: the run then
starts from entry 0 again. The snapshot is msgpack; it grows with the log
(16 bytes per entry for the ids plus a record per award and redemption: about
50 bytes per entry on disk, about 500 in memory while it is used), which is
acceptable on an auditor's machine: a full audit holds the same state anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from redlist.ledger.entry import ID_SIZE, TownConfig
from redlist.ledger.errors import FormatError, NoteError, ProofError, RedlistError, SourceError
from redlist.ledger.i18n import _
from redlist.ledger.merkle import CompactRange
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.state import Balance, KeyRecord, MemoryState, RuleRecord, TargetRecord
from redlist.ledger.syncdir import sync_directory
from redlist.verifier.files import STATE_LIMIT, open_regular, read_limited
from redlist.verifier.results import STATE_FILE_SOURCE, AuditResult, ResumePoint, TrustedHead

FORMAT = "redlist-verify-state/1"
_KEYS = ("format", "log_key", "origin", "tree_size", "root", "checkpoint")
_SEMANTICS_KEY = "semantics"

#: Version 2 adds the rules' caps, the awards' qty and deed month, and the monthly
#: counts; a snapshot of version 1 is not used (the run audits from entry 0).
SEMANTICS_FORMAT = "redlist-verify-semantics/2"
SEMANTICS_SUFFIX = ".semantics"
_SEMANTICS_KEYS = ("file", "sha256", "tree_size")
_SHA256_HEX = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True)
class SemanticsRef:
    """Where the semantics snapshot of the pinned checkpoint is, and what it must hash to.

    ``file`` is a plain file name in the state file's directory.
    """

    file: str
    sha256: bytes
    tree_size: int

    def to_value(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256.hex(), "tree_size": self.tree_size}

    @classmethod
    def from_value(cls, value: Any, where: str) -> SemanticsRef:
        if not isinstance(value, dict) or sorted(value) != sorted(_SEMANTICS_KEYS):
            raise SourceError(
                _("{where}: 'semantics' must have the fields file, sha256, tree_size").format(
                    where=where
                )
            )
        name, digest, size = value["file"], value["sha256"], value["tree_size"]
        if not isinstance(name, str) or not name or Path(name).name != name or name in ("..", "."):
            raise SourceError(
                _("{where}: 'semantics' names no plain file in its directory").format(where=where)
            )
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise SourceError(
                _("{where}: 'semantics' sha256 must be 64 lowercase hex digits").format(where=where)
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise SourceError(
                _("{where}: 'semantics' tree_size must be a positive integer").format(where=where)
            )
        return cls(name, bytes.fromhex(digest), size)


@dataclass(frozen=True)
class PinnedState:
    """The last checkpoint a run verified (and with it, the log key it verified with)."""

    checkpoint: SignedCheckpoint
    #: The semantics snapshot at this checkpoint, when a node run saved one.
    semantics: SemanticsRef | None = None

    @classmethod
    def from_result(cls, result: AuditResult, semantics: SemanticsRef | None = None) -> PinnedState:
        """The state to pin after ``result`` verified (its checkpoint becomes the pin)."""
        return cls(result.checkpoint, semantics)

    @property
    def log_key(self) -> VerifierKey:
        return self.checkpoint.log_key

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def tree_size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    def head(self) -> TrustedHead:
        """The pinned tree head, as the audit takes it."""
        return TrustedHead(self.tree_size, self.root, STATE_FILE_SOURCE)

    def to_bytes(self) -> bytes:
        value = {
            "format": FORMAT,
            "log_key": self.log_key.encode(),
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "checkpoint": self.checkpoint.note,
        }
        if self.semantics is not None:
            value[_SEMANTICS_KEY] = self.semantics.to_value()
        return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str | None = None) -> PinnedState:
        """Read and re-verify a state file's bytes; SourceError when it cannot be trusted.
        ``where`` names the file in messages (default: "the state file")."""
        where = where if where is not None else _("the state file")
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SourceError(
                _("{where} is not valid JSON; it is damaged").format(where=where)
            ) from None
        if not isinstance(value, dict) or sorted(set(value) - {_SEMANTICS_KEY}) != sorted(_KEYS):
            raise SourceError(
                _("{where} does not have the fields {join}").format(
                    where=where, join=", ".join(_KEYS)
                )
            )
        if value["format"] != FORMAT:
            raise SourceError(
                _("{where} has format {value!r}, expected {FORMAT!r}").format(
                    where=where, value=value["format"], FORMAT=FORMAT
                )
            )
        try:
            log_key = VerifierKey.parse(_text(value, "log_key", where))
            checkpoint = open_checkpoint(_text(value, "checkpoint", where), log_key)
        except NoteError as exc:
            raise SourceError(_("{where} is damaged: {exc}").format(where=where, exc=exc)) from None
        root_hex = _text(value, "root", where)
        if (
            value["origin"] != checkpoint.origin
            or value["tree_size"] != checkpoint.size
            or root_hex != checkpoint.root.hex()
        ):
            raise SourceError(
                _(
                    "{where} is damaged: its origin, tree size or root do not "
                    "match the checkpoint it holds"
                ).format(where=where)
            )
        semantics = None
        if _SEMANTICS_KEY in value:
            semantics = SemanticsRef.from_value(value[_SEMANTICS_KEY], where)
            if semantics.tree_size != checkpoint.size:
                raise SourceError(
                    _(
                        "{where} is damaged: its semantics snapshot is for "
                        "{tree_size} entries, its checkpoint for {size}"
                    ).format(where=where, tree_size=semantics.tree_size, size=checkpoint.size)
                )
        return cls(checkpoint, semantics)


def load_state(path: Path) -> PinnedState | None:
    """The state pinned in ``path``, or None when the file does not exist yet."""
    try:
        data = read_limited(path, STATE_LIMIT, _("the state file"))
    except FileNotFoundError:
        return None
    return PinnedState.from_bytes(data, _("the state file {path}").format(path=path))


def save_state(path: Path, state: PinnedState) -> None:
    """Write ``state`` to ``path`` atomically: the old file stays until the new one is complete."""
    _write_atomically(path, state.to_bytes(), _("the state file"))


def semantics_path(state_path: Path) -> Path:
    """The semantics snapshot kept beside the state file ``state_path``."""
    return state_path.with_name(state_path.name + SEMANTICS_SUFFIX)


def save_semantics(state_path: Path, origin: str, point: ResumePoint) -> SemanticsRef:
    """Write the snapshot of ``point`` beside ``state_path`` (atomically); record the
    returned reference in the state file written after it."""
    data = encode_semantics(origin, point)
    path = semantics_path(state_path)
    _write_atomically(path, data, _("the semantics snapshot"))
    return SemanticsRef(path.name, hashlib.sha256(data).digest(), point.size)


def load_semantics(state_path: Path, pinned: PinnedState) -> ResumePoint:
    """The snapshot the state file ``pinned`` refers to, checked against it.

    Raises ``SourceError`` saying why it cannot be used (none recorded, missing,
    unreadable, another hash, or not matching the pinned checkpoint); the caller
    then audits from entry 0 instead.
    """
    reference = pinned.semantics
    if reference is None:
        raise SourceError(_("the state file records no semantics snapshot"))
    path = state_path.with_name(reference.file)
    try:
        with open_regular(path, "the semantics snapshot") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise SourceError(_("the semantics snapshot {path} is missing").format(path=path)) from None
    except OSError as exc:
        raise SourceError(
            _("cannot read the semantics snapshot {path}: {exc}").format(path=path, exc=exc)
        ) from None
    if hashlib.sha256(data).digest() != reference.sha256:
        raise SourceError(
            _(
                "the semantics snapshot {path} is not the one the state file "
                "recorded (its SHA-256 differs)"
            ).format(path=path)
        )
    try:
        origin, point = decode_semantics(data)
    except FormatError as exc:
        raise SourceError(
            _("the semantics snapshot {path} cannot be read: {exc}").format(path=path, exc=exc)
        ) from None
    if (
        origin != pinned.origin
        or point.size != pinned.tree_size
        or point.tree.root() != pinned.root
    ):
        raise SourceError(
            _(
                "the semantics snapshot {path} is not of the pinned checkpoint "
                "(log {origin}, {tree_size} entries)"
            ).format(path=path, origin=pinned.origin, tree_size=pinned.tree_size)
        )
    return point


def encode_semantics(origin: str, point: ResumePoint) -> bytes:
    """The snapshot's bytes: a msgpack map, records as arrays, ids in seq order."""
    state = point.state
    config = state.config()
    if config is None:
        raise RedlistError(_("a semantics snapshot needs the genesis configuration"))
    ids_by_seq: list[bytes] = [b""] * point.size
    for entry_id, seq in state.entry_ids.items():
        ids_by_seq[seq] = entry_id
    if len(state.entry_ids) != point.size or any(len(item) != ID_SIZE for item in ids_by_seq):
        raise RedlistError(_("the audited state does not hold exactly one entry id per entry"))
    value = {
        "balances": [
            [account, balance.earned, balance.redeemed, balance.entries]
            for account, balance in sorted(state.balances.items())
        ],
        "config": config.to_value(),
        "entry_ids": b"".join(ids_by_seq),
        "format": SEMANTICS_FORMAT,
        "keys": [
            [
                record.key_id,
                record.public,
                record.name,
                sorted(record.roles),
                record.added,
                record.revoked,
            ]
            for record in state.keys.values()
        ],
        "last_leaf_hash": point.last_leaf_hash,
        "last_time": point.last_time,
        "origin": origin,
        "month_counts": [
            [account, rule, month, qty]
            for (account, rule, month), qty in sorted(state.month_counts.items())
        ],
        "rules": [
            [
                rule.code,
                rule.title,
                rule.module,
                rule.points,
                rule.council,
                rule.active,
                rule.seq,
                rule.max_qty,
                rule.max_per_month,
            ]
            for rule in state.rules.values()
        ],
        "targets": [
            [
                seq,
                target.kind,
                target.account,
                target.points,
                target.rule,
                target.reversed_by,
                target.qty,
                target.month,
            ]
            for seq, target in sorted(state.targets.items())
        ],
        "tree": list(point.tree.hashes),
        "tree_size": point.size,
    }
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def decode_semantics(data: bytes) -> tuple[str, ResumePoint]:
    """The origin and resume point in a snapshot; ``FormatError`` when it is not one."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise FormatError(_("not msgpack ({name})").format(name=type(exc).__name__)) from None
    if not isinstance(value, dict) or value.get("format") != SEMANTICS_FORMAT:
        raise FormatError(
            _("not a {SEMANTICS_FORMAT} snapshot").format(SEMANTICS_FORMAT=SEMANTICS_FORMAT)
        )
    try:
        return _str(value["origin"]), _resume_point(value)
    except (KeyError, TypeError, ValueError) as exc:  # a missing field, a wrong shape
        raise FormatError(
            _("its layout is not {SEMANTICS_FORMAT} ({exc!r})").format(
                SEMANTICS_FORMAT=SEMANTICS_FORMAT, exc=exc
            )
        ) from None
    except ProofError as exc:  # the compact range
        raise FormatError(str(exc)) from None


def _resume_point(value: dict[str, Any]) -> ResumePoint:
    size = _int(value["tree_size"])
    tree = CompactRange.from_hashes(size, value["tree"])
    state = MemoryState()
    state.set_config(TownConfig.from_value(value["config"]))
    for key_id, public, name, roles, added, revoked in value["keys"]:
        record = KeyRecord(
            _bytes(key_id),
            _bytes(public),
            _str(name),
            frozenset(_str(role) for role in roles),
            _int(added),
            _optional_int(revoked),
        )
        state.put_key(record)
    for code, title, module, points, council, active, seq, max_qty, max_per_month in value["rules"]:
        rule = RuleRecord(
            _str(code),
            _str(title),
            _str(module),
            _int(points),
            _bool(council),
            _bool(active),
            _int(seq),
            _optional_int(max_qty),
            _optional_int(max_per_month),
        )
        state.put_rule(rule)
    for account, earned, redeemed, entries in value["balances"]:
        state.put_balance(_str(account), Balance(_int(earned), _int(redeemed), _int(entries)))
    for seq, kind, account, points, rule_code, reversed_by, qty, month in value["targets"]:
        target = TargetRecord(
            _str(kind),
            _str(account),
            _int(points),
            _str(rule_code),
            _optional_int(reversed_by),
            _int(qty),
            _str(month),
        )
        state.put_target(_int(seq), target)
    for account, rule_code, month, qty in value["month_counts"]:
        if _int(qty) < 1:
            raise FormatError(_("it holds a monthly count below 1"))
        state.put_month_qty(_str(account), _str(rule_code), _str(month), _int(qty))
    ids = _bytes(value["entry_ids"])
    if len(ids) != ID_SIZE * size:
        raise FormatError(
            _("it holds {value} entry ids for {size} entries").format(
                value=len(ids) // ID_SIZE, size=size
            )
        )
    for seq, offset in enumerate(range(0, len(ids), ID_SIZE)):
        state.put_entry_id(ids[offset : offset + ID_SIZE], seq)
    if len(state.entry_ids) != size:
        raise FormatError(_("it holds the same entry id twice"))
    return ResumePoint(tree, _bytes(value["last_leaf_hash"]), _int(value["last_time"]), state)


def _write_atomically(path: Path, data: bytes, what: str) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise SourceError(
            _("cannot write {what} in {directory}: {value}").format(
                what=what, directory=directory, value=exc.strerror or exc
            )
        ) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SourceError(
            _("cannot write {what} {path}: {value}").format(
                what=what, path=path, value=exc.strerror or exc
            )
        ) from None
    sync_directory(directory, required=False)


def _text(value: dict[str, Any], key: str, where: str) -> str:
    item = value[key]
    if not isinstance(item, str):
        raise SourceError(_("{where}: '{key}' must be text").format(where=where, key=key))
    return item


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise FormatError(_("expected text, found {name}").format(name=type(value).__name__))
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FormatError(
            _("expected true or false, found {name}").format(name=type(value).__name__)
        )
    return value


def _optional_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(_("expected an integer, found {name}").format(name=type(value).__name__))
    return value


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise FormatError(_("expected bytes, found {name}").format(name=type(value).__name__))
    return value


__all__ = [
    "FORMAT",
    "SEMANTICS_FORMAT",
    "SEMANTICS_SUFFIX",
    "PinnedState",
    "SemanticsRef",
    "decode_semantics",
    "encode_semantics",
    "load_semantics",
    "load_state",
    "save_semantics",
    "save_state",
    "semantics_path",
]
