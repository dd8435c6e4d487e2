"""What a proposal still needs, in the reader's language (``redlist.staff.reviewcalls``):
worded from the data the node sends, or the node's English words from a node that sends
none."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from redlist.ledger import i18n
from redlist.staff.reviewcalls import ReviewItem
from redlist.v1 import ledger_pb2 as pb

BODY = b"\x81\xa1v\x01"
ENGLISH = "rule 'H01' needs 2 council signatures, it has 1"


@pytest.fixture
def chinese() -> Iterator[None]:
    i18n.setup(i18n.CHINESE)
    yield
    i18n.setup(i18n.ENGLISH)


def _item(still_needs: pb.StillNeeds | None, needs: str = ENGLISH) -> ReviewItem:
    message = pb.ReviewItem(
        number=3, state="pending", body=BODY, body_hash=hashlib.sha256(BODY).digest(), needs=needs
    )
    if still_needs is not None:
        message.still_needs.CopyFrom(still_needs)
    return ReviewItem.from_message(message)


def _council(has: int) -> pb.StillNeeds:
    return pb.StillNeeds(
        quorum="council", alternatives=[pb.SignatureQuorum(admin=0, council=2)], councils=has
    )


def test_the_council_quorum_is_worded_in_each_language(chinese: None) -> None:
    item = _item(_council(1))
    assert item.needs_in_words() == "1 名评议员的签名（共需 2 名，已有 1 名）"
    i18n.setup(i18n.ENGLISH)
    assert item.needs_in_words() == "1 more council signature (2 needed, 1 so far)"
    assert _item(_council(0)).needs_in_words() == "2 more council signatures (2 needed, 0 so far)"


def test_the_governance_quorum_lists_every_way_to_reach_it(chinese: None) -> None:
    needs = pb.StillNeeds(
        quorum="governance",
        alternatives=[
            pb.SignatureQuorum(admin=2, council=0),
            pb.SignatureQuorum(admin=1, council=2),
        ],
        admins=1,
        councils=1,
    )
    assert _item(needs).needs_in_words() == (
        "共须 2 名管理员，或 1 名管理员和 2 名评议员签名（本镇治理规则）；"
        "目前已有 1 名管理员、1 名评议员"
    )
    i18n.setup(i18n.ENGLISH)
    assert _item(needs).needs_in_words() == (
        "2 admins, or 1 admin and 2 council members to sign in all (town governance); "
        "1 admin and 1 council member so far"
    )


def test_every_signer_revoked(chinese: None) -> None:
    needs = pb.StillNeeds(quorum="signers")
    assert _item(needs).needs_in_words() == "一个有效的签名（签过名的密钥都已被吊销）"


def test_a_node_without_the_data_is_shown_in_its_own_words(chinese: None) -> None:
    assert _item(None).needs_in_words() == ENGLISH
    assert _item(pb.StillNeeds(quorum="a-quorum-of-tomorrow")).needs_in_words() == ENGLISH
    assert _item(None, needs="").needs_in_words() == ""
    assert _item(_council(1), needs="").still_needs is None  # needs nothing more
