"""Witness cosignatures on a checkpoint (c2sp.org/tlog-cosignature, DESIGN 8.1). Pure.

A cosignature/v1 line is ``— <witness name> <base64(key hash || T || signature)>``
where ``T`` is the 8-byte big-endian POSIX time and the signature is Ed25519 over
``"cosignature/v1\\ntime T\\n" || checkpoint text``. It says: at that time, this
was the largest tree of the log the witness had seen and found consistent.

Both functions take a ``SignedCheckpoint``: a cosignature is added to, or
checked on, a checkpoint whose log signature has already been verified.
"""

from __future__ import annotations

from redlist.ledger import crypto
from redlist.ledger.errors import NoteError
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.keys import (
    ALG_COSIGNATURE_V1,
    MAX_TIMESTAMP,
    TIMESTAMP_SIZE,
    NoteSigner,
    VerifierKey,
    cosignature_time,
    cosigned_message,
)
from redlist.ledger.note.signed import Note, NoteSignature
from redlist.ledger.note.syntax import excerpt


def cosign_checkpoint(
    signed: SignedCheckpoint, witness: NoteSigner, timestamp: int
) -> SignedCheckpoint:
    """``signed`` with ``witness``'s cosignature/v1 at POSIX time ``timestamp`` appended.

    The witness must also have checked the log's consistency before calling this.
    An earlier cosignature by the same witness key is replaced; every other
    signature line is kept as it was.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise NoteError("a cosignature time is an integer number of seconds")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"the cosignature time {timestamp} is out of range")
    message = cosigned_message(signed.text.encode("utf-8"), timestamp)
    cosigning_key = witness.cosignature_verifier()
    line = NoteSignature(
        witness.name,
        cosigning_key.key_hash,
        timestamp.to_bytes(TIMESTAMP_SIZE, "big") + witness.key.sign(message),
    )
    kept = tuple(signature for signature in signed.signatures if not signature.is_by(cosigning_key))
    return SignedCheckpoint(Note(signed.text, (*kept, line)).encode(), signed.log_key)


def verify_cosignature(signed: SignedCheckpoint, witness: VerifierKey) -> int:
    """Check ``witness``'s cosignature on a verified checkpoint; return its POSIX time."""
    name = excerpt(witness.name)
    if witness.algorithm != ALG_COSIGNATURE_V1:
        raise NoteError(f"key {name} is not a cosigning key (algorithm 0x04 needed)")
    for signature in signed.signatures:
        if not signature.is_by(witness):
            continue
        timestamp = cosignature_time(signature.signature)
        if timestamp is None:
            raise NoteError(f"the cosignature by {name} is malformed")
        message = cosigned_message(signed.text.encode("utf-8"), timestamp)
        if not crypto.verify(witness.public, message, signature.signature[TIMESTAMP_SIZE:]):
            raise NoteError(
                f"the cosignature by {name} does not verify: the checkpoint was changed"
                " or this witness did not cosign it"
            )
        return timestamp
    raise NoteError(f"the checkpoint has no cosignature by witness {name}")
