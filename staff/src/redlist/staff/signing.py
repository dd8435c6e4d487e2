"""Signing and sending one entry: the signers' key files, the envelope, the submission.

``seal`` signs the exact body bytes with every signer (``crypto.sign_entry``) and
puts the signatures in increasing key id order, as DESIGN 3.2 requires;
``submit_entry`` addresses a draft to the node's log, seals it and submits it alone, with
its free texts beside it.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from redlist.ledger import crypto, keyfile
from redlist.ledger.entry import MAX_ENVELOPE_SIZE, Body, EntrySignature, Envelope
from redlist.ledger.errors import FormatError, KeyFileError
from redlist.ledger.i18n import _
from redlist.staff.client import LedgerClient
from redlist.staff.entries import Draft, addressed

_Body = TypeVar("_Body", bound=Body)


def add_signer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--signer KEYFILE`` (required) and ``--cosigner KEYFILE`` (repeatable)."""
    parser.add_argument(
        "--signer",
        required=True,
        type=Path,
        metavar="KEYFILE",
        help=_("your private key file (from 'redlist keygen')"),
    )
    parser.add_argument(
        "--cosigner",
        action="append",
        default=[],
        type=Path,
        metavar="KEYFILE",
        help=_(
            "another staff member's private key file, signing too (repeat for each; "
            "council rules and reversals need the town's quorum of council members)"
        ),
    )


def read_signers(signer: Path, cosigners: Sequence[Path] = ()) -> tuple[crypto.SigningKey, ...]:
    """The signing keys in ``signer`` and ``cosigners``; each key may sign once."""
    keys: list[crypto.SigningKey] = []
    sources: dict[bytes, Path] = {}
    for path in (signer, *cosigners):
        if path in sources.values():
            raise KeyFileError(
                _(
                    "{path} is given twice (with --signer and --cosigner); each staff member signs "
                    "once: give each council member's own key file"
                ).format(path=path)
            )
        key = keyfile.read_signing_key(path)
        if key.key_id in sources:
            raise KeyFileError(
                _(
                    "{path} holds the same key as {sources} (key id {hex}); each staff member "
                    "signs "
                    "once"
                ).format(path=path, sources=sources[key.key_id], hex=key.key_id.hex())
            )
        sources[key.key_id] = path
        keys.append(key)
    return tuple(keys)


def submit_entry(
    client: LedgerClient,
    draft: Draft[_Body],
    signers: Sequence[crypto.SigningKey],
    *,
    action: str,
) -> tuple[_Body, int]:
    """Address ``draft`` to the node's log, sign it, submit it alone (with its texts) and
    prove it recorded.

    The log's name comes from the node's checkpoint, verified with the log key.
    Returns the body as recorded and its seq once the node has shown the entry in
    its log (``LedgerClient.prove_recorded``); ``action`` names the entry in a
    refusal ("the award", "rule V01").
    """
    addressed_draft = addressed(draft, client.latest().origin)
    body = addressed_draft.body
    envelope = seal(body, signers)
    result = client.submit([envelope], action=action, texts=[addressed_draft.texts])
    client.prove_recorded({result.seqs[0]: envelope}, result.checkpoint)
    return body, result.seqs[0]


def seal(body: Body, signers: Sequence[crypto.SigningKey]) -> bytes:
    """The envelope bytes of ``body`` signed by every key of ``signers``.

    The signatures cover the body's exact bytes (with the entry domain prefix)
    and are ordered by key id. Ed25519 is deterministic, so sealing the same body
    with the same keys always gives the same bytes.
    """
    if not signers:
        raise KeyFileError(_("an entry needs at least one signer"))
    body_bytes = body.to_bytes()
    ordered = sorted(signers, key=lambda key: key.key_id)
    for earlier, later in itertools.pairwise(ordered):
        if earlier.key_id == later.key_id:
            raise KeyFileError(
                _("key {hex} is given twice; each key signs once").format(hex=later.key_id.hex())
            )
    envelope = Envelope(
        body_bytes,
        tuple(EntrySignature(key.key_id, crypto.sign_entry(key, body_bytes)) for key in ordered),
    ).to_bytes()
    if len(envelope) > MAX_ENVELOPE_SIZE:
        raise FormatError(
            _(
                "the signed entry is {envelope_count} bytes, more than the "
                "{MAX_ENVELOPE_SIZE}-byte limit; shorten its texts"
            ).format(envelope_count=len(envelope), MAX_ENVELOPE_SIZE=MAX_ENVELOPE_SIZE)
        )
    return envelope
