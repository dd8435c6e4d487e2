"""Loaders for the test vectors written by other projects.

The vectors are part of the repository, in ``tests/vectors`` (see its README.md for
provenance and the licences beside each set); set ``REDLIST_VECTORS`` to use another
copy. A missing vector file fails the test that needs it, never skips it: a plain
clone runs every vector test.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_DEFAULT_VECTORS = Path(__file__).resolve().parent / "vectors"


def vectors_dir() -> Path:
    """Where the vectors are expected (``REDLIST_VECTORS`` or the default), existing or not."""
    override = os.environ.get("REDLIST_VECTORS")
    return Path(override) if override else _DEFAULT_VECTORS


def require_vectors(*parts: str) -> Path:
    """The path ``parts`` inside the vectors directory; raises when it is absent."""
    path = vectors_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"test vectors not found at {path}: tests/vectors is part of the repository"
            " (or set REDLIST_VECTORS to another copy)"
        )
    return path


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return json.load(stream)


@dataclass(frozen=True)
class MerkleTreeVector:
    """``merkle/tree-8-leaves.json``: leaves, root by size, perfect subtree hashes by level."""

    leaf_inputs: tuple[bytes, ...]
    root_by_size: tuple[bytes, ...]
    node_hashes_by_level: tuple[tuple[bytes, ...], ...]


@dataclass(frozen=True)
class InclusionVector:
    """One ``merkle/inclusion/<case>/<name>.json`` case; ``name`` is ``<case>/<file stem>``."""

    name: str
    leaf_index: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    desc: str
    want_error: bool


@dataclass(frozen=True)
class ConsistencyVector:
    """One ``merkle/consistency/<case>/<name>.json`` case; ``name`` is ``<case>/<file stem>``."""

    name: str
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: tuple[bytes, ...]
    desc: str
    want_error: bool


def merkle_tree_vector() -> MerkleTreeVector:
    """The eight-leaf tree."""
    raw = _load_json(require_vectors("merkle", "tree-8-leaves.json"))
    return MerkleTreeVector(
        leaf_inputs=tuple(bytes.fromhex(text) for text in raw["leaf_inputs_hex"]),
        root_by_size=tuple(bytes.fromhex(text) for text in raw["root_by_size_hex"]),
        node_hashes_by_level=tuple(
            tuple(bytes.fromhex(text) for text in level)
            for level in raw["node_hashes_by_level_hex"]
        ),
    )


def _case_files(kind: str) -> list[tuple[str, Path]]:
    root = require_vectors("merkle", kind)
    return sorted(
        (path.relative_to(root).with_suffix("").as_posix(), path) for path in root.rglob("*.json")
    )


def inclusion_vectors() -> list[InclusionVector]:
    """Every inclusion case, sorted by name.

    ``proof: null`` becomes an empty proof.
    """
    cases = []
    for name, path in _case_files("inclusion"):
        raw = _load_json(path)
        cases.append(
            InclusionVector(
                name=name,
                leaf_index=raw["leafIdx"],
                tree_size=raw["treeSize"],
                root=_b64(raw["root"]),
                leaf_hash=_b64(raw["leafHash"]),
                proof=tuple(_b64(text) for text in raw["proof"] or ()),
                desc=raw["desc"],
                want_error=raw["wantErr"],
            )
        )
    return cases


def consistency_vectors() -> list[ConsistencyVector]:
    """Every consistency case, sorted by name; empty when the vectors are missing.

    ``proof: null`` becomes an empty proof.
    """
    cases = []
    for name, path in _case_files("consistency"):
        raw = _load_json(path)
        cases.append(
            ConsistencyVector(
                name=name,
                size1=raw["size1"],
                size2=raw["size2"],
                root1=_b64(raw["root1"]),
                root2=_b64(raw["root2"]),
                proof=tuple(_b64(text) for text in raw["proof"] or ()),
                desc=raw["desc"],
                want_error=raw["wantErr"],
            )
        )
    return cases


@dataclass(frozen=True)
class Ed25519Case:
    """One case of ``ed25519/edge-cases.json`` (see ``ed25519/README.md``).

    ``valid``: the verdict every verifier must reach (libsodium's); ``key_ok``: whether
    a ``key add`` may register ``public``; ``openssl``: what OpenSSL alone says.
    """

    id: str
    comment: str
    public: bytes
    message: bytes
    signature: bytes
    key_ok: bool
    valid: bool
    openssl: bool


def ed25519_cases() -> list[Ed25519Case]:
    """Every Ed25519 edge case, in file order."""
    return [
        Ed25519Case(
            id=raw["id"],
            comment=raw["comment"],
            public=bytes.fromhex(raw["pub"]),
            message=bytes.fromhex(raw["msg"]),
            signature=bytes.fromhex(raw["sig"]),
            key_ok=raw["key_ok"],
            valid=raw["valid"],
            openssl=raw["openssl"],
        )
        for raw in _load_json(require_vectors("ed25519", "edge-cases.json"))
    ]
