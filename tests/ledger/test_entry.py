"""Bodies, envelopes and leaves: what decodes, what is refused, and round trips."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import codec
from redlist.ledger.entry import (
    ACCOUNT_CHARACTERS,
    MAX_ACCOUNT_LENGTH,
    MAX_ENVELOPE_SIZE,
    Award,
    EntrySignature,
    Envelope,
    Genesis,
    KeyChange,
    Leaf,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    decode_body,
    is_valid_account,
)
from redlist.ledger.errors import FormatError
from redlist.ledger.governance import Alternative, Governance, Tally
from redlist.ledger.textcommit import commit
from redlist.node.towncfg import DEFAULT_TOWN_CONFIG

# Wendeng's published scale (DESIGN 3.4), a new node's default; its values are pinned
# in tests/node/test_init_export.py.
WENDENG = DEFAULT_TOWN_CONFIG
LOG = "dongguan.example/redlist"
ENTRY_ID = bytes(range(16))
SALT = bytes(16)

SAMPLES = [
    Genesis(LOG, ENTRY_ID, 1, b"\x01" * 32, WENDENG),
    KeyChange(LOG, ENTRY_ID, 2, "add", b"\x02" * 32, "Wang Fang", ("grid", "council")),
    KeyChange(LOG, ENTRY_ID, 2, "revoke", b"\x02" * 32),
    RuleChange(LOG, ENTRY_ID, 3, "set", "V01", "Pond cleaning", "volunteer", 5, False),
    RuleChange(LOG, ENTRY_ID, 3, "set", "E02", "Burning straw", "environment", -20, False),
    RuleChange(LOG, ENTRY_ID, 3, "retire", "V01"),
    Award(
        LOG,
        ENTRY_ID,
        4,
        "dgc-0001",
        "V01",
        2,
        commit("cleaned the pond", SALT),
        b"\x03" * 32,
        date="1970-01-01",
    ),
    Award(LOG, ENTRY_ID, 4, "dgc-0001", "V01", date="2026-05-03"),
    Award(LOG, ENTRY_ID, 4, "dgc-0001", "V01", date="2026-05-03", declared=True),
    Award(
        LOG, ENTRY_ID, 4, "dgc-0001", "V01", 1, commit("x", SALT), date="2026-05-03", declared=True
    ),
    Genesis(LOG, ENTRY_ID, 1, b"\x01" * 32, replace(WENDENG, backdate_days=0)),
    RuleChange(LOG, ENTRY_ID, 3, "set", "V02", "Patrol", "safety", 2, False, 4, 8),
    RuleChange(LOG, ENTRY_ID, 3, "set", "V03", "Patrol", "safety", 2, False, None, 8),
    Redeem(LOG, ENTRY_ID, 5, "dgc-0001", 30, commit("rice 5 kg", SALT)),
    Objection(LOG, ENTRY_ID, 6, 7, commit("I was not there", SALT)),
    Reverse(LOG, ENTRY_ID, 7, 7, commit("objection upheld", SALT)),
    RuleChange(
        LOG, ENTRY_ID, 3, "set", "V04", "Patrol", "safety", 2, False, decided=commit("vote", SALT)
    ),
    RuleChange(LOG, ENTRY_ID, 3, "retire", "V04", decided=commit("vote of 3 May", SALT)),
]


@pytest.mark.parametrize("body", SAMPLES, ids=lambda body: f"{body.kind}")
def test_body_round_trip(body: Any) -> None:
    data = body.to_bytes()
    assert decode_body(data) == body
    assert decode_body(data).to_bytes() == data


def test_grade_of_wendeng_scale() -> None:
    assert WENDENG.grade_of(1050) == "AAA"
    assert WENDENG.grade_of(1049) == "AA"
    assert WENDENG.grade_of(960) == "A"
    assert WENDENG.grade_of(599) == "D"
    assert WENDENG.grade_of(-10_000) == "D"


def _award_value(**changes: Any) -> dict[str, Any]:
    value = Award(LOG, ENTRY_ID, 4, "dgc-0001", "V01", date="2026-05-03").to_value()
    value.update(changes)
    return {key: item for key, item in value.items() if item is not _DROP}


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "version 2"),
        ({"kind": "gift"}, "unknown kind"),
        ({"id": b"short"}, "'id' must be 16 bytes"),
        ({"id": "0123456789abcdef"}, "'id' must be 16 bytes"),
        ({"at": -1}, "'at' must be at least 0"),
        ({"at": True}, "'at' must be an integer"),
        ({"qty": 0}, "'qty' must be at least 1"),
        ({"account": "bad account"}, "account id"),
        ({"account": "-leading"}, "account id"),
        ({"account": "a" * 65}, "account id"),
        ({"rule": ""}, "'rule' must not be empty"),
        ({"rule": _DROP}, "missing field 'rule'"),
        ({"extra": 1}, "unknown field"),
        ({"evidence": b"\x00" * 31}, "'evidence' must be 32 bytes"),
        ({"note": 5}, "'note' must be 32 bytes"),
        ({"note": "cleaned the pond"}, "'note' must be 32 bytes"),
        ({"note": b"\x00" * 31}, "'note' must be 32 bytes"),
        ({"account": "DGC-0001"}, "lower-case"),
        ({"account": "Dgc-0001"}, "account id"),
        ({"date": _DROP}, "missing field 'date'"),
        ({"date": 20260503}, "'date' must be text"),
        ({"date": "2026-5-3"}, "YYYY-MM-DD"),
        ({"date": "2026/05/03"}, "YYYY-MM-DD"),
        ({"date": "2026-02-30"}, "not a day of the calendar"),
        ({"date": "0000-01-01"}, "not a day of the calendar"),
        ({"date": "2026-05-03 "}, "YYYY-MM-DD"),
        ({"date": "\uff12\uff10\uff12\uff16-05-03"}, "YYYY-MM-DD"),
        ({"declared": False}, "'declared' is written only as true"),
        ({"declared": 1}, "'declared' must be true or false"),
        ({"declared": "yes"}, "'declared' must be true or false"),
    ],
)
def test_award_field_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        decode_body(codec.encode(_award_value(**changes)))


@pytest.mark.parametrize(
    ("grades", "message"),
    [
        ([], "at least one grade"),
        ([["A", 100], ["B", 200], ["C", None]], "strictly descend"),
        ([["A", 100], ["B", 50]], "catch-all"),
        ([["A", None], ["B", None]], "min must be an integer"),
        ([["A", 100], ["A", None]], "distinct"),
        ([["A"]], r"\[name, min\]"),
    ],
)
def test_genesis_config_errors(grades: list[Any], message: str) -> None:
    value = Genesis(LOG, ENTRY_ID, 1, b"\x01" * 32, WENDENG).to_value()
    value["config"]["grades"] = grades
    with pytest.raises(FormatError, match=message):
        decode_body(codec.encode(value))


_ALTERNATIVES = st.lists(
    st.builds(Alternative, st.integers(1, 64), st.integers(0, 64)), min_size=1, max_size=8
).map(tuple)


@settings(max_examples=200)
@given(_ALTERNATIVES, _ALTERNATIVES, st.integers(1, 9))
def test_a_genesis_with_governance_round_trips(
    key: tuple[Alternative, ...], rule: tuple[Alternative, ...], quorum: int
) -> None:
    config = replace(WENDENG, quorum=quorum, governance=Governance(key, rule))
    body = Genesis(LOG, ENTRY_ID, 1, b"\x01" * 32, config)
    data = body.to_bytes()
    decoded = decode_body(data)
    assert decoded == body
    assert decoded.to_bytes() == data
    assert isinstance(decoded, Genesis)
    assert decoded.config.rules_of_governance == Governance(key, rule)


def test_a_genesis_without_governance_has_the_defaults_and_writes_none() -> None:
    config = replace(WENDENG, quorum=3)
    assert "governance" not in config.to_value()
    assert config.rules_of_governance == Governance(
        key=(Alternative(2, 0), Alternative(1, 3)), rule=(Alternative(1, 3),)
    )


@pytest.mark.parametrize(
    ("governance", "message"),
    [
        ([], "must be a map"),
        ({"key": [{"admin": 1, "council": 0}]}, "missing field 'rule'"),
        ({"key": [], "rule": [{"admin": 1, "council": 0}]}, "1 to 8 alternatives"),
        ({"key": [{"admin": 0, "council": 2}], "rule": [{"admin": 1, "council": 0}]}, "at least 1"),
        (
            {"key": [{"admin": 1, "council": -1}], "rule": [{"admin": 1, "council": 0}]},
            "at least 0",
        ),
        ({"key": [{"admin": 1}], "rule": [{"admin": 1, "council": 0}]}, "missing field 'council'"),
        (
            {
                "key": [{"admin": 1, "council": 0, "cashier": 1}],
                "rule": [{"admin": 1, "council": 0}],
            },
            "unknown field",
        ),
        (
            {"key": [{"admin": 65, "council": 0}], "rule": [{"admin": 1, "council": 0}]},
            "at most 64",
        ),
        (
            {
                "key": [{"admin": 1, "council": 0}],
                "rule": [{"admin": 1, "council": 0}],
                "award": [],
            },
            "unknown field",
        ),
    ],
)
def test_genesis_governance_errors(governance: Any, message: str) -> None:
    value = Genesis(LOG, ENTRY_ID, 1, b"\x01" * 32, WENDENG).to_value()
    value["config"]["governance"] = governance
    with pytest.raises(FormatError, match=message):
        decode_body(codec.encode(value))


@pytest.mark.parametrize(
    ("roles", "alternative", "met"),
    [
        ([{"admin"}], Alternative(1, 0), True),
        ([{"admin"}], Alternative(2, 0), False),
        ([{"admin", "council"}], Alternative(1, 1), False),  # one key counts for one role
        ([{"admin", "council"}, {"council"}], Alternative(1, 1), True),
        ([{"admin", "council"}, {"admin"}], Alternative(1, 1), True),
        ([{"admin", "council"}, {"admin", "council"}], Alternative(1, 1), True),
        ([{"council"}, {"council"}], Alternative(1, 1), False),
        ([{"admin"}, {"council"}, {"grid"}], Alternative(1, 2), False),
        ([{"admin"}, {"council"}, {"council", "grid"}], Alternative(1, 2), True),
    ],
)
def test_a_tally_counts_each_signer_for_one_role(
    roles: list[set[str]], alternative: Alternative, met: bool
) -> None:
    assert Tally.of(frozenset(held) for held in roles).meets(alternative) is met


def test_key_add_needs_roles_and_rule_set_needs_points() -> None:
    value = KeyChange(LOG, ENTRY_ID, 2, "add", b"\x02" * 32, "X", ()).to_value()
    with pytest.raises(FormatError, match="at least one role"):
        decode_body(codec.encode(value))
    value = RuleChange(LOG, ENTRY_ID, 3, "set", "V01", "t", "m", 1, False).to_value()
    value["points"] = 0
    with pytest.raises(FormatError, match="must not be zero"):
        decode_body(codec.encode(value))


def test_body_must_be_canonical() -> None:
    import msgpack

    value = Award(LOG, ENTRY_ID, 4, "dgc-0001", "V01", date="2026-05-03").to_value()
    unsorted = dict(reversed(list(codec.decode(codec.encode(value)).items())))
    with pytest.raises(FormatError, match="canonical"):
        decode_body(msgpack.packb(unsorted, use_bin_type=True))


def _envelope(signatures: list[Any], body: Any = b"body") -> bytes:
    return codec.encode([body, signatures])


def test_envelope_round_trip() -> None:
    sigs = (EntrySignature(b"\x01" * 8, b"\x02" * 64), EntrySignature(b"\x03" * 8, b"\x04" * 64))
    data = Envelope(b"body", sigs).to_bytes()
    decoded = Envelope.from_bytes(data)
    assert (decoded.body, decoded.signatures, decoded.raw) == (b"body", sigs, data)
    assert decoded == Envelope(b"body", sigs, data) == Envelope.from_bytes(bytes(data))
    assert decoded != Envelope(b"body", sigs)  # the bytes it was read from count
    assert repr(decoded) == f"Envelope(body=b'body', signatures={sigs!r})"
    assert decoded.to_bytes() == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_envelope([]), "at least one signature"),
        (_envelope([[b"\x01" * 8, b"\x02" * 64]], body="text"), "body must be msgpack bin"),
        (_envelope([[b"\x01" * 7, b"\x02" * 64]]), "key_id: 8 bytes"),
        (_envelope([[b"\x01" * 8, b"\x02" * 63]]), "sig: 64 bytes"),
        (
            _envelope([[b"\x03" * 8, b"\x02" * 64], [b"\x01" * 8, b"\x02" * 64]]),
            "strictly increasing",
        ),
        (
            _envelope([[b"\x01" * 8, b"\x02" * 64], [b"\x01" * 8, b"\x02" * 64]]),
            "strictly increasing",
        ),
        (codec.encode({"body": b""}), r"array \[body, signatures\]"),
    ],
)
def test_envelope_errors(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Envelope.from_bytes(data)


def test_envelope_size_limit_refused_not_truncated() -> None:
    data = _envelope([[b"\x01" * 8, b"\x02" * 64]], body=b"x" * MAX_ENVELOPE_SIZE)
    with pytest.raises(FormatError, match="larger than"):
        Envelope.from_bytes(data)


@settings(max_examples=200)
@given(
    st.integers(0, 2**63),
    st.integers(0, 2**63),
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=200),
)
def test_leaf_round_trip(seq: int, time: int, prev: bytes, envelope: bytes) -> None:
    leaf = Leaf(seq, time, prev, envelope)
    assert Leaf.from_bytes(leaf.to_bytes()) == leaf


@pytest.mark.parametrize(
    "value",
    [[0, 0, b"\x00" * 31, b""], [0, 0, b"\x00" * 32], [-1, 0, b"\x00" * 32, b""], {"seq": 0}],
)
def test_leaf_errors(value: Any) -> None:
    with pytest.raises(FormatError, match="leaf"):
        Leaf.from_bytes(codec.encode(value))


@pytest.mark.parametrize(
    ("account", "valid"),
    [
        ("dgc-0001", True),
        ("a", True),
        ("0", True),
        ("A", False),
        ("dgc-0001A", False),
        ("a.b_c-d", True),
        ("", False),
        ("_x", False),
        ("张三", False),
        ("a" * 64, True),
        ("a" * 65, False),
        ("x\n", False),
    ],
)
def test_account_shape(account: str, valid: bool) -> None:
    assert is_valid_account(account) is valid


def test_the_account_characters_and_length_are_the_patterns() -> None:
    """The staff tools name the character or the length that makes an id invalid from
    ``ACCOUNT_CHARACTERS`` and ``MAX_ACCOUNT_LENGTH``: they must say what the rule says."""
    for code in range(0x110):
        character = chr(code)
        assert is_valid_account("a" + character) is (character in ACCOUNT_CHARACTERS)
    assert is_valid_account("a" * MAX_ACCOUNT_LENGTH)
    assert not is_valid_account("a" * (MAX_ACCOUNT_LENGTH + 1))


@given(
    account=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
    qty=st.integers(1, 2**32),
    declared=st.booleans(),
    note=st.none() | st.binary(min_size=32, max_size=32),
)
def test_declared_awards_round_trip(
    account: str, qty: int, declared: bool, note: bytes | None
) -> None:
    award = Award(LOG, ENTRY_ID, 4, account, "V01", qty, note, date="2026-05-03", declared=declared)
    data = award.to_bytes()
    assert decode_body(data) == award
    assert decode_body(data).to_bytes() == data
    assert ("declared" in codec.decode(data, "body")) is declared
