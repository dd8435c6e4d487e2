"""Auditors' attestations: a resident's grade, recomputed and signed (DESIGN 8.6). Pure.

An auditor who verified a town's whole log signs, for each account, an attestation:
a C2SP signed note (algorithm 0x01, Ed25519; the key is named after the auditor)
whose text is exactly these eight lines, in this order, each ending in ``\\n``::

    redlist/attestation/v1
    origin <the log's origin>
    account <the account id>
    score <the score, decimal>
    grade <the grade's name>
    size <the tree size the figures are at, decimal>
    root <the RFC 6962 root at that size, canonical base64>
    expires <POSIX seconds from which it is no longer valid, decimal>

Each field line is its key, one space and its value. Decimals are canonical (no
leading zeros, no ``+``, no ``-0``); the score is a signed 64-bit number, the size
1 to 2^64 - 1, the expiry 0 to 2^63 - 1. The origin follows the rules of a key name
(a log key is named after it); the account is an account id of format v1; the grade
is a text field of format v1 (NFC, no control or invisible characters). No other
line, no blank line, no trailing space: a text has exactly one spelling, and
:meth:`Attestation.from_text` refuses any other.

**Domain separation.** The first line says what was signed, so no other signed note
can pass for an attestation: a checkpoint's second line is its tree size, never
``origin ...``; a cosignature (algorithm 0x04) signs ``cosignature/v1`` first, and
an attestation is only checked against Ed25519 (0x01) keys; an entry's signed
message starts ``redlist/entry/v1`` and a NUL byte, which note text cannot hold.

**The file.** An attestation travels with the checkpoint it refers to, as it was
when the auditor verified it (the log's signature and any cosignatures), in a JSON
file ``{"attestation": NOTE, "checkpoint": NOTE}``, written exactly as
:meth:`AttestationFile.to_bytes` writes it (two-space indent, those two keys in
that order, UTF-8, a final newline). :meth:`AttestationFile.from_bytes` refuses any
other spelling, so changing any byte of a file changes what it says.

:func:`verify_attestation` decides whether to rely on one: a trusted auditor's
signature (signatures by other keys are ignored, as in any signed note), not expired
at the time given (the caller reads the clock), the checkpoint's origin, size and
root equal to the attestation's, and, when the log's key is given, the checkpoint
signed by it and, when a policy is given, carrying the cosignatures it asks for.
Every reason to refuse is an ``AttestationError`` whose ``check`` names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redlist.ledger.errors import AttestationError, NoteError, PolicyError
from redlist.ledger.formatv1 import is_valid_account
from redlist.ledger.note.checkpoint import (
    MAX_TREE_SIZE,
    ROOT_HASH_SIZE,
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
)
from redlist.ledger.note.keys import ALG_ED25519, MAX_TIMESTAMP, NoteSigner, VerifierKey
from redlist.ledger.note.signed import Note, sign_note
from redlist.ledger.note.syntax import decode_base64, encode_base64, excerpt, name_problem
from redlist.ledger.policy import Policy, PolicyVerdict, evaluate
from redlist.ledger.text import text_problem

#: The first line of every attestation: what the auditor's signature is about.
HEADER = "redlist/attestation/v1"
#: The field lines after the header, in order.
FIELDS = ("origin", "account", "score", "grade", "size", "root", "expires")
#: Scores are signed 64-bit numbers (the protocol's ``int64``).
MIN_SCORE = -(1 << 63)
MAX_SCORE = (1 << 63) - 1
#: A grade's name is short text; a longer one is not a grade.
MAX_GRADE_LENGTH = 64
#: An attestation file holds two notes; anything larger is not one.
MAX_FILE_SIZE = 4 << 20

#: Every reason an attestation is refused, by the ``check`` its error carries.
CHECKS: Mapping[str, str] = {
    "format": "the file must be an attestation file, written as the verifier writes it",
    "auditor": "the attestation must be signed by an auditor the reader trusts",
    "signature": "the trusted auditor's signature must verify (nothing changed since)",
    "expired": "the attestation must not have passed its expiry",
    "checkpoint": "the checkpoint beside it must be the log state it attests",
    "log-signature": "that checkpoint must be signed by the log's key",
    "witness-policy": "that checkpoint must carry the cosignatures the policy requires",
}

_UNSIGNED = re.compile("0|[1-9][0-9]*")
_SIGNED = re.compile("0|-?[1-9][0-9]*")
_KEYS = ("attestation", "checkpoint")


@dataclass(frozen=True)
class Attestation:
    """What an auditor attests: at tree ``size`` (root ``root``) of log ``origin``,
    ``account`` has ``score`` and ``grade``; valid until POSIX second ``expires``.

    Construction checks every rule of the text form, so ``to_text`` always gives a
    text ``from_text`` reads back as the same value.
    """

    origin: str
    account: str
    score: int
    grade: str
    size: int
    root: bytes
    expires: int

    def __post_init__(self) -> None:
        problem = (
            name_problem(self.origin) if isinstance(self.origin, str) else "must be text"
        ) or text_problem(self.origin)
        if problem is not None:
            raise AttestationError("format", f"the attestation's origin {problem}")
        if not isinstance(self.account, str) or not is_valid_account(self.account):
            raise AttestationError(
                "format",
                f"the attestation's account {_quoted(self.account)} is not an account id",
            )
        _check_integer(self.score, MIN_SCORE, MAX_SCORE, "score")
        if not isinstance(self.grade, str) or not self.grade:
            raise AttestationError("format", "the attestation's grade must be non-empty text")
        problem = text_problem(self.grade)
        if problem is None and len(self.grade) > MAX_GRADE_LENGTH:
            problem = f"is longer than {MAX_GRADE_LENGTH} characters"
        if problem is not None:
            raise AttestationError("format", f"the attestation's grade {problem}")
        _check_integer(self.size, 1, MAX_TREE_SIZE, "tree size")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_HASH_SIZE:
            raise AttestationError(
                "format", f"the attestation's root hash must be {ROOT_HASH_SIZE} bytes"
            )
        _check_integer(self.expires, 0, MAX_TIMESTAMP, "expiry")

    def to_text(self) -> str:
        """The note text the auditor signs."""
        values = (
            self.origin,
            self.account,
            str(self.score),
            self.grade,
            str(self.size),
            encode_base64(self.root),
            str(self.expires),
        )
        lines = [HEADER, *(f"{key} {value}" for key, value in zip(FIELDS, values, strict=True))]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Attestation:
        """Read an attestation's note text; every deviation from ``to_text`` is refused."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise AttestationError("format", "an attestation's text must end with a newline")
        lines = text[:-1].split("\n")
        if lines[0] != HEADER:
            raise AttestationError(
                "format",
                f"the signed text is not an attestation: its first line is "
                f"{_quoted(lines[0])}, not {HEADER!r}",
            )
        if len(lines) != 1 + len(FIELDS):
            raise AttestationError(
                "format",
                f"an attestation has {1 + len(FIELDS)} lines ({HEADER}, then "
                f"{', '.join(FIELDS)}); this one has {len(lines)}",
            )
        values: dict[str, str] = {}
        for number, (key, line) in enumerate(zip(FIELDS, lines[1:], strict=True), start=2):
            found, space, value = line.partition(" ")
            if found != key or not space:
                raise AttestationError(
                    "format",
                    f"attestation line {number} must be {key!r}, a space and its value, "
                    f"found {_quoted(line)}",
                )
            values[key] = value
        try:
            root = decode_base64(values["root"], "the attestation's root hash")
        except NoteError as error:
            raise AttestationError("format", str(error)) from None
        return cls(
            origin=values["origin"],
            account=values["account"],
            score=_decimal(values["score"], _SIGNED, "score"),
            grade=values["grade"],
            size=_decimal(values["size"], _UNSIGNED, "tree size"),
            root=root,
            expires=_decimal(values["expires"], _UNSIGNED, "expiry"),
        )

    def matches(self, checkpoint: Checkpoint) -> str | None:
        """Why ``checkpoint`` is not the log state this attests (origin, size, root); None
        when it is."""
        for what, ours, theirs in (
            ("log", self.origin, checkpoint.origin),
            ("tree size", self.size, checkpoint.size),
            ("root hash", encode_base64(self.root), encode_base64(checkpoint.root)),
        ):
            if ours != theirs:
                return (
                    f"the attestation is for {what} {_quoted(str(ours))} but the checkpoint "
                    f"beside it has {_quoted(str(theirs))}"
                )
        return None


