"""The points semantics: every rule of DESIGN 3.4, accepted and refused."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from redlist.ledger import crypto
from redlist.ledger.crypto import SigningKey, sign_entry
from redlist.ledger.deeddate import instant_text
from redlist.ledger.entry import (
    Award,
    EntrySignature,
    Envelope,
    Genesis,
    KeyChange,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
)
from redlist.ledger.errors import RuleViolation
from redlist.ledger.governance import Alternative, Governance
from redlist.ledger.points import CHECKS, Effect, apply_entry
from redlist.ledger.state import MemoryState
from redlist.ledger.textcommit import commit
from redlist.node.towncfg import DEFAULT_TOWN_CONFIG

LOG = "dongguan.example/redlist"
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SALT = bytes(16)
TODAY = "2026-01-01"  # the day of NOW in Asia/Shanghai (08:00 there)
# Wendeng's published scale (DESIGN 3.4), a new node's default.
CONFIG = DEFAULT_TOWN_CONFIG


def _key(n: int) -> SigningKey:
    return SigningKey.from_seed(bytes([n]) * 32)


@dataclass
class Town:
    """A MemoryState driven one entry at a time, with named staff keys."""

    state: MemoryState = field(default_factory=MemoryState)
    seq: int = 0
    ids: Any = field(default_factory=lambda: itertools.count(1))
    admin: SigningKey = field(default_factory=lambda: _key(1))
    grid: SigningKey = field(default_factory=lambda: _key(2))
    council1: SigningKey = field(default_factory=lambda: _key(3))
    council2: SigningKey = field(default_factory=lambda: _key(4))
    cashier: SigningKey = field(default_factory=lambda: _key(5))
    outsider: SigningKey = field(default_factory=lambda: _key(6))

    def next_id(self) -> bytes:
        return next(self.ids).to_bytes(16, "big")

    @property
    def board(self) -> tuple[SigningKey, ...]:
        """The admin and both council members: the default governance quorum."""
        return (self.admin, self.council1, self.council2)

    def apply(self, body: Any, *keys: SigningKey, time: int = NOW) -> Effect:
        body_bytes = body.to_bytes()
        sigs = sorted(
            (EntrySignature(key.key_id, sign_entry(key, body_bytes)) for key in keys),
            key=lambda sig: sig.key_id,
        )
        effect = apply_entry(
            self.state,
            origin=LOG,
            seq=self.seq,
            time=time,
            envelope=Envelope(body_bytes, tuple(sigs)),
        )
        self.seq += 1
        return effect

    def refused(self, check: str, body: Any, *keys: SigningKey, time: int = NOW) -> None:
        before = _snapshot(self.state)
        with pytest.raises(RuleViolation) as caught:
            self.apply(body, *keys, time=time)
        assert caught.value.check == check, caught.value.diagnostics()
        assert caught.value.seq == self.seq
        assert check in CHECKS
        assert _snapshot(self.state) == before, "a refused entry changed the state"

    def key_add(self, key: SigningKey, name: str, *roles: str) -> KeyChange:
        return KeyChange(LOG, self.next_id(), NOW, "add", key.public, name, roles)

    def rule(
        self,
        code: str,
        points: int,
        council: bool = False,
        max_qty: int | None = None,
        max_per_month: int | None = None,
    ) -> RuleChange:
        return RuleChange(
            LOG,
            self.next_id(),
            NOW,
            "set",
            code,
            code.title(),
            "volunteer",
            points,
            council,
            max_qty,
            max_per_month,
        )

    def award(
        self, account: str, rule: str, qty: int = 1, *, date: str = TODAY, at: int = NOW
    ) -> Award:
        return Award(LOG, self.next_id(), at, account, rule, qty, date=date)

    def redeem(self, account: str, points: int) -> Redeem:
        return Redeem(LOG, self.next_id(), NOW, account, points, commit("rice 5 kg", SALT))

    def reverse(self, target: int) -> Reverse:
        return Reverse(LOG, self.next_id(), NOW, target, commit("objection upheld", SALT))


def _snapshot(state: MemoryState) -> tuple[Any, ...]:
    return (
        state.config(),
        dict(state.keys),
        dict(state.rules),
        dict(state.balances),
        dict(state.targets),
        dict(state.entry_ids),
        dict(state.month_counts),
    )


@pytest.fixture
def town() -> Town:
    town = Town()
    town.apply(Genesis(LOG, town.next_id(), NOW, town.admin.public, CONFIG), town.admin)
    town.apply(town.key_add(town.grid, "Wang Fang", "grid"), town.admin)
    town.apply(town.key_add(town.council1, "Li Wei", "council"), town.admin)
    town.apply(town.key_add(town.council2, "Zhao Min", "council", "grid"), town.admin)
    town.apply(town.key_add(town.cashier, "Chen Jie", "cashier"), town.admin)
    town.apply(town.rule("pond", 5), *town.board)
    town.apply(town.rule("straw", -20), *town.board)
    town.apply(town.rule("rescue", 50, council=True), *town.board)
    return town


def test_balances_follow_awards_deductions_redeems_and_reversals(town: Town) -> None:
    first = town.seq
    town.apply(town.award("dgc-0001", "pond", qty=3), town.grid)
    town.apply(town.award("dgc-0001", "rescue"), town.council1, town.council2)
    town.apply(town.award("dgc-0002", "straw"), town.grid)
    redeem = town.seq
    town.apply(town.redeem("dgc-0001", 40), town.cashier)
    balance = town.state.balance("dgc-0001")
    assert (balance.earned, balance.redeemed, balance.spendable) == (65, 40, 25)
    assert CONFIG.grade_of(balance.score(CONFIG)) == "AAA"
    assert town.state.balance("dgc-0002").score(CONFIG) == 980

    town.apply(town.reverse(first), town.council1, town.council2)  # the pond award
    town.apply(town.reverse(redeem), town.council1, town.council2)
    balance = town.state.balance("dgc-0001")
    assert (balance.earned, balance.redeemed, balance.spendable) == (50, 0, 50)
    assert CONFIG.grade_of(balance.score(CONFIG)) == "AAA"


def test_objection_by_any_registered_key(town: Town) -> None:
    target = town.seq
    town.apply(town.award("dgc-0001", "pond"), town.grid)
    effect = town.apply(
        Objection(LOG, town.next_id(), NOW, target, commit("not me", SALT)), town.cashier
    )
    assert effect.account == "dgc-0001"


def test_rule_set_replaces_and_revives(town: Town) -> None:
    town.apply(replace(town.rule("pond", 7), op="set"), *town.board)
    town.apply(town.award("dgc-0001", "pond"), town.grid)
    assert town.state.balance("dgc-0001").earned == 7
    town.apply(RuleChange(LOG, town.next_id(), NOW, "retire", "pond"), *town.board)
    town.refused("rule-inactive", town.award("dgc-0001", "pond"), town.grid)
    town.apply(town.rule("pond", 4), *town.board)
    town.apply(town.award("dgc-0001", "pond"), town.grid)
    assert town.state.balance("dgc-0001").earned == 11


# --- every refusal ------------------------------------------------------------------


def test_unknown_key(town: Town) -> None:
    town.refused("signer-unknown", town.award("dgc-0001", "pond"), town.outsider)


def test_revoked_key(town: Town) -> None:
    town.apply(KeyChange(LOG, town.next_id(), NOW, "revoke", town.grid.public), *town.board)
    town.refused("signer-revoked", town.award("dgc-0001", "pond"), town.grid)


def test_an_admin_is_revoked_only_with_another_admins_signature(town: Town) -> None:
    revoke_self = KeyChange(LOG, town.next_id(), NOW, "revoke", town.admin.public)
    town.refused("key", revoke_self, *town.board)  # the last admin: the log would lose its keys
    second = _key(90)
    town.apply(town.key_add(second, "Second Admin", "admin"), *town.board)
    with_council = (second, town.council1, town.council2)
    town.refused("key", KeyChange(LOG, town.next_id(), NOW, "revoke", second.public), *with_council)
    town.apply(KeyChange(LOG, town.next_id(), NOW, "revoke", town.admin.public), *with_council)
    # The one left cannot go either, not even by its own signature.
    town.refused("key", KeyChange(LOG, town.next_id(), NOW, "revoke", second.public), *with_council)


def test_bad_signature(town: Town) -> None:
    body = town.award("dgc-0001", "pond").to_bytes()
    forged = Envelope(body, (EntrySignature(town.grid.key_id, sign_entry(town.grid, b"other")),))
    with pytest.raises(RuleViolation) as caught:
        apply_entry(town.state, origin=LOG, seq=town.seq, time=NOW, envelope=forged)
    assert caught.value.check == "signature"


@pytest.mark.parametrize(
    ("signer", "make"),
    [
        ("cashier", lambda t: t.award("dgc-0001", "pond")),
        ("grid", lambda t: t.redeem("dgc-0001", 1)),
        ("grid", lambda t: t.rule("new", 1)),
        ("grid", lambda t: t.key_add(t.outsider, "X", "grid")),
    ],
)
def test_wrong_role(town: Town, signer: str, make: Any) -> None:
    town.refused("signer-role", make(town), getattr(town, signer))


def test_every_signer_needs_the_role(town: Town) -> None:
    town.refused("signer-role", town.award("dgc-0001", "pond"), town.grid, town.cashier)


def test_unknown_and_retired_rule(town: Town) -> None:
    town.refused("rule-inactive", town.award("dgc-0001", "nosuch"), town.grid)
    town.apply(RuleChange(LOG, town.next_id(), NOW, "retire", "straw"), *town.board)
    town.refused("rule-inactive", town.award("dgc-0001", "straw"), town.grid)
    town.refused("rule", RuleChange(LOG, town.next_id(), NOW, "retire", "straw"), *town.board)


def test_council_quorum(town: Town) -> None:
    town.refused("quorum", town.award("dgc-0001", "rescue"), town.council1)
    town.refused("quorum", town.award("dgc-0001", "rescue"), town.grid, town.council1)
    town.apply(town.award("dgc-0001", "rescue"), town.grid, town.council1, town.council2)


def test_a_declared_award_needs_the_council_whatever_its_rule(town: Town) -> None:
    declared = replace(town.award("dgc-0001", "pond"), declared=True)
    town.refused("quorum", declared, town.grid)
    town.refused("quorum", declared, town.grid, town.council1)
    effect = town.apply(declared, town.grid, town.council1, town.council2)
    assert effect.earned_delta == 5


def test_overdraw(town: Town) -> None:
    town.apply(town.award("dgc-0001", "pond", qty=2), town.grid)
    town.refused("overdraw", town.redeem("dgc-0001", 11), town.cashier)
    town.apply(town.redeem("dgc-0001", 10), town.cashier)


def test_reverse_rules(town: Town) -> None:
    target = town.seq
    town.apply(town.award("dgc-0001", "pond"), town.grid)
    town.refused("quorum", town.reverse(target), town.council1)
    town.refused("signer-role", town.reverse(target), town.council1, town.grid)
    town.refused("target", town.reverse(1), town.council1, town.council2)  # a key entry
    town.refused("target", town.reverse(town.seq + 5), town.council1, town.council2)
    town.apply(town.reverse(target), town.council1, town.council2)
    town.refused("double-reverse", town.reverse(target), town.council1, town.council2)


def test_objection_targets_awards_only(town: Town) -> None:
    town.refused("target", Objection(LOG, town.next_id(), NOW, 2, commit("x", SALT)), town.grid)


def test_wrong_log(town: Town) -> None:
    town.refused("log", replace(town.award("dgc-0001", "pond"), log="other.example/log"), town.grid)


def test_genesis_misuse(town: Town) -> None:
    town.refused(
        "genesis", Genesis(LOG, town.next_id(), NOW, town.admin.public, CONFIG), town.admin
    )
    fresh = Town()
    fresh.refused("genesis", fresh.award("dgc-0001", "pond"), fresh.grid)
    fresh.refused(
        "signer-role", Genesis(LOG, fresh.next_id(), NOW, fresh.admin.public, CONFIG), fresh.grid
    )
    fresh.refused(
        "signer-role",
        Genesis(LOG, fresh.next_id(), NOW, fresh.admin.public, CONFIG),
        fresh.admin,
        fresh.grid,
    )


def test_duplicate_id(town: Town) -> None:
    body = town.award("dgc-0001", "pond")
    town.apply(body, town.grid)
    town.refused("duplicate-id", replace(body, qty=2), town.grid)


def test_future_time(town: Town) -> None:
    body = replace(town.award("dgc-0001", "pond"), at=NOW + 10 * 60 * 1000 + 1)
    town.refused("future", body, town.grid)
    with pytest.raises(RuleViolation) as caught:  # both times as people read them
        town.apply(body, town.grid)
    assert f"the author's time ({instant_text(body.at)}) is more than 10 minutes after" in str(
        caught.value
    )
    assert f"the node's time ({instant_text(NOW)})" in str(caught.value)
    town.apply(replace(body, at=NOW + 10 * 60 * 1000), town.grid)


def test_key_rules(town: Town) -> None:
    town.refused("key", town.key_add(town.outsider, "X", "grid", "mayor"), *town.board)
    town.refused("key", town.key_add(town.grid, "Again", "grid"), *town.board)
    revoke = KeyChange(LOG, town.next_id(), NOW, "revoke", town.outsider.public)
    town.refused("key", revoke, *town.board)
    town.apply(KeyChange(LOG, town.next_id(), NOW, "revoke", town.grid.public), *town.board)
    town.refused(
        "key", KeyChange(LOG, town.next_id(), NOW, "revoke", town.grid.public), *town.board
    )
    # a revoked key id can never be registered again
    town.refused("key", town.key_add(town.grid, "Back", "grid"), *town.board)


def test_undecodable_body_is_a_format_violation(town: Town) -> None:
    envelope = Envelope(b"\xc1", (EntrySignature(town.grid.key_id, b"\x00" * 64),))
    with pytest.raises(RuleViolation) as caught:
        apply_entry(town.state, origin=LOG, seq=town.seq, time=NOW, envelope=envelope)
    assert caught.value.check == "format"
    assert caught.value.seq == town.seq


def test_points_and_balances_stay_within_range(town: Town) -> None:
    from redlist.ledger.points import MAX_POINTS

    town.refused("range", town.rule("huge", MAX_POINTS + 1), *town.board)
    town.refused("range", town.award("dgc-0001", "pond", qty=MAX_POINTS), town.grid)
    town.apply(town.rule("big", MAX_POINTS), *town.board)
    town.apply(town.award("dgc-0001", "big"), town.grid)
    town.refused("range", town.award("dgc-0001", "pond"), town.grid)  # the total would overflow
    assert town.state.balance("dgc-0001").earned == MAX_POINTS


def test_genesis_base_and_grades_within_range() -> None:
    from redlist.ledger.points import MAX_POINTS

    fresh = Town()
    huge = replace(CONFIG, base=MAX_POINTS + 1)
    fresh.refused(
        "range", Genesis(LOG, fresh.next_id(), NOW, fresh.admin.public, huge), fresh.admin
    )


# ---------------------------------------------------------------------------
# Deed dates (DESIGN 3.4): not after the day of `at`, at most backdate_days before it

HOUR = 3_600_000
#: 2026-03-10T16:00:00Z: midnight of 11 March in Asia/Shanghai (UTC+8).
SHANGHAI_MIDNIGHT = 1_773_158_400_000


def test_the_day_of_at_is_accepted_and_the_next_day_refused(town: Town) -> None:
    town.apply(town.award("dgc-0001", "pond", date=TODAY), town.grid)
    town.refused("deed-date", town.award("dgc-0001", "pond", date="2026-01-02"), town.grid)


def test_exactly_backdate_days_back_is_accepted_one_more_refused(town: Town) -> None:
    assert CONFIG.deed_window_days == 92  # the genesis leaves it out
    # 92 days before 2026-01-01 is 2025-10-01.
    town.apply(town.award("dgc-0001", "pond", date="2025-10-01"), town.grid)
    town.refused("deed-date", town.award("dgc-0001", "pond", date="2025-09-30"), town.grid)


def test_the_day_of_at_is_the_day_in_the_log_time_zone(town: Town) -> None:
    """At 15:59 UTC it is still 10 March in Shanghai; at 16:00 UTC it is 11 March."""
    before, at = SHANGHAI_MIDNIGHT - 1, SHANGHAI_MIDNIGHT
    now = SHANGHAI_MIDNIGHT + HOUR
    refused = town.award("dgc-0001", "pond", date="2026-03-11", at=before)
    town.refused("deed-date", refused, town.grid, time=now)
    town.apply(town.award("dgc-0001", "pond", date="2026-03-10", at=before), town.grid, time=now)
    town.apply(town.award("dgc-0001", "pond", date="2026-03-11", at=at), town.grid, time=now)
    # 92 days back, counted from the day in Shanghai (11 March): 9 December.
    town.apply(town.award("dgc-0001", "pond", date="2025-12-09", at=at), town.grid, time=now)
    refused = town.award("dgc-0001", "pond", date="2025-12-08", at=at)
    town.refused("deed-date", refused, town.grid, time=now)


def test_the_refusal_names_the_account_the_date_and_the_window(town: Town) -> None:
    with pytest.raises(RuleViolation) as caught:
        town.apply(town.award("dgc-0001", "pond", date="2025-01-01"), town.grid)
    message = caught.value.message
    assert "dgc-0001" in message and "2025-01-01" in message and "92 days" in message
    assert "2026-01-01 in Asia/Shanghai" in message


@pytest.mark.parametrize(
    ("days", "oldest", "too_old"), [(0, TODAY, "2025-12-31"), (1, "2025-12-31", "2025-12-30")]
)
def test_the_genesis_sets_backdate_days(days: int, oldest: str, too_old: str) -> None:
    fresh = Town()
    # A town whose governance lets its admin set rules alone (docs/format.md allows it).
    alone = (Alternative(1, 0),)
    config = replace(CONFIG, backdate_days=days, governance=Governance(alone, alone))
    fresh.apply(Genesis(LOG, fresh.next_id(), NOW, fresh.admin.public, config), fresh.admin)
    fresh.apply(fresh.key_add(fresh.grid, "Wang Fang", "grid"), fresh.admin)
    fresh.apply(fresh.rule("pond", 5), fresh.admin)
    fresh.apply(fresh.award("dgc-0001", "pond", date=oldest), fresh.grid)
    fresh.refused("deed-date", fresh.award("dgc-0001", "pond", date=too_old), fresh.grid)


def test_a_genesis_with_an_unknown_time_zone_is_refused() -> None:
    fresh = Town()
    config = replace(CONFIG, tz="Mars/Olympus_Mons")
    genesis = Genesis(LOG, fresh.next_id(), NOW, fresh.admin.public, config)
    fresh.refused("genesis", genesis, fresh.admin)


# ---------------------------------------------------------------------------
# Rule caps: max_qty per award, max_per_month per account and month of the deed date


def test_max_qty_caps_one_award(town: Town) -> None:
    town.apply(town.rule("patrol", 4, max_qty=3), *town.board)
    town.apply(town.award("dgc-0001", "patrol", qty=3), town.grid)
    with pytest.raises(RuleViolation) as caught:
        town.apply(town.award("dgc-0001", "patrol", qty=4), town.grid)
    assert caught.value.check == "max-qty"
    assert "dgc-0001" in caught.value.message and "'patrol'" in caught.value.message
    assert "limit of 3 per award" in caught.value.message
    town.refused("max-qty", town.award("dgc-0002", "patrol", qty=4), town.grid)


def test_max_per_month_counts_the_deed_month_per_account(town: Town) -> None:
    town.apply(town.rule("sort", 2, max_per_month=2), *town.board)
    town.apply(town.award("dgc-0001", "sort", date="2025-12-30"), town.grid)
    town.apply(town.award("dgc-0001", "sort", date="2025-12-31"), town.grid)
    with pytest.raises(RuleViolation) as caught:
        town.apply(town.award("dgc-0001", "sort", date="2025-12-01"), town.grid)
    assert caught.value.check == "max-per-month"
    message = caught.value.message
    assert "dgc-0001" in message and "'sort'" in message and "2025-12" in message
    assert "limit of 2 a month" in message
    # Another month, another account, a qty that would pass the cap at once.
    town.apply(town.award("dgc-0001", "sort", qty=2, date=TODAY), town.grid)
    town.apply(town.award("dgc-0002", "sort", date="2025-12-01"), town.grid)
    town.refused("max-per-month", town.award("dgc-0003", "sort", qty=3), town.grid)
    assert town.state.month_qty("dgc-0001", "sort", "2025-12") == 2
    assert town.state.month_qty("dgc-0001", "sort", "2026-01") == 2


def test_a_reversed_award_frees_its_share_of_the_month(town: Town) -> None:
    town.apply(town.rule("sort", 2, max_per_month=1), *town.board)
    first = town.seq
    town.apply(town.award("dgc-0001", "sort"), town.grid)
    town.refused("max-per-month", town.award("dgc-0001", "sort"), town.grid)
    town.apply(town.reverse(first), town.council1, town.council2)
    assert town.state.month_qty("dgc-0001", "sort", "2026-01") == 0
    assert ("dgc-0001", "sort", "2026-01") not in town.state.month_counts
    town.apply(town.award("dgc-0001", "sort"), town.grid)


def test_caps_count_awards_made_before_the_cap_was_set(town: Town) -> None:
    """The state counts every award, so a cap set mid-month counts the month's awards."""
    town.apply(town.award("dgc-0001", "pond", qty=2), town.grid)
    town.apply(town.rule("pond", 5, max_per_month=3), *town.board)
    town.refused("max-per-month", town.award("dgc-0001", "pond", qty=2), town.grid)
    town.apply(town.award("dgc-0001", "pond"), town.grid)
    # Retiring and setting the rule again without caps lifts them.
    town.apply(town.rule("pond", 5), *town.board)
    town.apply(town.award("dgc-0001", "pond", qty=50), town.grid)


