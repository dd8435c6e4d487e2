"""A real node (127.0.0.1:0) refuses to register a key that is not a canonical Ed25519
point of prime order, and the forgeries such a key would allow (docs/format.md 3.1); it
refuses key and rule changes without the town's governance quorum (docs/format.md 6.2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.builders import RuleSpec, Town, create_log
from tests.node.serving import Running, metadata_of, rpc_error, run_node

from redlist.ledger import codec, crypto
from redlist.ledger.entry import Award, KeyChange
from redlist.ledger.log import Log
from redlist.v1 import ledger_pb2 as pb

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
    return town.sign(body, *town.governors)


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


# -- governance: the staff list and the catalogue change only with the quorum ---------


def test_a_rule_or_key_change_with_too_few_signatures_is_refused(log: Log, town: Town) -> None:
    """Defaults of docs/format.md: a rule needs an admin and 2 council members, a key 2
    admins or an admin and 2 council members; the admin's key alone changes nothing."""
    pond = RuleSpec("clean-pond", "Cleaned the village pond", "environment", 10_000)
    thief = crypto.SigningKey.generate()
    too_few = {
        "rule set": town.set_rule(pond, signers=(town.admin, town.council[0])),
        "rule retire": town.retire_rule("clean-pond", signers=(town.admin,)),
        "key add": town.add_key(thief, "Thief", ["admin", "grid"], signers=(town.admin,)),
        "key revoke": town.revoke_key(town.council[0], signers=town.council),
    }

    async def body(running: Running) -> None:
        size_before, checkpoint_before = log.size, await running.checkpoint()
        for what, envelope in too_few.items():
            error = await rpc_error(running.submit([envelope]))
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, what
            assert metadata_of(error) == {"redlist-index": "0", "redlist-check": "quorum"}
            assert "(town governance)" in (error.details() or ""), error.details()
        assert log.size == size_before
        assert await running.checkpoint() == checkpoint_before
        accepted = await running.submit([town.set_rule(pond)])  # admin and both council
        assert list(accepted.seqs) == [size_before]

    run_node(log, body)


def test_an_admin_key_is_rotated_by_the_quorum(log: Log, town: Town) -> None:
    new_admin = crypto.SigningKey.generate()
    with_council = (new_admin, *town.council)

    async def body(running: Running) -> None:
        await running.submit([town.add_key(new_admin, "Liu Jun (new key)", ["admin"])])
        revoked = await running.submit([town.revoke_key(town.admin, signers=with_council)])
        error = await rpc_error(running.submit([town.retire_rule("litter")]))
        assert metadata_of(error)["redlist-check"] == "signer-revoked"
        await running.submit([town.retire_rule("litter", signers=with_council)])
        error = await rpc_error(running.submit([town.revoke_key(new_admin, signers=with_council)]))
        assert metadata_of(error)["redlist-check"] == "key"
        assert "the last admin is never revoked" in (error.details() or "")
        every_role = ["admin", "cashier", "council", "grid"]
        again = town.add_key(new_admin, "Liu Jun", every_role, signers=with_council)
        error = await rpc_error(running.submit([again]))
        assert metadata_of(error)["redlist-check"] == "key"
        assert "is already registered" in (error.details() or "")
        keys = await running.stub.GetKeys(pb.GetKeysRequest())
        by_id = {key.key_id: key for key in keys.keys}
        assert by_id[town.admin.key_id].revoked == revoked.seqs[0]
        assert not by_id[new_admin.key_id].HasField("revoked")
        assert list(by_id[new_admin.key_id].roles) == ["admin"]
        assert [key.key_id for key in keys.keys] == sorted(by_id)
        assert keys.tree_size == log.size

    run_node(log, body)


def test_get_rules_gives_the_decided_text_the_node_holds(log: Log, town: Town) -> None:
    voted = RuleSpec(
        "night-patrol", "Night patrol", "public-safety", 4, decided="村民代表大会 2026-05-03"
    )

    async def body(running: Running) -> None:
        await running.submit([town.set_rule(voted)])
        rules = {
            rule.code: rule for rule in (await running.stub.GetRules(pb.GetRulesRequest())).rules
        }
        assert rules["night-patrol"].decided == "村民代表大会 2026-05-03"
        assert rules["clean-pond"].decided == ""

    run_node(log, body)
