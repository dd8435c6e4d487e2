"""Witness policies (c2sp.org/tlog-policy): the parser's rules, its properties, evaluation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redlist.ledger import crypto
from redlist.ledger.errors import NoteError, PolicyError
from redlist.ledger.note.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from redlist.ledger.note.cosignature import cosign_checkpoint
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.note.signed import Note, NoteSignature
from redlist.ledger.policy import (
    Policy,
    PolicyGroup,
    PolicyLog,
    PolicyWitness,
    evaluate,
    parse_policy,
)

ROOT = bytes(range(32))
TIME = 1_767_225_600
LOG = NoteSigner("town.example/rongcheng", crypto.SigningKey.from_seed(b"\x01" * 32))
OTHER_LOG = NoteSigner("town.example/rushan", crypto.SigningKey.from_seed(b"\x02" * 32))
#: Witnesses with fixed keys, so generated policies are reproducible.
SIGNERS = [
    NoteSigner(f"witness.example/w{index}", crypto.SigningKey.from_seed(bytes([16 + index]) * 32))
    for index in range(8)
]
KEYS = [signer.cosignature_verifier() for signer in SIGNERS]


def vkey(index: int) -> str:
    return KEYS[index].encode()


def checkpoint(*cosigners: int, log: NoteSigner = LOG) -> SignedCheckpoint:
    signed = sign_checkpoint(Checkpoint(log.name, 7, ROOT), log)
    for index in cosigners:
        signed = cosign_checkpoint(signed, SIGNERS[index], TIME + index)
    return signed


def refused(text: str, line: int, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"policy line {line}: ")
    assert fragment in str(caught.value)


EXAMPLE = f"""\
# Neighbouring towns vouch for Rongcheng.
log {LOG.verifier().encode()} https://rongcheng.example/log

witness X1 {vkey(0)}
witness X2 {vkey(1)}\thttps://x2.example/
witness X3 {vkey(2)}
group X-witnesses 2 X1 X2 X3

  witness Y1 {vkey(3)}
witness Y2 {vkey(4)}
group Y-witnesses any Y1 Y2
group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


# --- parsing -----------------------------------------------------------------------------


def test_the_specs_example_parses() -> None:
    policy = parse_policy(EXAMPLE.encode())
    assert policy.logs == (PolicyLog(LOG.verifier(), "https://rongcheng.example/log"),)
    assert [witness.name for witness in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2"]
    assert policy.witnesses[1].url == "https://x2.example/"
    assert policy.groups == (
        PolicyGroup("X-witnesses", 2, ("X1", "X2", "X3")),
        PolicyGroup("Y-witnesses", 1, ("Y1", "Y2")),
        PolicyGroup("X-and-Y", 2, ("X-witnesses", "Y-witnesses")),
    )
    assert policy.quorum == "X-and-Y"
    assert parse_policy(policy.to_text()) == policy


def test_a_byte_order_mark_as_notepad_writes_it_is_the_same_policy() -> None:
    assert parse_policy(b"\xef\xbb\xbf" + EXAMPLE.encode()) == parse_policy(EXAMPLE.encode())
    with pytest.raises(PolicyError, match="policy line 2"):  # only before the first line
        parse_policy("quorum none\n\ufeff# x\n")


def test_quorum_none_needs_no_witness() -> None:
    assert parse_policy("quorum none\n") == Policy((), (), (), "none")
    assert parse_policy("quorum none") == Policy((), (), (), "none")  # no final newline


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (f"witnes X1 {vkey(0)}\nquorum X1\n", 1, "unknown keyword 'witnes'"),
        (f"Witness X1 {vkey(0)}\nquorum X1\n", 1, "unknown keyword"),
        ("quorum X1\n", 1, "not a witness or group defined on an earlier line"),
        (f"witness X1 {vkey(0)}\n", 2, "ends without a quorum line"),
        ("\n\n# only comments\n", 4, "ends without a quorum line"),
        (f"witness X1 {vkey(0)}\nwitness X1 {vkey(1)}\nquorum X1\n", 2, "already defined"),
        (f"witness X1 {vkey(0)}\nwitness X2 {vkey(0)}\nquorum X1\n", 2, "already listed"),
        (f"witness X1 {vkey(0)}\ngroup X1 any X1\nquorum X1\n", 2, "already defined"),
        (f"witness X1 {vkey(0)}\ngroup g any X2\nquorum g\n", 2, "'X2' is not a witness"),
        (f"witness X1 {vkey(0)}\ngroup g any g\nquorum g\n", 2, "'g' is not a witness"),
        (f"witness X1 {vkey(0)}\ngroup g any X1 X1\nquorum g\n", 2, "listed twice"),
        (f"witness X1 {vkey(0)}\ngroup g 2 X1\nquorum g\n", 2, "threshold 2 is out of range"),
        (f"witness X1 {vkey(0)}\ngroup g 0 X1\nquorum g\n", 2, "found '0'"),
        (f"witness X1 {vkey(0)}\ngroup g 01 X1\nquorum g\n", 2, "without leading zeros"),
        (f"witness X1 {vkey(0)}\ngroup g -1 X1\nquorum g\n", 2, "found '-1'"),
        (f"witness X1 {vkey(0)}\ngroup g any\nquorum g\n", 2, "form 'group NAME"),
        (f"witness X1 {vkey(0)}\ngroup g any none\nquorum g\n", 2, "'none' cannot be a member"),
        (f"witness none {vkey(0)}\nquorum none\n", 1, "'none' is reserved"),
        (f"witness X1 {vkey(0)}\nquorum X1\nquorum none\n", 3, "exactly one quorum"),
        (f"witness X1 {vkey(0)}\nquorum X1 X1\n", 2, "form 'quorum NAME'"),
        (f"witness X1 {vkey(0)} url extra\nquorum X1\n", 1, "form 'witness NAME VKEY [URL]'"),
        (f"witness X1 {LOG.verifier().encode()}\nquorum X1\n", 1, "not a cosigning key"),
        (f"log {vkey(0)}\nquorum none\n", 1, "not a log key"),
        (f"log {LOG.verifier().encode()}\nlog {LOG.verifier().encode()}\nquorum none\n", 2,
         "listed twice"),
        (f"witness X1 {vkey(0)[:-2]}AA\nquorum X1\n", 1, "bad verifier key"),
        (f"witness X1 {vkey(0)}\r\nquorum X1\n", 1, "Unix line endings"),
        ("quorum none\x00\n", 1, "control character 0x00"),
        ("# comment\nquorum none # trailing comment\n", 2, "form 'quorum NAME'"),
    ],
)  # fmt: skip
def test_malformed_policies_are_refused_naming_the_line(
    text: str, line: int, fragment: str
) -> None:
    refused(text, line, fragment)