# ---------------------------------------------------------------------------
# One Ed25519 rule (docs/format.md 3.1): registration and signatures

IDENTITY_KEY = bytes([1]) + bytes(31)  # the identity point: order 1, canonical
# R = B (the base point), S = 1: [S]B = R + [h]A holds for the identity A on any message.
BASE_POINT = bytes.fromhex("58" + "66" * 31)
FORGERY = BASE_POINT + (1).to_bytes(32, "little")


def _raw_key_add(town: Town, public: bytes, name: str = "Mallory") -> KeyChange:
    return KeyChange(LOG, town.next_id(), NOW, "add", public, name, ("grid",))


@pytest.mark.parametrize(
    ("public", "words"),
    [
        (IDENTITY_KEY, "a point of small order"),
        (bytes.fromhex("ec" + "ff" * 30 + "7f"), "a point of small order"),
        (bytes(32), "a point of small order"),
        (b"\xff" * 32, "not canonical"),
        ((2).to_bytes(32, "little"), "not a point of the Ed25519 curve"),
        ((3).to_bytes(32, "little"), "not of prime order"),
    ],
)
def test_key_add_refuses_a_key_that_is_not_a_point_of_prime_order(
    town: Town, public: bytes, words: str
) -> None:
    body = _raw_key_add(town, public)
    with pytest.raises(RuleViolation) as caught:
        town.apply(body, *town.board)
    assert caught.value.check == "key-point"
    assert words in caught.value.message
    assert crypto.key_id(public).hex() in caught.value.message
    assert caught.value.diagnostics().startswith(f"entry {town.seq}: ")
    town.refused("key-point", _raw_key_add(town, public), *town.board)
    assert town.state.key(crypto.key_id(public)) is None


