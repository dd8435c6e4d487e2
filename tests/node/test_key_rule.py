"""A real node (127.0.0.1:0) refuses to register a key that is not a canonical Ed25519
point of prime order, and the forgeries such a key would allow (docs/format.md 3.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.builders import Town, create_log
from tests.node.serving import Running, metadata_of, rpc_error, run_node

from redlist.ledger import codec, crypto
from redlist.ledger.entry import Award, KeyChange
from redlist.ledger.log import Log

#: Keys the issue's attacker registered on a node built before the rule: the identity,
#: the order-2 point, an order-8 point, and the identity written with y = p + 1.
BAD_KEYS = {
    "identity": bytes([1]) + bytes(31),
    "order 2": bytes.fromhex("ec" + "ff" * 30 + "7f"),
    "order 8": bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    "identity, y = p + 1": bytes.fromhex("ee" + "ff" * 30 + "7f"),
}
#: R = B, S = 1: a signature of any message by the identity key, for OpenSSL.
FORGERY = bytes.fromhex("58" + "66" * 31) + (1).to_bytes(32, "little")


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    with create_log(tmp_path / "data", town, setup=True) as opened:
        yield opened


def _key_add(town: Town, public: bytes) -> bytes:
    body = KeyChange(town.origin, town.next_id(), town.now_ms, "add", public, "mallory", ("grid",))
    return town.sign(body, town.admin)


@pytest.mark.parametrize("name", sorted(BAD_KEYS))
def test_a_small_order_key_add_is_refused_and_nothing_is_written(
    log: Log, town: Town, name: str
) -> None:
    public = BAD_KEYS[name]
    envelope = _key_add(town, public)

    async def body(running: Running) -> None:
        size_before, checkpoint_before = log.size, await running.checkpoint()
        error = await rpc_error(running.submit([envelope]))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        details = error.details() or ""
        assert details.startswith(
            f"envelope 0: key {crypto.key_id(public).hex()} (mallory) cannot be registered: "
        ), details
        assert details.endswith(" [key-point]"), details
        assert metadata_of(error) == {"redlist-index": "0", "redlist-check": "key-point"}
        assert log.size == size_before
        assert await running.checkpoint() == checkpoint_before

    run_node(log, body)


def test_after_the_refusal_the_forgery_finds_no_key(log: Log, town: Town) -> None:
    public = BAD_KEYS["identity"]
    award = Award(
        town.origin, town.next_id(), town.now_ms, "resident-1", "clean-pond", date=town.day()
    ).to_bytes()
    forged = codec.encode([award, [[crypto.key_id(public), FORGERY]]])

    async def body(running: Running) -> None:
        await rpc_error(running.submit([_key_add(town, public)]))
        error = await rpc_error(running.submit([forged]))
        assert metadata_of(error)["redlist-check"] == "signer-unknown"
        # An ordinary key is still registered as before.
        good = crypto.SigningKey.generate()
        accepted = await running.submit([_key_add(town, good.public)])
        assert list(accepted.seqs) == [log.size - 1]

    run_node(log, body)