def test_a_policy_that_is_not_utf8_is_refused_naming_the_line() -> None:
    with pytest.raises(PolicyError, match=r"^policy line 2: not UTF-8") as caught:
        parse_policy(b"# ok\n# \xff\nquorum none\n")
    assert caught.value.line == 2


def test_names_are_compared_exactly() -> None:
    # The Kelvin sign is not the letter K: no normalisation, as the spec's opaque octets.
    text = f"witness K {vkey(0)}\nquorum \u212a\n"
    refused(text, 2, "not a witness or group")
    assert parse_policy(f"witness \u212a {vkey(0)}\nquorum \u212a\n").quorum == "\u212a"


def test_a_policy_built_in_code_is_checked_like_a_file() -> None:
    witness = PolicyWitness("X1", KEYS[0])
    with pytest.raises(PolicyError, match="threshold 3 is out of range"):
        Policy((), (witness,), (PolicyGroup("g", 3, ("X1",)),), "g")
    with pytest.raises(PolicyError, match="not a witness or group"):
        Policy((), (witness,), (), "X2")
    with pytest.raises(PolicyError, match="one word without spaces"):
        Policy((), (witness, PolicyWitness("X 2", KEYS[1])), (), "X1")


def test_the_short_form_needs_k_of_the_keys() -> None:
    policy = Policy.of_witnesses(KEYS[:3], 2)
    assert [witness.name for witness in policy.witnesses] == [key.name for key in KEYS[:3]]
    assert policy.groups[0].threshold == 2
    assert Policy.of_witnesses(KEYS[:3]).groups[0].threshold == 3
    assert Policy.of_witnesses([]).quorum == "none"
    assert parse_policy(policy.to_text()) == policy
    for bad in (0, 4):
        with pytest.raises(PolicyError, match="between 1 and 3"):
            Policy.of_witnesses(KEYS[:3], bad)
    with pytest.raises(PolicyError, match="no witness key was given"):
        Policy.of_witnesses([], 1)


def test_the_short_form_tells_keys_of_one_name_apart() -> None:
    twin = VerifierKey.for_cosignature(
        KEYS[0].name, crypto.SigningKey.from_seed(b"\x09" * 32).public
    )
    policy = Policy.of_witnesses([KEYS[0], twin])
    assert [witness.name for witness in policy.witnesses] == [
        KEYS[0].describe(),
        twin.describe(),
    ]