def test_a_genesis_with_a_small_order_admin_key_is_refused() -> None:
    fresh = Town()
    body = Genesis(LOG, fresh.next_id(), NOW, IDENTITY_KEY, CONFIG)
    envelope = Envelope(body.to_bytes(), (EntrySignature(crypto.key_id(IDENTITY_KEY), FORGERY),))
    with pytest.raises(RuleViolation) as caught:
        apply_entry(fresh.state, origin=LOG, seq=0, time=NOW, envelope=envelope)
    assert caught.value.check == "key-point"
    assert "the genesis admin key cannot be registered" in caught.value.message
    assert fresh.state.config() is None


def test_a_signature_with_a_small_order_r_by_a_registered_key_is_refused(town: Town) -> None:
    """The holder of an ordinary key signs with R = identity and S = h·a: RFC 8032 and
    OpenSSL accept it, the rule refuses it, and the refusal says why."""
    body = town.key_add(town.outsider, "X", "grid").to_bytes()
    message = crypto.ENTRY_DOMAIN + body
    secret = hashlib.sha512(town.grid.seed).digest()
    scalar = int.from_bytes(secret[:32], "little")
    scalar = (scalar & ((1 << 254) - 8)) | (1 << 254)  # RFC 8032 clamping
    digest = hashlib.sha512(IDENTITY_KEY + town.grid.public + message).digest()
    s = int.from_bytes(digest, "little") * scalar % crypto.GROUP_ORDER
    signature = IDENTITY_KEY + s.to_bytes(32, "little")
    Ed25519PublicKey.from_public_bytes(town.grid.public).verify(signature, message)  # OpenSSL: ok
    envelope = Envelope(body, (EntrySignature(town.grid.key_id, signature),))
    with pytest.raises(RuleViolation) as caught:
        apply_entry(town.state, origin=LOG, seq=town.seq, time=NOW, envelope=envelope)
    assert caught.value.check == "signature"
    assert caught.value.message.endswith(": its R is a point of small order")