@dataclass(frozen=True)
class AttestationFile:
    """The two notes of an attestation file, as text: the signed attestation and the
    checkpoint (with its signatures) it refers to. Nothing is verified here."""

    attestation: str
    checkpoint: str

    def to_bytes(self) -> bytes:
        """The file's one spelling (see the module docstring)."""
        value = {"attestation": self.attestation, "checkpoint": self.checkpoint}
        return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> AttestationFile:
        """Read a file; anything but the bytes ``to_bytes`` writes is a ``format`` error."""
        if len(data) > MAX_FILE_SIZE:
            raise AttestationError(
                "format", f"the file is {len(data):,} bytes, more than an attestation file holds"
            )
        try:
            value = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise AttestationError("format", "the file is not UTF-8 text") from None
        except ValueError as error:
            raise AttestationError("format", f"the file is not JSON ({error})") from None
        if (
            not isinstance(value, dict)
            or tuple(value) != _KEYS
            or not all(isinstance(value[key], str) for key in _KEYS)
        ):
            raise AttestationError(
                "format",
                'an attestation file is a JSON object {"attestation": NOTE, "checkpoint": NOTE}'
                " holding two texts",
            )
        parsed = cls(value["attestation"], value["checkpoint"])
        if parsed.to_bytes() != data:
            raise AttestationError(
                "format",
                "the file is not written as the verifier writes it (spacing, escapes or key "
                "order differ): it was edited",
            )
        return parsed


