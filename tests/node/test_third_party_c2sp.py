"""Our checkpoints and our witness's cosignatures, checked by a third party's C2SP code.

tlog-scales (PyPI ``tlog-scales``, pinned in the root ``test`` extra) is an independent,
pure-Python implementation of C2SP signed notes, checkpoints and cosignatures. Here it
parses the notes our node serves and verifies, with its own verifiers:

* the log's signature on a real log's checkpoint (key type 0x01, plain Ed25519);
* the cosignature line our witness returns (key type 0x04, ``cosignature/v1``), over
  the witness's real LMDB state, and the log's signature beside it;

and refuses both once the checkpoint text is altered. Verifier keys go to it as the
strings our ``GetWitnessKey`` and ``log.pub`` state, so the key ids must agree too.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from tests.builders import Town, create_log
from tlog_scales.signing import Vkey, VkeySet
from tlog_scales.tlog import Checkpoint

from redlist.ledger import merkle
from redlist.ledger.crypto import SigningKey
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.witnessstore import WitnessStore
from redlist.node.witness import Witness, WitnessConfig

WITNESS = NoteSigner("wendeng-witness", SigningKey.generate())


def _altered(note: str) -> str:
    """The note with its root replaced by another tree's (signatures left as they were)."""
    origin, size, _root, rest = note.split("\n", 3)
    other = merkle.MemoryTree([merkle.leaf_hash(b"rewritten")]).root()
    return "\n".join((origin, size, base64.b64encode(other).decode(), rest))


def test_tlog_scales_verifies_our_log_signature(tmp_path: Path) -> None:
    with create_log(tmp_path / "rushan", Town.generate(), setup=True) as log:
        note = log.checkpoint().note
        log_key = Vkey.from_string(log.verifier_key.encode())
    assert log_key.sig_type == 0x01
    checkpoint = Checkpoint.from_text(note)
    checkpoint.verify(log_key)  # raises on a bad signature
    assert checkpoint.serialize() == note  # it reads the note as we wrote it, byte for byte
    with pytest.raises(InvalidSignature):
        Checkpoint.from_text(_altered(note)).verify(log_key)


def test_tlog_scales_verifies_our_witness_s_cosignature(tmp_path: Path) -> None:
    with create_log(tmp_path / "rushan", Town.generate(), setup=True) as log:
        note = log.checkpoint().note
        log_vkey = log.verifier_key
    data = tmp_path / "wendeng"
    data.mkdir()
    store = WitnessStore.open(data)
    try:
        witness = Witness(WitnessConfig(WITNESS, {log_vkey.name: log_vkey}), store, data)
        line = witness.add_checkpoint(0, (), note)
        key_string = witness.config.verifier_key()
    finally:
        store.close()
    cosigned = note + line
    open_checkpoint(cosigned, log_vkey)  # our own reading of it, for comparison

    witness_key = Vkey.from_string(key_string)
    assert witness_key.sig_type == 0x04
    checkpoint = Checkpoint.from_text(cosigned)
    checkpoint.verify(witness_key)
    checkpoint.verify(Vkey.from_string(log_vkey.encode()))
    # Its set-of-keys check (the one a policy would use) finds both signatures valid.
    valid = VkeySet(witness_key, Vkey.from_string(log_vkey.encode())).verify(
        checkpoint.signatures, checkpoint
    )
    assert {vkey.sig_type for vkey, _signature in valid} == {0x01, 0x04}
    with pytest.raises(InvalidSignature):
        Checkpoint.from_text(_altered(cosigned)).verify(witness_key)