# ---------------------------------------------------------------------------
# Governance: the staff list and the catalogue change only with the quorum


def _revoke(town: Town, key: SigningKey) -> KeyChange:
    return KeyChange(LOG, town.next_id(), NOW, "revoke", key.public)


def _retire(town: Town, code: str) -> RuleChange:
    return RuleChange(LOG, town.next_id(), NOW, "retire", code)


def test_a_rule_change_needs_an_admin_and_the_council_quorum(town: Town) -> None:
    town.refused("quorum", town.rule("new", 1), town.admin)
    town.refused("quorum", town.rule("new", 1), town.admin, town.council1)
    town.refused("quorum", town.rule("new", 1), town.council1, town.council2)
    town.refused("quorum", _retire(town, "pond"), town.admin, town.council2)
    town.refused("signer-role", town.rule("new", 1), *town.board, town.grid)
    town.apply(town.rule("new", 1), *town.board)
    town.apply(_retire(town, "new"), *town.board)


def test_a_key_change_needs_two_admins_or_an_admin_and_the_council(town: Town) -> None:
    second = _key(91)
    town.refused("quorum", town.key_add(second, "Second Admin", "admin"), town.admin)
    town.refused("quorum", town.key_add(second, "X", "grid"), town.council1, town.council2)
    town.apply(town.key_add(second, "Second Admin", "admin"), *town.board)
    town.apply(town.key_add(_key(92), "Guo Lin", "grid"), town.admin, second)
    town.refused("quorum", _revoke(town, _key(92)), second)
    town.apply(_revoke(town, _key(92)), second, town.council1, town.council2)