@dataclass(frozen=True)
class VerifiedAttestation:
    """An attestation that passed :func:`verify_attestation`.

    ``auditor`` is the trusted key whose signature verified. ``checkpoint`` is the log
    state it refers to; ``signed_checkpoint`` the same verified against the log's key,
    or None when no log key was given. ``witnesses`` is the policy's verdict, or None.
    """

    attestation: Attestation
    auditor: VerifierKey
    checkpoint: Checkpoint
    signed_checkpoint: SignedCheckpoint | None
    witnesses: PolicyVerdict | None


def sign_attestation(
    attestation: Attestation, checkpoint: SignedCheckpoint, auditor: NoteSigner
) -> AttestationFile:
    """The file of ``attestation`` signed by ``auditor``, beside ``checkpoint``, which must
    be the log state it attests."""
    problem = attestation.matches(checkpoint.checkpoint)
    if problem is not None:
        raise AttestationError("checkpoint", problem)
    return AttestationFile(sign_note(attestation.to_text(), auditor), checkpoint.note)


def verify_attestation(
    file: AttestationFile,
    auditors: Sequence[VerifierKey],
    *,
    now: int,
    log_key: VerifierKey | None = None,
    policy: Policy | None = None,
) -> VerifiedAttestation:
    """Check ``file`` (see the module docstring); ``now`` is the time in POSIX seconds.

    ``auditors`` are the keys trusted to sign attestations (Ed25519, algorithm 0x01).
    The checks run in this order and the first that fails raises ``AttestationError``:
    format, auditor and signature, format of the signed text, expired, checkpoint,
    log-signature (only with ``log_key``), witness-policy (only with ``policy``, which
    needs ``log_key``). Keys or a policy that cannot be used raise ``NoteError`` or
    ``PolicyError``: that is the caller's mistake, not the file's.
    """
    auditor, text = _open(file.attestation, auditors)
    attestation = Attestation.from_text(text)
    if now >= attestation.expires:
        raise AttestationError(
            "expired",
            f"the attestation expired at {attestation.expires} (POSIX seconds); ask the "
            "auditor for a new one",
        )
    checkpoint = _checkpoint(file.checkpoint)
    problem = attestation.matches(checkpoint)
    if problem is not None:
        raise AttestationError("checkpoint", problem)
    signed = None
    verdict = None
    if policy is not None and log_key is None:
        raise PolicyError("a witness policy is checked on a checkpoint verified by the log's key")
    if log_key is not None:
        signed = _log_signed(file.checkpoint, log_key, attestation.origin)
        if policy is not None:
            verdict = _witnessed(policy, signed)
    return VerifiedAttestation(attestation, auditor, checkpoint, signed, verdict)


