"""Entries from a clerk's arguments: stamps, values, bodies and sealing
(redlist.staff.entries, values, signing)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger import codec, crypto, keyfile
from redlist.ledger.entry import (
    MAX_ENVELOPE_SIZE,
    Award,
    Envelope,
    KeyChange,
    RuleChange,
    decode_body,
)
from redlist.ledger.errors import FormatError, KeyFileError
from redlist.staff import entries, signing, values

LOG = "wendeng.example/redlist"
STAMP = entries.Stamp(LOG, bytes(range(16)), 1_767_225_600_000)
BOM = b"\xef\xbb\xbf"


def key(number: int) -> crypto.SigningKey:
    return crypto.SigningKey.from_seed(bytes([number]) * 32)


# ---------------------------------------------------------------------------
# Ids and stamps


def test_fresh_stamps_have_random_ids_and_a_current_time() -> None:
    before = entries.now_ms()
    one, two = entries.Stamp.fresh(LOG), entries.Stamp.fresh(LOG)
    assert one.id != two.id and len(one.id) == 16
    assert before <= one.at <= entries.now_ms()
    assert one.log == LOG


def test_addressed_fills_in_the_log_only() -> None:
    draft = entries.award(
        entries.Stamp("", STAMP.id, STAMP.at), "dgc-1", "V01", 2, None, "2026-01-01"
    )
    body = entries.addressed(draft, LOG).body
    assert body.log == LOG
    assert (body.id, body.at, body.account, body.qty) == (STAMP.id, STAMP.at, "dgc-1", 2)


# ---------------------------------------------------------------------------
# Sealing


def test_seal_signs_the_body_bytes_with_signatures_in_key_id_order() -> None:
    draft = entries.award(STAMP, "dgc-0001", "V01", 1, "pond", "2026-01-01")
    body = draft.body
    # The note is not in the body: a commitment under a fresh salt, the text beside it.
    assert body.note == draft.texts["note"].commitment
    assert draft.texts["note"].text == "pond"
    assert b"pond" not in body.to_bytes()
    signers = [key(1), key(2), key(3)]
    envelope = Envelope.from_bytes(signing.seal(body, signers))  # refuses misordered sigs
    assert envelope.body == body.to_bytes()
    assert decode_body(envelope.body) == body
    ids = [signature.key_id for signature in envelope.signatures]
    assert ids == sorted(signer.key_id for signer in signers)
    publics = {signer.key_id: signer.public for signer in signers}
    for signature in envelope.signatures:
        assert crypto.verify_entry(publics[signature.key_id], envelope.body, signature.signature)


def test_seal_is_deterministic_whatever_the_signer_order() -> None:
    body = entries.award(STAMP, "dgc-0001", "V01", 1, None, "2026-01-01").body
    assert signing.seal(body, [key(1), key(2)]) == signing.seal(body, [key(2), key(1)])


def test_seal_refuses_a_key_twice_and_no_key() -> None:
    body = entries.award(STAMP, "dgc-0001", "V01", 1, None, "2026-01-01").body
    with pytest.raises(KeyFileError, match="given twice"):
        signing.seal(body, [key(1), key(1)])
    with pytest.raises(KeyFileError, match="at least one signer"):
        signing.seal(body, [])


def test_seal_refuses_an_envelope_over_64_kib() -> None:
    body = RuleChange(LOG, STAMP.id, STAMP.at, "set", "V01", "x" * MAX_ENVELOPE_SIZE, "m", 5, False)
    with pytest.raises(FormatError, match="limit"):
        signing.seal(body, [key(1)])


def test_read_signers_refuses_the_same_key_twice(tmp_path: Path) -> None:
    first, copy = tmp_path / "a.pem", tmp_path / "copy.pem"
    keyfile.write_key_files(first, key(1), "A")
    copy.write_bytes(first.read_bytes())
    keyfile.write_key_files(tmp_path / "b.pem", key(2), "B")
    assert signing.read_signers(first, [tmp_path / "b.pem"]) == (key(1), key(2))
    with pytest.raises(KeyFileError, match=r"copy\.pem holds the same key as .*a\.pem"):
        signing.read_signers(first, [copy])


def test_read_signers_names_a_file_given_twice(tmp_path: Path) -> None:
    path = tmp_path / "li.pem"
    keyfile.write_key_files(path, key(1), "Li")
    with pytest.raises(KeyFileError) as refused:
        signing.read_signers(path, [path])
    assert refused.value.diagnostics().startswith(
        f"{path} is given twice (with --signer and --cosigner); each staff member signs once"
    )


# ---------------------------------------------------------------------------
# Single values


def test_public_key_from_hex_or_any_pem_file(tmp_path: Path) -> None:
    private = tmp_path / "wang.pem"
    keyfile.write_key_files(private, key(7), "Wang")
    public = key(7).public
    assert values.read_public_key(public.hex()) == public
    assert values.read_public_key(public.hex().upper()) == public
    assert values.read_public_key(str(private)) == public
    assert values.read_public_key(str(keyfile.public_path(private))) == public


@pytest.mark.parametrize("text", ["abc", "00" * 31, "zz" * 32, "missing.pem"])
def test_public_key_that_is_neither_file_nor_hex(text: str) -> None:
    with pytest.raises(KeyFileError, match="neither a key file nor a public key in hex"):
        values.read_public_key(text)


def test_public_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello\n")
    with pytest.raises(KeyFileError, match=r"notes\.txt"):
        values.read_public_key(str(garbage))


def test_roles() -> None:
    assert values.parse_roles("grid,council") == ("grid", "council")
    assert values.parse_roles(" Grid , cashier ") == ("grid", "cashier")
    with pytest.raises(FormatError, match="'boss' is not a role"):
        values.parse_roles("grid,boss")
    with pytest.raises(FormatError, match="listed twice"):
        values.parse_roles("grid,grid")
    with pytest.raises(FormatError, match="at least one role"):
        values.parse_roles(" , ")
    # A stray comma is a slip, not an empty role.
    assert values.parse_roles("grid,,council,") == ("grid", "council")


@pytest.mark.parametrize(
    ("text", "value"),
    [("5", 5), (" -20 ", -20), ("+3", 3), ("5.0", 5), ("10.00", 10), ("-100.", -100)],
)
def test_whole_numbers_as_clerks_and_spreadsheets_write_them(text: str, value: int) -> None:
    assert values.parse_integer(text, "qty") == value
    assert values.whole_number(text) == value


@pytest.mark.parametrize("text", ["5.5", "1e3", "five", "", "0x10", "1,000", "5.0.0"])
def test_what_is_not_a_whole_number(text: str) -> None:
    with pytest.raises(FormatError, match=f"qty must be a whole number, not {text!r}"):
        values.parse_integer(text, "qty")
    with pytest.raises(argparse.ArgumentTypeError, match="must be a whole number"):
        values.whole_number(text)


@pytest.mark.parametrize("text", ["9223372036854775808", "-99999999999999999999", "9" * 40])
def test_numbers_beyond_what_an_entry_carries_are_refused_in_words(text: str) -> None:
    with pytest.raises(FormatError) as refused:
        values.parse_integer(text, "points")
    assert "64-bit" not in refused.value.diagnostics()
    assert refused.value.diagnostics().startswith("points ")
    assert values.parse_integer(str(values.MAX_NUMBER), "points") == values.MAX_NUMBER


@pytest.mark.parametrize(
    ("typed", "account"),
    [
        ("dgc-0019", "dgc-0019"),
        ("DGC-0019", "dgc-0019"),
        ("  Dgc-0019\t", "dgc-0019"),
        ("\uff24\uff27\uff23\uff0d\uff10\uff10\uff11\uff19", "dgc-0019"),  # full width
        ("A.B_C", "a.b_c"),
    ],
)
def test_account_ids_are_case_folded(typed: str, account: str) -> None:
    assert values.fold_account(typed) == account
    assert values.check_account(typed) == account


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True))
def test_folding_keeps_every_ascii_account_and_is_idempotent(typed: str) -> None:
    folded = values.check_account(typed)
    assert folded == typed.lower()
    assert values.check_account(folded) == folded


@pytest.mark.parametrize(
    "account",
    ["", "张三", "dgc 0001", "-dgc", "x" * 65, "\u0130stanbul", "dg\u0441-0019"],
)
def test_bad_account_ids(account: str) -> None:
    with pytest.raises(FormatError, match="is not valid"):
        values.check_account(account)


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("dgc\u30000001", "(character 4 is a space, U+3000)"),  # a full-width space
        ("dgc-0001号", "(character 9 is \u201c号\u201d, U+53F7)"),
        ("-dgc", "(character 1 is \u201c-\u201d, U+002D)"),
        ("x" * 65, "(65 characters)"),
    ],
)
def test_a_bad_account_id_names_what_is_wrong_with_it(typed: str, why: str) -> None:
    with pytest.raises(FormatError) as refused:
        values.check_account(typed)
    assert f"is not valid {why}: use letters" in str(refused.value)


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("2026-05-03", "2026-05-03"),
        ("2026-5-3", "2026-05-03"),
        ("2026/5/3", "2026-05-03"),
        ("2026/05/03", "2026-05-03"),
        ("2026年5月3日", "2026-05-03"),
        (" 2024-02-29 ", "2024-02-29"),
        ("\uff12\uff10\uff12\uff16-05-03", "2026-05-03"),
    ],
)
def test_deed_dates_as_typed(typed: str, day: str) -> None:
    assert values.check_date(typed) == day
    assert values.deed_date_arg(typed) == day


@pytest.mark.parametrize(
    "typed", ["2026-02-29", "3/5/2026", "2026-05", "20260503", "2026-05-03T08:00", "today"]
)
def test_not_deed_dates(typed: str) -> None:
    with pytest.raises(FormatError):
        values.check_date(typed)
    with pytest.raises(argparse.ArgumentTypeError):
        values.deed_date_arg(typed)


def test_bodies_check_their_values() -> None:
    with pytest.raises(FormatError, match="non-zero integer"):
        entries.rule_set(STAMP, "V01", "Pond", "environment", 0, False)
    with pytest.raises(FormatError, match="rule title must not be empty"):
        entries.rule_set(STAMP, "V01", "  ", "environment", 5, False)
    with pytest.raises(FormatError, match="qty must be at least 1"):
        entries.award(STAMP, "dgc-1", "V01", 0, None, None)
    with pytest.raises(FormatError, match="points redeemed must be at least 1"):
        entries.redeem(STAMP, "dgc-1", -5, "rice")
    with pytest.raises(FormatError, match="item must not be empty"):
        entries.redeem(STAMP, "dgc-1", 5, "")
    with pytest.raises(FormatError, match="entry number of an award"):
        entries.objection(STAMP, 0, "not me")
    with pytest.raises(FormatError, match="single line"):
        entries.reverse(STAMP, 5, "upheld\nby council")
    with pytest.raises(FormatError, match="longer than"):
        entries.award(STAMP, "dgc-1", "V01", 1, "x" * (values.MAX_TEXT_LENGTH + 1), None)
    with pytest.raises(KeyFileError, match="name must not be empty"):
        entries.key_add(STAMP, key(1).public, " ", ("grid",))


def test_bodies_decode_as_the_ledger_reads_them() -> None:
    built = [
        entries.key_add(STAMP, key(1).public, " Wang Fang ", ("grid", "council")),
        entries.key_revoke(STAMP, key(1).public),
        entries.rule_set(STAMP, "D07", "Did not support elderly parents", "family", -100, True),
        entries.rule_retire(STAMP, "D07"),
        entries.award(STAMP, "dgc-1", "V01", 3, "  ", "2026-01-01"),
        entries.redeem(STAMP, "dgc-1", 30, "rice, 5 kg"),
        entries.objection(STAMP, 57, "I was not there"),
        entries.reverse(STAMP, 57, "objection upheld"),
    ]
    for draft in built:
        assert decode_body(draft.body.to_bytes()) == draft.body
    first, award = built[0].body, built[4].body
    assert isinstance(first, KeyChange) and first.name == "Wang Fang"
    assert isinstance(award, Award) and award.note is None  # a blank note is no note
    assert not built[4].texts
    for draft, name in zip(built[5:], ("item", "text", "reason"), strict=True):
        assert set(draft.texts) == {name}


def test_salts_are_fresh_except_where_derived_from_the_signers_key() -> None:
    one = entries.redeem(STAMP, "dgc-1", 30, "rice, 5 kg")
    two = entries.redeem(STAMP, "dgc-1", 30, "rice, 5 kg")
    assert one.texts["item"].salt != two.texts["item"].salt
    assert one.body.item != two.body.item
    salt = entries.derived_salt(key(1))
    again = [entries.redeem(STAMP, "dgc-1", 30, "rice, 5 kg", salt=salt) for _ in range(2)]
    assert again[0] == again[1]
    other = entries.redeem(STAMP, "dgc-1", 30, "rice, 5 kg", salt=entries.derived_salt(key(2)))
    assert other.body.item != again[0].body.item


def test_envelope_bytes_are_canonical_msgpack() -> None:
    body = entries.award(STAMP, "dgc-0001", "V01", 1, None, "2026-01-01").body
    envelope = signing.seal(body, [key(1)])
    assert codec.encode(codec.decode(envelope)) == envelope
