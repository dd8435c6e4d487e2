"""The staff commands without a node: argument handling, checks made before any call,
the progress bar and the account statement's layout.

Every check here must happen before the node is contacted, so the commands point at
an address where nothing listens: reaching the node would fail differently.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tests.staff.running import redlist

from redlist.ledger import keyfile
from redlist.ledger.bodies import Grade, TownConfig
from redlist.ledger.crypto import SigningKey
from redlist.ledger.deeddate import known_zone, log_zone
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.progress import ProgressBar
from redlist.proto.client import RemoteAccount, RemoteEntry
from redlist.proto.contract import MAX_BATCH_CHECK, RATE_LIMIT_CHECK, Limits
from redlist.proto.errors import NodeError
from redlist.staff import csvfiles
from redlist.staff.commands import account, submit
from redlist.staff.sheet import SheetRow, sheet_rows

NOWHERE = "127.0.0.1:1"
#: A well-formed log key: commands that get as far as the node need one.
SOME_LOG_KEY = NoteSigner.generate("town.example/log").verifier().encode()
CHECKPOINT = sign_checkpoint(
    Checkpoint("wendeng.example/redlist", 58, bytes(32)),
    NoteSigner.generate("wendeng.example/redlist"),
)


@pytest.fixture
def signer(tmp_path: Path) -> str:
    path = tmp_path / "wang.pem"
    keyfile.write_key_files(path, SigningKey.generate(), "Wang Fang")
    return str(path)


def refused_before_calling(result_code: int, err: str, problem: str) -> None:
    assert result_code == 2, err
    assert problem in err
    assert "cannot reach" not in err


def test_help_lists_every_command() -> None:
    result = redlist("--help")
    assert result.code == 0
    for command in (
        "keygen",
        "key",
        "rule",
        "rules",
        "award",
        "redeem",
        "objection",
        "reverse",
        "submit",
        "account",
    ):
        assert re.search(rf"^    {command}\b", result.out, re.MULTILINE), command


@pytest.mark.parametrize(
    "argv",
    [
        ["award", "--account", "dgc-1", "--rule", "V01", "--node", NOWHERE],  # no --signer
        ["award", "--account", "dgc-1", "--node", NOWHERE, "--signer", "k.pem"],  # no --rule
        ["award", "--account", "dgc-1", "--rule", "V01", "--qty", "two", "--signer", "k"],
        ["key"],
        ["key", "add", "--pub", "00", "--name", "x", "--node", NOWHERE, "--signer", "k.pem"],
        ["rule", "set", "--code", "V01", "--title", "t", "--module", "m", "--points", "1.5"],
        ["rules"],
        ["account"],
    ],
)
def test_missing_or_malformed_arguments_are_usage_errors(argv: list[str]) -> None:
    result = redlist(*argv)
    assert result.code == 2
    assert "usage: redlist" in result.err


def test_bad_account_is_reported_before_the_node_is_asked(signer: str) -> None:
    result = redlist(
        "award", "--account", "张三", "--rule", "V01", "--node", NOWHERE, "--signer", signer
    )
    refused_before_calling(result.code, result.err, "account id '张三' is not valid")
    assert result.err.startswith("error: ")
    assert result.out == ""


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["award", "--account", "dgc-1", "--rule", "V01", "--qty", "0"], "qty must be at least 1"),
        (["award", "--account", "dgc-1", "--rule", " "], "rule code must not be empty"),
        (["redeem", "--account", "dgc-1", "--points", "0", "--item", "rice"], "at least 1"),
        (["redeem", "--account", "dgc-1", "--points", "5", "--item", ""], "item must not be"),
        (["objection", "--target", "0", "--text", "no"], "entry number of an award"),
        (["reverse", "--target", "5", "--reason", ""], "reason must not be empty"),
        (
            ["rule", "set", "--code", "V01", "--title", "t", "--module", "m", "--points", "0"],
            "points must be a non-zero integer",
        ),
        (["rule", "retire", "--code", ""], "rule code must not be empty"),
        (["key", "add", "--pub", "ab" * 32, "--name", "x", "--roles", "boss"], "'boss' is not"),
        (["key", "add", "--pub", "ab" * 32, "--name", "", "--roles", "grid"], "must not be empty"),
        (["key", "revoke", "--pub", "nosuch.pem"], "neither a key file nor a public key"),
        (
            ["award", "--account", "dgc-1", "--rule", "V01", "--note", "ok\x1b[2J"],
            "the note contains an invisible or control character (U+001B) at character 3",
        ),
        (
            [
                "rule",
                "set",
                "--code",
                "V01\u0443",
                "--title",
                "t",
                "--module",
                "m",
                "--points",
                "5",
            ],
            "must be 1 to 32 ASCII letters",
        ),
        (
            [
                "rule",
                "set",
                "--code",
                "V\u200b01",
                "--title",
                "t",
                "--module",
                "m",
                "--points",
                "5",
            ],
            "invisible or control character (U+200B ZERO WIDTH SPACE)",
        ),
    ],
)
def test_bad_values_are_reported_before_the_node_is_asked(
    signer: str, argv: list[str], problem: str
) -> None:
    result = redlist(*argv, "--node", NOWHERE, "--signer", signer)
    refused_before_calling(result.code, result.err, problem)


def test_numbers_are_read_as_a_clerk_writes_them(signer: str) -> None:
    award = ["award", "--account", "dgc-1", "--rule", "V01", "--node", NOWHERE, "--signer", signer]
    award += ["--log-key", SOME_LOG_KEY]
    # "2.0" is the whole number 2: the command gets as far as the node.
    result = redlist(*award, "--qty", "2.0")
    assert result.code == 2 and "cannot reach the node" in result.err
    result = redlist(*award, "--qty", "2.5")
    assert result.code == 2
    assert "argument --qty: the value must be a whole number, not '2.5'" in result.err
    assert "invalid" not in result.err
    result = redlist(
        "rule", "set", "--code", "V9", "--title", "t", "--module", "m",
        "--points", "99999999999999999999", "--node", NOWHERE, "--signer", signer,
    )  # fmt: skip
    assert result.code == 2
    assert "argument --points: the value is far too large" in result.err
    assert "64-bit" not in result.err


def test_ctrl_c_is_reported_without_a_traceback(
    signer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(account, "run", interrupted)
    result = redlist("account", "dgc-1", "--node", NOWHERE)
    assert result.code == 130
    assert result.err == "\nerror: interrupted (Ctrl-C)\n"
    assert "Traceback" not in result.out + result.err


def test_a_reader_that_stops_early_ends_the_output_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def closed_pipe(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(account, "run", closed_pipe)
    result = redlist("account", "dgc-1", "--node", NOWHERE)
    assert result.code == 141
    assert result.err == ""


@pytest.mark.parametrize(
    "argv", [["key", "add"], ["key", "revoke"], ["rule", "set"], ["rule", "retire"]]
)
def test_every_action_explains_itself(argv: list[str]) -> None:
    result = redlist(*argv, "--help")
    assert result.code == 0
    description = result.out.split("\n\n")[1]
    assert "with the town's governance quorum" in " ".join(description.lower().split()), result.out


def test_key_add_help_lists_the_roles() -> None:
    result = redlist("key", "add", "--help")
    assert "from admin, grid, council, cashier" in " ".join(result.out.split())


def test_bad_key_files(tmp_path: Path, signer: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    award = ["award", "--account", "dgc-1", "--rule", "V01", "--node", NOWHERE]
    result = redlist(*award, "--signer", str(garbage))
    refused_before_calling(result.code, result.err, "garbage.pem: not a PEM private key")
    result = redlist(*award, "--signer", str(tmp_path / "missing.pem"))
    refused_before_calling(result.code, result.err, "missing.pem does not exist")
    result = redlist(*award, "--signer", signer, "--cosigner", signer)
    refused_before_calling(result.code, result.err, "is given twice (with --signer and --cosigner)")


@pytest.mark.parametrize(
    ("public", "problem"),
    [
        ("01" + "00" * 31, "it is a point of small order"),
        ("ec" + "ff" * 30 + "7f", "it is a point of small order"),
        ("ff" * 32, "its encoding is not canonical"),
        ("03" + "00" * 31, "it is not of prime order"),
    ],
)
def test_key_add_refuses_a_key_the_node_would_refuse_before_sending(
    tmp_path: Path, signer: str, public: str, problem: str
) -> None:
    """docs/format.md 3.1: only a canonical point of prime order may be registered."""
    pem = tmp_path / "mallory.pem.pub"
    pem.write_bytes(
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for given in (public, str(pem)):
        result = redlist(
            "key", "add", "--pub", given, "--name", "Mallory", "--roles", "grid",
            "--node", NOWHERE, "--signer", signer,
        )  # fmt: skip
        refused_before_calling(result.code, result.err, problem)
        assert f"error: {given} is not a usable staff key, the node would refuse it: " in (
            result.err
        )
        assert "make a new key with 'redlist keygen'" in result.err
        assert "Nothing was sent to the node." in result.err


def test_a_public_key_file_cannot_sign(signer: str) -> None:
    public = str(keyfile.public_path(Path(signer)))
    result = redlist(
        "award", "--account", "dgc-1", "--rule", "V01", "--node", NOWHERE, "--signer", public
    )
    refused_before_calling(result.code, result.err, "holds a public key; signing needs the private")


def test_bad_node_address(signer: str) -> None:
    result = redlist("account", "dgc-1", "--node", "localhost")
    assert result.code == 2
    assert "the node address 'localhost' is not HOST:PORT" in result.err


def test_unreachable_node_exits_2_and_says_so(signer: str) -> None:
    result = redlist(
        "award", "--account", "dgc-1", "--rule", "V01", "--node", NOWHERE, "--signer", signer,
        "--log-key", SOME_LOG_KEY,
    )  # fmt: skip
    assert result.code == 2
    assert result.err.startswith(f"error: cannot reach the node at {NOWHERE}")
    assert result.out == ""


def test_csv_problems_are_reported_before_the_node_is_asked(tmp_path: Path, signer: str) -> None:
    rules = tmp_path / "rules.csv"
    rules.write_text("code,title,module,points,council\nV01,Pond,env,five,no\n", encoding="utf-8")
    result = redlist("rules", "load", "--csv", str(rules), "--node", NOWHERE, "--signer", signer)
    refused_before_calling(
        result.code, result.err, "row 2, column points: points must be a non-zero integer"
    )
    awards = tmp_path / "awards.csv"
    awards.write_text("account,rule,qty,note\ndgc-1,V01,1,\n,V01,1,\n", encoding="utf-8")
    result = redlist("submit", "--csv", str(awards), "--node", NOWHERE, "--signer", signer)
    refused_before_calling(result.code, result.err, "row 3, column account: account id ''")
    result = redlist(
        "submit", "--csv", str(tmp_path / "none.csv"), "--node", NOWHERE, "--signer", signer
    )
    refused_before_calling(result.code, result.err, "awards file")
    result = redlist(
        "submit", "--csv", str(awards), "--batch-size", "0", "--node", NOWHERE, "--signer", signer
    )
    refused_before_calling(result.code, result.err, "--batch-size must be at least 1")


# ---------------------------------------------------------------------------
# Progress and summaries


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    terminal = FakeTerminal()
    with ProgressBar(terminal, "submitting", "rows") as progress:
        progress.update(0, 1000)
        progress.update(500, 1000)
    shown = terminal.getvalue()
    assert "500/1,000 rows" in shown
    plain = io.StringIO()
    with ProgressBar(plain, "submitting", "rows") as quiet:
        quiet.update(500, 1000)
    assert plain.getvalue() == ""


def test_outcome_summary_of_one_entry() -> None:
    outcome = submit.Outcome()
    outcome.recorded[2] = 324
    assert outcome.summary("refused.csv", 3) == (
        "Submitted 1 of 3 rows of refused.csv: 1 recorded now; entry 324."
    )


CONFIG = TownConfig(1000, (Grade("AAA", 1050), Grade("A", 960), Grade("B", None)), 2, 7, "UTC")


def _sheet(numbers: range | tuple[int, ...]) -> tuple[SheetRow, ...]:
    rows = tuple(csvfiles.AwardRow(number, f"dgc-{number}", "V01", 1, None) for number in numbers)
    return sheet_rows(rows, "town.example/log", "2026-05-03")


def test_stop_report_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _sheet((2, 3, 4))
    plan = submit.Plan("refused.csv", rows, {}, 0, "2026-05-03", CONFIG, {})
    outcome = submit.Outcome()
    outcome.recorded[2] = 324
    submit._report_stop(plan, outcome, refused=True)
    out = capsys.readouterr().out
    assert out.startswith("Submitted 1 of 3 rows of refused.csv: 1 recorded now; entry 324.")
    assert "The rows not counted above were not recorded." in out
    assert "recognised by what they say" in out
    submit._report_stop(plan, submit.Outcome(), refused=False)
    assert "The rows sent last may or may not be recorded." in capsys.readouterr().out


def test_a_batch_too_large_for_the_node_says_which_batch_size_to_use() -> None:
    rows = _sheet(range(2, 7))
    refusal = NodeError(
        MAX_BATCH_CHECK,
        "the batch has 5 envelopes; this node takes at most 2 in one request, split it",
        code="RESOURCE_EXHAUSTED",
        limit=2,
    )
    located = submit._located(refusal, rows, [0, 1, 2, 3, 4])
    assert located.diagnostics() == (
        "the node refused the batch of rows 2 to 6: the batch has 5 envelopes; this node takes "
        "at most 2 in one request, split it; run the same command again with --batch-size 2 "
        "[RESOURCE_EXHAUSTED, check max-batch]"
    )
    other = NodeError(
        RATE_LIMIT_CHECK, "too many calls from you; retry in 1.0 s", code="RESOURCE_EXHAUSTED"
    )
    assert "--batch-size" not in submit._located(other, rows, [0, 1]).diagnostics()
    # The limit is read from the refusal's data, never from its words.
    words_only = NodeError(None, refusal.message, code="RESOURCE_EXHAUSTED")
    assert "--batch-size" not in submit._located(words_only, rows, [0, 1]).diagnostics()


def test_batches_stay_within_the_nodes_limits() -> None:
    envelopes = [(index, bytes(100)) for index in range(10)]
    roomy = Limits(max_batch=10_000, max_envelope_bytes=65_536, max_message_bytes=1 << 20)
    assert [list(batch) for batch in submit.batches(envelopes, 4, roomy)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    few = Limits(max_batch=3, max_envelope_bytes=65_536, max_message_bytes=1 << 20)
    assert [len(batch) for batch in submit.batches(envelopes, 500, few)] == [3, 3, 3, 1]
    # Room for three envelopes of 100 bytes with their framing, not four.
    small = Limits(max_batch=10_000, max_envelope_bytes=65_536, max_message_bytes=3 * 105)
    split = list(submit.batches(envelopes, 500, small))
    assert [len(batch) for batch in split] == [3, 3, 3, 1]
    assert all(small.request_fits(map(len, batch.values())) for batch in split)
    assert not small.request_fits([100] * 4)
    # An envelope larger than a request still goes out, alone: the node names it.
    tiny = Limits(max_batch=10_000, max_envelope_bytes=65_536, max_message_bytes=50)
    assert [len(batch) for batch in submit.batches(envelopes[:2], 500, tiny)] == [1, 1]


def test_outcome_summary() -> None:
    outcome = submit.Outcome()
    outcome.recorded.update({4: 60, 5: 61})
    outcome.present.update({2: 40, 3: 41})
    assert outcome.summary("awards.csv", 10, (2, "2026-05-03")) == (
        "Submitted 4 of 10 rows of awards.csv: 2 recorded now, 2 already recorded; "
        "entries 40 to 61. 2 rows had no date and got today's, 2026-05-03."
    )


# ---------------------------------------------------------------------------
# The account statement

VIEW = RemoteAccount(
    account="dgc-0001",
    score=1010,
    spendable=-5,
    redeemed=15,
    earned=10,
    grade="A",
    entries=(
        # 2026-01-05 06:03 UTC is 14:03 in Asia/Shanghai.
        RemoteEntry(
            40,
            1_767_592_980_000,
            1_767_592_979_000,
            "award",
            "V01",
            2,
            "pond",
            "",
            10,
            None,
            True,
            date="2026-01-03",
        ),
        RemoteEntry(
            41,
            1_767_600_000_000,
            1_767_600_000_000,
            "award",
            "H01",
            1,
            "",
            "",
            20,
            57,
            date="2026-01-05",
        ),
        RemoteEntry(
            42,
            1_767_610_000_000,
            1_767_610_000_000,
            "redeem",
            "",
            0,
            "",
            "大米 5 公斤",
            15,
            None,
            True,
        ),
    ),
    checkpoint=CHECKPOINT.note,
    texts_withheld=False,  # as a staff member's signed read (--signer) gets it
)


TITLES = {"V01": "Cleaned the pond", "H01": "Helped a neighbour"}


def test_statement_lines() -> None:
    zone = log_zone("Asia/Shanghai")
    lines = account.to_lines(VIEW, CHECKPOINT, "Asia/Shanghai", zone, TITLES)
    assert lines[0] == "Account dgc-0001 in log wendeng.example/redlist, as of entry 57"
    assert "score:       1010  (grade A)" in lines[1]
    assert "to spend:      -5" in lines[2]
    table = lines[5:9]
    assert table[0].split() == [
        "entry",
        "recorded",
        "(Asia/Shanghai)",
        "deed",
        "date",
        "kind",
        "rule",
        "/",
        "item",
        "title",
        "points",
        "reversed",
        "note",
    ]
    # Each award shows its deed date, its rule's title and its note.
    assert table[1].split() == [
        "40",
        "2026-01-05",
        "14:03",
        "2026-01-03",
        "award",
        "V01",
        "×2",
        "Cleaned",
        "the",
        "pond",
        "+10",
        "pond",
    ]
    assert table[2].split() == [
        "41",
        "2026-01-05",
        "16:00",
        "2026-01-05",
        "award",
        "H01",
        "Helped",
        "a",
        "neighbour",
        "+20",
        "yes,",
        "entry",
        "57",
    ]
    assert table[3].split()[3:] == ["redemption", "大米", "5", "公斤", "-15"]
    # Columns line up although the item is written in double-width characters.
    points_end = table[0].index("points") + len("points")
    assert [
        account._width(line[: line.index(points)]) + len(points)
        for line, points in zip(table[1:], ("+10", "+20", "-15"), strict=True)
    ] == [points_end] * 3
    assert lines[-1] == "Redemptions lower the points to spend, not the score."


def test_a_statement_without_texts_says_they_are_withheld_or_erased() -> None:
    zone = log_zone("Asia/Shanghai")
    blank = tuple(replace(entry, note="", item="") for entry in VIEW.entries)
    withheld = account.to_lines(
        replace(VIEW, entries=blank, texts_withheld=True), CHECKPOINT, "Asia/Shanghai", zone
    )
    assert withheld[6].split()[4:7] == ["award", "V01", "×2"]
    assert withheld[6].split()[-1] == "(withheld)"
    assert withheld[8].split()[3:5] == ["redemption", "(withheld)"]
    assert withheld[-1] == "Notes and items are withheld: staff see them with --signer KEYFILE."
    erased = account.to_lines(replace(VIEW, entries=blank), CHECKPOINT, "Asia/Shanghai", zone)
    assert erased[8].split()[3:5] == ["redemption", "(erased)"]
    assert "withheld" not in erased[-1]


def test_statement_json() -> None:
    zone = log_zone("Asia/Shanghai")
    document = json.loads(
        json.dumps(account.to_json(VIEW, CHECKPOINT, "Asia/Shanghai", zone, TITLES))
    )
    assert {key: document[key] for key in ("score", "spendable", "redeemed", "grade")} == {
        "score": 1010,
        "spendable": -5,
        "redeemed": 15,
        "grade": "A",
    }
    assert document["tree_size"] == 58
    first, second, third = document["entries"]
    assert first["date"] == "2026-01-05T14:03:00+08:00"
    assert (first["rule"], first["qty"], first["note"], first["reversed"]) == (
        "V01",
        2,
        "pond",
        False,
    )
    assert (first["deed_date"], first["title"]) == ("2026-01-03", "Cleaned the pond")
    assert (second["reversed"], second["reversed_by"]) == (True, 57)
    assert (third["kind"], third["item"], third["points"], third["rule"]) == (
        "redeem",
        "大米 5 公斤",
        15,
        None,
    )


def test_statement_of_an_account_without_entries() -> None:
    empty = RemoteAccount("dgc-9", 1000, 0, 0, 0, "A", (), CHECKPOINT.note)
    lines = account.to_lines(empty, CHECKPOINT, "UTC", log_zone("UTC"))
    assert lines[-1] == "No awards or redemptions yet."


def test_an_unknown_time_zone_is_none_to_show_times_in() -> None:
    assert known_zone("Mars/Olympus_Mons") is None
    assert str(known_zone("Asia/Shanghai")) == "Asia/Shanghai"


def test_statement_json_printed_page_by_page_is_the_whole_object() -> None:
    zone = log_zone("Asia/Shanghai")
    whole = json.dumps(
        account.to_json(VIEW, CHECKPOINT, "Asia/Shanghai", zone), ensure_ascii=False, indent=2
    )
    pages = [dataclasses.replace(VIEW, entries=(entry,)) for entry in VIEW.entries]
    assert "".join(account.json_chunks(pages, CHECKPOINT, "Asia/Shanghai", zone)) == whole
    empty = dataclasses.replace(VIEW, entries=())
    assert "".join(account.json_chunks([empty], CHECKPOINT, "UTC", zone)) == json.dumps(
        account.to_json(empty, CHECKPOINT, "UTC", zone), ensure_ascii=False, indent=2
    )


def test_statement_lines_page_by_page() -> None:
    zone = log_zone("Asia/Shanghai")
    pages = [dataclasses.replace(VIEW, entries=(entry,)) for entry in VIEW.entries]
    lines = list(account.statement_lines(pages, CHECKPOINT, "Asia/Shanghai", zone))
    # The header and each page's rows, in order; a wider cell later widens its column.
    assert lines[:5] == account.to_lines(VIEW, CHECKPOINT, "Asia/Shanghai", zone)[:5]
    assert [line.split()[0] for line in lines[5:9]] == ["entry", "40", "41", "42"]
    assert lines[-1] == "Redemptions lower the points to spend, not the score."
    single = account.to_lines(
        dataclasses.replace(VIEW, entries=VIEW.entries[:1]), CHECKPOINT, "UTC", zone
    )
    assert single[-1].split()[0] == "40"