# --- properties --------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Valid policies: some logs, witnesses from the fixed keys, groups over earlier names."""
    logs = draw(st.sampled_from([(), (PolicyLog(LOG.verifier()),),
                                 (PolicyLog(LOG.verifier(), "https://a.example/"),
                                  PolicyLog(OTHER_LOG.verifier()))]))  # fmt: skip
    count = draw(st.integers(0, len(KEYS)))
    indexes = draw(st.permutations(range(len(KEYS))))[:count]
    names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Zs", "Zl", "Zp", "Cs")),
                    min_size=1, max_size=6)  # fmt: skip
    used: set[str] = {"none"}
    witnesses = []
    for index in indexes:
        name = draw(names.filter(lambda name: name not in used))
        used.add(name)
        url = draw(st.none() | st.just(f"https://w{index}.example/"))
        witnesses.append(PolicyWitness(name, KEYS[index], url))
    defined = [witness.name for witness in witnesses]
    groups = []
    for _ in range(draw(st.integers(0, 4)) if defined else 0):
        members = draw(st.lists(st.sampled_from(defined), min_size=1, max_size=5, unique=True))
        threshold = draw(st.integers(1, len(members)))
        name = draw(names.filter(lambda name: name not in used))
        used.add(name)
        groups.append(PolicyGroup(name, threshold, tuple(members)))
        defined.append(name)
    quorum = draw(st.sampled_from(["none", *defined]))
    return Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum)


@settings(max_examples=200, deadline=None)
@given(policies())
def test_every_policy_reads_back_equal(policy: Policy) -> None:
    assert parse_policy(policy.to_text()) == policy
    assert parse_policy(policy.to_text().encode("utf-8")) == policy


@settings(max_examples=200, deadline=None)
@given(policies(), st.data())
def test_spacing_comments_and_blank_lines_do_not_change_a_policy(
    policy: Policy, data: st.DataObject
) -> None:
    spacing = st.text(st.sampled_from(" \t"), min_size=1, max_size=3)
    lines = []
    for line in policy.to_text().splitlines():
        if data.draw(st.booleans()):
            lines.append(data.draw(st.sampled_from(["", "  ", "# a comment", "\t# x y z"])))
        words = line.split(" ")
        joined = words[0]
        for word in words[1:]:
            joined += data.draw(spacing) + word
        lines.append(data.draw(st.sampled_from(["", " ", "\t"])) + joined + data.draw(
            st.sampled_from(["", " ", "\t "])))  # fmt: skip
    assert parse_policy("\n".join(lines) + "\n") == policy


MUTATION_CHARACTERS = st.sampled_from(list(" \t\n\r#+-01aAz\x00\x7f\u212a\u3000"))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Policy, str]:
    """A valid policy's text with one mutation: a character inserted, deleted or
    replaced, or a line deleted, repeated or moved."""
    policy = draw(policies())
    text = policy.to_text()
    lines = text.splitlines(keepends=True)
    kind = draw(st.sampled_from(["insert", "delete", "replace", "drop", "repeat", "move"]))
    if kind in ("insert", "delete", "replace"):
        at = draw(st.integers(0, len(text) - (0 if kind == "insert" else 1)))
        character = draw(MUTATION_CHARACTERS)
        keep = 0 if kind == "insert" else 1
        text = text[:at] + ("" if kind == "delete" else character) + text[at + keep :]
    else:
        at = draw(st.integers(0, len(lines) - 1))
        line = lines.pop(at)
        if kind == "repeat":
            lines[at:at] = [line, line]
        elif kind == "move":
            lines.insert(draw(st.integers(0, len(lines))), line)
        text = "".join(lines)
    return policy, text


@settings(max_examples=500, deadline=None)
@given(mutated())
def test_a_mutated_policy_reads_as_a_policy_or_is_refused_naming_a_line(
    case: tuple[Policy, str],
) -> None:
    original, text = case
    try:
        policy = parse_policy(text)
    except PolicyError as error:
        assert error.line is not None
        assert 1 <= error.line <= text.count("\n") + 2
        assert str(error).startswith(f"policy line {error.line}: ")
        return
    # Accepted: a valid policy in its own right, whose text reads back equal; and a
    # mutation that only touched spacing or a comment leaves the policy as it was.
    assert parse_policy(policy.to_text()) == policy
    if _words(text) == _words(original.to_text()):
        assert policy == original


