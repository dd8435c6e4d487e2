"""A bundle written from DESIGN.md alone, without any redlist code, must verify.

Everything here is built with msgpack, hashlib, base64 and PyNaCl, the way an
outside implementer would: entry bodies, envelopes, leaves, the hash chain, the
RFC 6962 root, the C2SP checkpoint and the verifier key. Only the verifier's
command line is ours. Then every signed rule violation and every tampering of
that bundle must be rejected with exit 1, naming the seq.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import nacl.signing
import pytest

from redlist.verifier.cli import main as verify_main

ORIGIN = "outsider.example/town"
T0 = 1_767_225_600_000
#: The day of T0 (and of every ``at`` below) in the town's zone, Asia/Shanghai.
DAY = "2026-01-01"


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _pack(value: Any) -> bytes:
    def ordered(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: ordered(item[key]) for key in sorted(item, key=str.encode)}
        if isinstance(item, list):
            return [ordered(element) for element in item]
        return item

    return msgpack.packb(ordered(item=value), use_bin_type=True)


def _mth(hashes: list[bytes]) -> bytes:
    if not hashes:
        return _sha(b"")
    if len(hashes) == 1:
        return hashes[0]
    split = 1
    while split * 2 < len(hashes):
        split *= 2
    return _sha(b"\x01" + _mth(hashes[:split]) + _mth(hashes[split:]))


#: The signers a key or rule entry needs once the log is set up: by default (a genesis
#: without "governance") an admin and the council's quorum of 2.
GOVERNORS = ("admin", "council1", "council2")

#: The free-text fields (DESIGN 9.2): the body holds a salted commitment, never the text.
TEXT_FIELDS = ("decided", "note", "item", "text", "reason")


def _commit(text: str, salt: bytes) -> bytes:
    return _sha(b"redlist/text/v1\x00" + salt + text.encode("utf-8"))


class Outsider:
    """An independent writer of format v1."""

    def __init__(self) -> None:
        self.keys = {
            name: nacl.signing.SigningKey(_sha(name.encode()))
            for name in ("admin", "grid", "council1", "council2", "cashier", "log")
        }
        self.bodies: list[tuple[dict[str, Any], tuple[str, ...]]] = []
        self.counter = 0
        #: (seq, field, text, salt) of every free text, for a texts file.
        self.texts: list[tuple[int, str, str, bytes]] = []

    def pub(self, name: str) -> bytes:
        return bytes(self.keys[name].verify_key)

    def add(self, kind: str, signers: tuple[str, ...], **fields: Any) -> int:
        self.counter += 1
        body = {
            "v": 1,
            "kind": kind,
            "log": ORIGIN,
            "id": self.counter.to_bytes(16, "big"),
            "at": T0 + self.counter * 1000,
            **fields,
        }
        if kind == "award":
            body.setdefault("date", DAY)  # the day of the deed (DESIGN 3.4)
        for name in TEXT_FIELDS:
            if isinstance(body.get(name), str):
                salt = _sha(b"outsider salt" + body["id"] + name.encode())[:16]
                self.texts.append((len(self.bodies), name, body[name], salt))
                body[name] = _commit(body[name], salt)
        self.bodies.append((body, signers))
        return len(self.bodies) - 1

    def write_texts(self, out: Path) -> None:
        """texts.jsonl as docs/format.md describes it: one JSON object per line."""
        lines = [
            json.dumps({"seq": seq, "field": name, "text": text, "salt": salt.hex()})
            for seq, name, text, salt in self.texts
        ]
        (out / "texts.jsonl").write_text("".join(line + "\n" for line in lines), "utf-8")

    def envelope(self, body: dict[str, Any], signers: tuple[str, ...]) -> bytes:
        body_bytes = _pack(body)
        sigs = []
        for name in signers:
            key_id = _sha(self.pub(name))[:8]
            sig = self.keys[name].sign(b"redlist/entry/v1\x00" + body_bytes).signature
            sigs.append([key_id, sig])
        sigs.sort(key=lambda pair: pair[0])
        return _pack([body_bytes, sigs])

    def vkey(self) -> str:
        key_data = b"\x01" + self.pub("log")
        key_hash = _sha(ORIGIN.encode() + b"\n" + key_data)[:4]
        return f"{ORIGIN}+{key_hash.hex()}+{base64.b64encode(key_data).decode()}"

    def write(self, out: Path) -> None:
        leaves, prev = [], bytes(32)
        for seq, (body, signers) in enumerate(self.bodies):
            leaf = _pack([seq, T0 + seq * 1000 + 500, prev, self.envelope(body, signers)])
            leaves.append(leaf)
            prev = _sha(b"\x00" + leaf)
        root = _mth([_sha(b"\x00" + leaf) for leaf in leaves])
        text = f"{ORIGIN}\n{len(leaves)}\n{base64.b64encode(root).decode()}\n"
        key_hash = _sha(ORIGIN.encode() + b"\n\x01" + self.pub("log"))[:4]
        signature = self.keys["log"].sign(text.encode()).signature
        note = f"{text}\n— {ORIGIN} {base64.b64encode(key_hash + signature).decode()}\n"
        out.mkdir()
        (out / "manifest.json").write_text(
            json.dumps(
                {"format": "redlist-bundle/1", "origin": ORIGIN, "start": 0, "end": len(leaves)}
            )
        )
        (out / "checkpoint").write_text(note, encoding="utf-8")
        (out / "leaves").write_bytes(
            b"".join(msgpack.packb(leaf, use_bin_type=True) for leaf in leaves)
        )


def _town() -> Outsider:
    town = Outsider()
    town.add(
        "genesis",
        ("admin",),
        admin=town.pub("admin"),
        config={
            "base": 1000,
            "grades": [
                ["AAA", 1050],
                ["AA", 1030],
                ["A", 960],
                ["B", 850],
                ["C", 600],
                ["D", None],
            ],
            "quorum": 2,
            "publicity_days": 7,
            "tz": "Asia/Shanghai",
        },
    )
    town.add("key", ("admin",), op="add", pub=town.pub("grid"), name="Wang", roles=["grid"])
    for name in ("council1", "council2"):
        town.add("key", ("admin",), op="add", pub=town.pub(name), name=name, roles=["council"])
    town.add("key", ("admin",), op="add", pub=town.pub("cashier"), name="Chen", roles=["cashier"])
    town.add(
        "rule",
        GOVERNORS,
        op="set",
        code="V01",
        title="Pond cleaning",
        module="volunteer",
        points=10,
        council=False,
    )
    town.add(
        "rule",
        GOVERNORS,
        op="set",
        code="E01",
        title="Burning straw",
        module="environment",
        points=-20,
        council=False,
    )
    town.add(
        "rule",
        GOVERNORS,
        op="set",
        code="L01",
        title="Saving a life",
        module="safety",
        points=50,
        council=True,
    )
    town.add("award", ("grid",), account="r-001", rule="V01", qty=3, note="pond")
    town.add("award", ("council1", "council2"), account="r-001", rule="L01", qty=1)
    town.add("award", ("grid",), account="r-002", rule="E01", qty=1)
    award = town.add("award", ("grid",), account="r-002", rule="V01", qty=1)
    town.add("redeem", ("cashier",), account="r-001", points=30, item="rice")
    town.add("objection", ("grid",), target=award, text="was not there")
    town.add("reverse", ("council1", "council2"), target=award, reason="upheld")
    return town


def _run(bundle: Path, vkey: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = verify_main(["bundle", str(bundle), "--log-key", vkey, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_outsider_bundle_verifies_with_matching_balances(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = _town()
    town.write(tmp_path / "b")
    code, report = _run(tmp_path / "b", town.vkey(), capsys)
    assert code == 0, report
    assert report["ok"] is True
    assert report["tree_size"] == len(town.bodies)
    assert report["accounts"]["r-001"] == {
        "score": 1080,
        "spendable": 50,
        "redeemed": 30,
        "grade": "AAA",
    }
    assert report["accounts"]["r-002"] == {
        "score": 980,
        "spendable": -20,
        "redeemed": 0,
        "grade": "A",
    }


def _violate(change: Callable[[Outsider], None]) -> Outsider:
    town = _town()
    change(town)
    return town


VIOLATIONS: dict[str, tuple[Callable[[Outsider], None], str]] = {
    "unknown signer": (
        lambda t: t.add("award", ("log",), account="r-1", rule="V01", qty=1),
        "signer-unknown",
    ),
    "wrong role": (
        lambda t: t.add("award", ("cashier",), account="r-1", rule="V01", qty=1),
        "signer-role",
    ),
    "unknown rule": (
        lambda t: t.add("award", ("grid",), account="r-1", rule="X", qty=1),
        "rule-inactive",
    ),
    "no quorum": (
        lambda t: t.add("award", ("council1",), account="r-1", rule="L01", qty=1),
        "quorum",
    ),
    "overdraw": (
        lambda t: t.add("redeem", ("cashier",), account="r-001", points=51, item="x"),
        "overdraw",
    ),
    "double reverse": (
        lambda t: t.add("reverse", ("council1", "council2"), target=11, reason="again"),
        "double-reverse",
    ),
    "wrong log": (
        lambda t: t.bodies.append(
            ({**t.bodies[-1][0], "log": "other/log", "id": b"\xee" * 16}, t.bodies[-1][1])
        ),
        "log",
    ),
    "second genesis": (
        lambda t: t.add(
            "genesis", ("admin",), admin=t.pub("admin"), config=t.bodies[0][0]["config"]
        ),
        "genesis",
    ),
    "deed date after the day of at": (
        lambda t: t.add("award", ("grid",), account="r-1", rule="V01", qty=1, date="2026-01-02"),
        "deed-date",
    ),
    "deed date more than 92 days back": (
        lambda t: t.add("award", ("grid",), account="r-1", rule="V01", qty=1, date="2025-09-30"),
        "deed-date",
    ),
    "qty over max_qty": (
        lambda t: (
            t.add(
                "rule",
                GOVERNORS,
                op="set",
                code="P01",
                title="Patrol",
                module="safety",
                points=4,
                council=False,
                max_qty=2,
                max_per_month=3,
            ),
            t.add("award", ("grid",), account="r-1", rule="P01", qty=3),
        ),
        "max-qty",
    ),
    "qty over max_per_month": (
        lambda t: (
            t.add(
                "rule",
                GOVERNORS,
                op="set",
                code="P01",
                title="Patrol",
                module="safety",
                points=4,
                council=False,
                max_qty=2,
                max_per_month=3,
            ),
            t.add("award", ("grid",), account="r-1", rule="P01", qty=2, date="2025-12-31"),
            t.add("award", ("grid",), account="r-1", rule="P01", qty=2),
            t.add("award", ("grid",), account="r-1", rule="P01", qty=2, date="2025-12-01"),
        ),
        "max-per-month",
    ),
    "revoked signer": (
        lambda t: (
            t.add("key", GOVERNORS, op="revoke", pub=t.pub("grid")),
            t.add("award", ("grid",), account="r-1", rule="V01", qty=1),
        ),
        "signer-revoked",
    ),
    # Governance (the genesis has none: the defaults of docs/format.md apply).
    "rule set by the admin alone": (
        lambda t: t.add(
            "rule",
            ("admin",),
            op="set",
            code="V01",
            title="Pond",
            module="environment",
            points=10_000,
            council=False,
        ),
        "quorum",
    ),
    "rule retired by the admin and one council member": (
        lambda t: t.add("rule", ("admin", "council1"), op="retire", code="V01"),
        "quorum",
    ),
    "key added by the admin alone after the first rule": (
        lambda t: t.add(
            "key", ("admin",), op="add", pub=t.pub("log"), name="Thief", roles=["admin"]
        ),
        "quorum",
    ),
    "key revoked by two council members without an admin": (
        lambda t: t.add("key", ("council1", "council2"), op="revoke", pub=t.pub("grid")),
        "quorum",
    ),
    "the last admin revoked": (
        lambda t: t.add("key", GOVERNORS, op="revoke", pub=t.pub("admin")),
        "key",
    ),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_signed_violations_are_rejected_naming_the_seq(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, check = VIOLATIONS[name]
    town = _violate(change)
    town.write(tmp_path / "b")
    code, report = _run(tmp_path / "b", town.vkey(), capsys)
    assert code == 1
    assert report["ok"] is False
    assert report["error"]["check"] == check
    assert report["error"]["seq"] == len(town.bodies) - 1


def test_every_byte_of_the_outsider_leaves_is_protected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = _town()
    town.write(tmp_path / "b")
    data = (tmp_path / "b" / "leaves").read_bytes()
    for offset in range(0, len(data), max(1, len(data) // 300)):
        tampered = bytearray(data)
        tampered[offset] ^= 0x40
        (tmp_path / "b" / "leaves").write_bytes(bytes(tampered))
        code, report = _run(tmp_path / "b", town.vkey(), capsys)
        assert code == 1, f"byte {offset} changed and the bundle still verified"
        assert report["ok"] is False