def _open(note_text: str, auditors: Sequence[VerifierKey]) -> tuple[VerifierKey, str]:
    """The trusted auditor whose signature verifies on the note, and the signed text."""
    if not auditors:
        raise NoteError("no trusted auditor key was given")
    for key in auditors:
        if not isinstance(key, VerifierKey) or key.algorithm != ALG_ED25519:
            raise NoteError(
                "an auditor's key is an Ed25519 note key (algorithm 0x01), not a "
                "witness's cosigning key"
            )
    try:
        note = Note.parse(note_text)
    except NoteError as error:
        raise AttestationError("format", f"the attestation is not a signed note: {error}") from None
    message = note.text.encode("utf-8")
    verified: VerifierKey | None = None
    for signature in note.signatures:
        for key in auditors:
            if not signature.is_by(key):
                continue
            if not key.verifies(message, signature.signature):
                raise AttestationError(
                    "signature",
                    f"the signature of auditor {key.describe()} does not verify: the "
                    "attestation was changed after it was signed",
                )
            verified = verified or key
    if verified is None:
        present = ", ".join(signature.describe() for signature in note.signatures)
        trusted = ", ".join(key.describe() for key in auditors)
        raise AttestationError(
            "auditor",
            f"the attestation is signed by {present}, which is not a trusted auditor "
            f"(trusted: {trusted})",
        )
    return verified, note.text


def _checkpoint(note_text: str) -> Checkpoint:
    try:
        return Checkpoint.from_text(Note.parse(note_text).text)
    except NoteError as error:
        raise AttestationError(
            "checkpoint", f"the checkpoint beside the attestation is not a checkpoint: {error}"
        ) from None


def _log_signed(note_text: str, log_key: VerifierKey, origin: str) -> SignedCheckpoint:
    if log_key.name != origin:
        raise AttestationError(
            "log-signature",
            f"the attestation is about log {_quoted(origin)}, but the log key given is for "
            f"{_quoted(log_key.name)}",
        )
    try:
        return open_checkpoint(note_text, log_key)
    except NoteError as error:
        raise AttestationError(
            "log-signature", f"the checkpoint is not signed by the log's key: {error}"
        ) from None


def _witnessed(policy: Policy, signed: SignedCheckpoint) -> PolicyVerdict:
    try:
        verdict = evaluate(policy, signed)
    except NoteError as error:
        raise AttestationError(
            "witness-policy", f"the checkpoint carries a bad cosignature: {error}"
        ) from None
    if not verdict.met:
        raise AttestationError("witness-policy", verdict.describe())
    return verdict


def _check_integer(value: int, least: int, most: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise AttestationError(
            "format", f"the attestation's {what} must be a whole number from {least} to {most}"
        )


def _decimal(text: str, pattern: re.Pattern[str], what: str) -> int:
    # Length first: a huge digit string is refused, not converted.
    if len(text) > 21 or pattern.fullmatch(text) is None:
        raise AttestationError(
            "format",
            f"the attestation's {what} must be a number in decimal without leading zeros, "
            f"found {_quoted(text)}",
        )
    return int(text)


def _quoted(value: object) -> str:
    return repr(excerpt(value)) if isinstance(value, str) else repr(value)