def _words(text: str) -> list[list[str]]:
    # Split as the policy format does, on spaces and tabs only: str.split() would also
    # split on U+3000 and other Unicode spaces, which are part of a word (a URL) there.
    lines = (
        [word for word in line.split(" ") if word] for line in text.replace("\t", " ").split("\n")
    )
    return [words for words in lines if words and not words[0].startswith("#")]


# --- evaluation --------------------------------------------------------------------------


def test_all_any_and_k_of_n() -> None:
    all_of = Policy.of_witnesses(KEYS[:3])
    two_of = Policy.of_witnesses(KEYS[:3], 2)
    any_of = Policy.of_witnesses(KEYS[:3], 1)
    cases = [
        ((), (False, False, False)),
        ((1,), (False, False, True)),
        ((0, 2), (False, True, True)),
        ((0, 1, 2), (True, True, True)),
    ]
    for cosigners, expected in cases:
        signed = checkpoint(*cosigners)
        verdicts = [evaluate(policy, signed) for policy in (all_of, two_of, any_of)]
        assert tuple(verdict.met for verdict in verdicts) == expected
        assert dict(verdicts[0].cosigned) == {KEYS[i].name: TIME + i for i in cosigners}


def test_nested_groups_and_which_are_short() -> None:
    policy = parse_policy(EXAMPLE)
    assert evaluate(policy, checkpoint(0, 1, 3)).met
    assert evaluate(policy, checkpoint(0, 2, 4)).met
    verdict = evaluate(policy, checkpoint(0, 3))
    assert not verdict.met
    assert dict(verdict.cosigned) == {"X1": TIME, "Y1": TIME + 3}
    assert [(s.name, s.have, s.needed, s.missing) for s in verdict.short] == [
        ("X-and-Y", 1, 2, ("X-witnesses",)),
        ("X-witnesses", 1, 2, ("X2", "X3")),
    ]
    text = verdict.describe()
    assert "cosigned by X1, Y1" in text
    assert "group X-witnesses has 1 of the 2 needed (missing: X2, X3)" in text


def test_a_single_witness_quorum() -> None:
    policy = parse_policy(f"witness X1 {vkey(0)}\nwitness X2 {vkey(1)}\nquorum X1\n")
    assert evaluate(policy, checkpoint(0)).met
    verdict = evaluate(policy, checkpoint(1))
    assert not verdict.met
    assert verdict.short[0].describe() == "witness X1 did not cosign"
    assert dict(verdict.cosigned) == {"X2": TIME + 1}


def test_quorum_none_is_met_by_a_checkpoint_without_cosignatures() -> None:
    verdict = evaluate(parse_policy("quorum none\n"), checkpoint())
    assert verdict.met and not verdict.cosigned and not verdict.short


def test_cosignatures_by_unknown_keys_are_ignored() -> None:
    signed = checkpoint(5)
    stranger = NoteSignature("witness.example/stranger", b"\x00\x01\x02\x03", b"\x00" * 72)
    note = Note(signed.text, (*signed.signatures, stranger)).encode()
    verdict = evaluate(Policy.of_witnesses(KEYS[5:6]), SignedCheckpoint(note, LOG.verifier()))
    assert verdict.met
    assert dict(verdict.cosigned) == {KEYS[5].name: TIME + 5}


def test_a_bad_line_from_a_known_witness_fails_the_note() -> None:
    # Witness 0's cosignature taken from another checkpoint (another root) of the log.
    other = sign_checkpoint(Checkpoint(LOG.name, 8, ROOT), LOG)
    stolen = cosign_checkpoint(other, SIGNERS[0], TIME).signatures[-1]
    signed = checkpoint(1)
    note = Note(signed.text, (*signed.signatures, stolen)).encode()
    forged = SignedCheckpoint(note, LOG.verifier())
    with pytest.raises(NoteError, match="does not verify"):
        evaluate(Policy.of_witnesses(KEYS[:2], 1), forged)
    # A policy that does not list witness 0 ignores the line.
    assert evaluate(Policy.of_witnesses(KEYS[1:2]), forged).met


def test_a_policy_for_other_logs_is_refused() -> None:
    policy = parse_policy(f"log {OTHER_LOG.verifier().encode()}\nquorum none\n")
    with pytest.raises(PolicyError, match="is for other logs"):
        evaluate(policy, checkpoint())
    assert evaluate(policy, checkpoint(log=OTHER_LOG)).met