def test_while_setting_up_the_admin_alone_registers_keys() -> None:
    fresh = Town()
    fresh.apply(Genesis(LOG, fresh.next_id(), NOW, fresh.admin.public, CONFIG), fresh.admin)
    fresh.apply(fresh.key_add(fresh.council1, "Li Wei", "council"), fresh.admin)
    fresh.refused("quorum", fresh.key_add(fresh.grid, "Wang Fang", "grid"), fresh.council1)
    fresh.refused("quorum", fresh.rule("pond", 5), fresh.admin, fresh.council1)
    fresh.apply(fresh.key_add(fresh.council2, "Zhao Min", "council"), fresh.admin)
    fresh.apply(fresh.rule("pond", 5), fresh.admin, fresh.council1, fresh.council2)
    # The first rule ends the set-up: from now on keys need the quorum too.
    fresh.refused("quorum", fresh.key_add(fresh.grid, "Wang Fang", "grid"), fresh.admin)


def test_a_stolen_admin_key_alone_can_change_nothing(town: Town) -> None:
    thief = _key(93)
    town.refused("quorum", town.key_add(thief, "Thief", "admin", "grid"), town.admin)
    town.refused("quorum", _revoke(town, town.council1), town.admin)
    town.refused("quorum", _revoke(town, town.grid), town.admin)
    town.refused("quorum", town.rule("pond", 10_000), town.admin)
    town.refused("quorum", _retire(town, "straw"), town.admin)
    town.refused("signer-role", town.award("dgc-0001", "pond"), town.admin)


def test_admin_rotation_without_a_new_log(town: Town) -> None:
    new_admin = _key(94)
    council = (town.council1, town.council2)
    town.apply(town.key_add(new_admin, "Liu Jun (new key)", "admin"), *town.board)
    revoked_at = town.seq
    town.apply(_revoke(town, town.admin), new_admin, *council)
    assert town.state.keys[town.admin.key_id].revoked == revoked_at
    # The old key stops counting from that seq on, in a quorum or alone.
    town.refused("signer-revoked", town.rule("pond", 6), town.admin, *council)
    town.refused("signer-revoked", town.rule("pond", 6), town.admin, new_admin, *council)
    town.apply(town.rule("pond", 6), new_admin, *council)


def test_the_last_admin_is_never_revoked(town: Town) -> None:
    with pytest.raises(RuleViolation, match="the last admin is never revoked"):
        town.apply(_revoke(town, town.admin), *town.board)


def test_an_admin_re_adding_its_own_key_with_all_roles_is_refused(town: Town) -> None:
    every_role = ("admin", "cashier", "council", "grid")
    town.refused("key", town.key_add(town.admin, "Admin", *every_role), *town.board)
    town.refused("quorum", town.key_add(town.admin, "Admin", *every_role), town.admin)


def test_a_key_holding_admin_and_council_counts_once() -> None:
    fresh = Town()
    config = replace(
        CONFIG, governance=Governance(key=(Alternative(1, 1),), rule=(Alternative(1, 1),))
    )
    fresh.apply(Genesis(LOG, fresh.next_id(), NOW, fresh.admin.public, config), fresh.admin)
    fresh.apply(fresh.key_add(fresh.council1, "Li Wei", "council", "admin"), fresh.admin)
    fresh.refused("quorum", fresh.rule("pond", 5), fresh.council1)
    fresh.apply(fresh.rule("pond", 5), fresh.admin, fresh.council1)
