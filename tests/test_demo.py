"""``make demo`` (``python -m redlist.demo``) runs a real node end to end and stops it."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from redlist.demo import cli, story
from redlist.demo.console import shell_line
from redlist.demo.node import NodeProcess
from redlist.demo.tour import Tour
from redlist.ledger.errors import RedlistError
from redlist.staff import csvfiles
from redlist.verifier import cli as verifier_cli

# Entries the demo appends: genesis, 6 keys, 15 rules, a second admin, 300 spreadsheet
# rows, 3 council awards, 1 declaration the council reviewed, 1 redemption, 1 objection,
# 1 reversal.
DEMO_ENTRIES = 1 + 6 + 15 + 1 + 300 + 3 + 1 + 1 + 1 + 1
#: Steps 1-12: Dongguan's month; 13-20: three towns keep each other honest.
LAST_STEP = 20
SERVING = re.compile(r"serving log dongguan\.example/redlist \(1 entries\) on 127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class DemoRun:
    root: Path
    code: int
    out: str
    err: str


def verify_json(root: Path) -> dict[str, object]:
    """What an auditor gets from the demo's bundle, checked here independently."""
    output = io.StringIO()
    argv = ["bundle", str(root / "bundle"), "--log-key", str(root / "node" / "log.pub"), "--json"]
    with contextlib.redirect_stdout(output):
        assert verifier_cli.main(argv) == 0
    result: dict[str, object] = json.loads(output.getvalue())
    return result


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One run of exactly what `make demo` runs, as its own process."""
    root = tmp_path_factory.mktemp("make-demo") / "demo-data"
    result = subprocess.run(
        [sys.executable, "-m", "redlist.demo", "--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return DemoRun(root, result.returncode, result.stdout, result.stderr)


def test_the_demo_succeeds_and_walks_through_every_step(demo_run: DemoRun) -> None:
    assert demo_run.code == 0, demo_run.out + demo_run.err
    assert demo_run.err == ""
    positions = [demo_run.out.index(f"\nStep {step}. ") for step in range(1, LAST_STEP + 1)]
    assert positions == sorted(positions)
    assert "Result: the log verifies." in demo_run.out
    assert "Residents per grade: AAA " in demo_run.out
    assert re.search(r"\nDone in \d+\.\d s\.\n$", demo_run.out)


def test_the_node_is_a_real_process_on_loopback_and_stops_cleanly(demo_run: DemoRun) -> None:
    serving = SERVING.search(demo_run.out)
    assert serving is not None, demo_run.out
    port = int(serving[1])
    assert f"--node 127.0.0.1:{port} --signer" in demo_run.out
    assert "exited with status 0" in demo_run.out
    # Its own output went to node.log, which ends with the graceful shutdown.
    node_log = (demo_run.root / "node.log").read_text().splitlines()
    assert SERVING.fullmatch(next(line for line in node_log if line.startswith("serving")))
    assert node_log[-1].endswith("stopped")
    # Nothing listens on its port any more.
    with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
        probe.connect(("127.0.0.1", port))


def test_the_staff_commands_are_shown_so_the_reader_can_copy_them(demo_run: DemoRun) -> None:
    root = str(demo_run.root)
    for command in (
        f"$ redlist keygen --out {root}/keys/admin.pem",
        f"$ redlist-node init --data {root}/node --origin {story.ORIGIN}",
        f"$ redlist-node serve --data {root}/node --listen 127.0.0.1:0",
        f"$ redlist key add --pub {root}/keys/wang-fang.pem.pub",
        f"$ redlist rules load --csv {root}/catalogue.csv",
        f"$ redlist-node residents import --data {root}/node --csv {root}/register.csv",
        f"$ redlist submit --csv {root}/awards-east.csv",
        "$ redlist award --account dgc-0012 --rule saf-life --note",
        "$ redlist propose --account dgc-0019 --rule med-dispute --date ",
        "$ redlist review list --node 127.0.0.1:",
        "$ redlist approve 1 ",
        "$ redlist redeem --account ",
        "$ redlist objection --target ",
        "$ redlist reverse --target ",
        f"$ redlist account {story.OBJECTOR} --node 127.0.0.1:",
        "Notes and items are kept by the town, off the log; staff see them by signing",
        f"$ redlist-node export --data {root}/node --out {root}/bundle --full",
        "$ redlist-verify node 127.0.0.1:",
    ):
        assert command in demo_run.out, command
    # The command to check the bundle again, once the node is gone.
    assert demo_run.out.rstrip().splitlines()[-3].strip() == (
        f"redlist-verify bundle {root}/bundle --log-key {root}/node/log.pub"
    )


def test_the_catalogue_and_a_second_admin_go_in_with_the_council(demo_run: DemoRun) -> None:
    out = demo_run.out
    root = str(demo_run.root)
    refused = "rule changes need 1 admin and 2 council members (town governance)"
    assert refused in out and "[PERMISSION_DENIED, check quorum]" in out
    council = " ".join(
        f"--cosigner {root}/keys/{member.handle}.pem" for member in story.COUNCIL[:2]
    )
    assert f"--signer {root}/keys/admin.pem {council}" in out
    assert "with the role admin (entry 22)." in out
    assert "$ redlist rules list --node 127.0.0.1:" in out
    assert "$ redlist keys list --node 127.0.0.1:" in out
    assert "Staff keys of log dongguan.example/redlist as of entry 22: 8 keys, 8 active." in out
    assert "Rushan and Juxian register their grid workers and councils" in out


def test_the_month_goes_in_through_the_node(demo_run: DemoRun) -> None:
    out = demo_run.out
    assert re.search(r"Loaded 15 rules from catalogue\.csv \(entries 7 to 21\)\.", out)
    recorded = re.findall(r"Submitted (\d+) of \1 rows of awards-(?:east|west)\.csv: \1 rec", out)
    assert sum(int(count) for count in recorded) == story.MONTH_ROWS
    assert "0 recorded now, " in out  # the file submitted twice
    assert "needs 2 council signatures, it has 1" in out  # refused with one council member
    assert out.count("Awarded 50 points to dgc-0012 under rule saf-life") == 1
    assert "Item 1: proposed the award to dgc-0019 under rule med-dispute; it needs 2 " in out
    assert "declared by the resident (本人申报)" in out
    assert "Approved item 1; it still needs: 1 more council signature (2 needed, 1 so far)." in out
    assert re.search(r"Approved item 1: recorded as entry \d+\.", out)
    assert re.search(r"Redeemed 60 points of dgc-\d{4} for “5 L peanut oil", out)


def test_the_register_is_imported_first_and_every_sheet_s_accounts_are_checked(
    demo_run: DemoRun,
) -> None:
    out = demo_run.out[: demo_run.out.index("\nStep 13. ")]  # Dongguan's month
    imported = out.index("Registered 60 new, updated 0, 0 unchanged")
    refused = out.index("error: awards-east.csv: 1 row cannot be used; nothing was submitted.")
    first_sheet = out.index("Submitted ")
    assert imported < out.index("\nStep 5. ") < refused < first_sheet
    # The mistyped account is refused by row and account, and nothing reaches the log.
    east = [row for row in story.month_rows() if story.grid_worker(row.account) == story.GRID_EAST]
    _, row = story.mistyped(east)
    assert (
        f"row {row}, column account: account {story.MISTYPED_AS} is not in the town's "
        "resident register"
    ) in out
    assert "Nothing was sent: the log still holds 23 entries." in out
    assert "Submitted 142 of 142 rows of awards-east.csv: 142 recorded now; entries 23 to " in out
    # Both sheets went in with their 30 accounts each checked, none unchecked (the two
    # neighbouring towns of steps 13 on keep no register, and are told so).
    checked = "Accounts checked against the town's resident register: 30 accounts, all registered."
    assert out.count(checked) == 2
    assert "Accounts were not checked" not in out


def test_the_objected_deduction_is_reversed_and_the_verifier_agrees(demo_run: DemoRun) -> None:
    verdict = verify_json(demo_run.root)
    assert verdict["ok"] is True
    assert verdict["tree_size"] == DEMO_ENTRIES
    accounts = verdict["accounts"]
    assert isinstance(accounts, dict)
    assert sorted(accounts) == story.accounts()
    line = re.search(
        rf"{story.OBJECTOR}: score (\d+) \(grade \w+\) -> (\d+) \(grade (\w+)\)", demo_run.out
    )
    assert line is not None, demo_run.out
    before, after, grade = int(line[1]), int(line[2]), line[3]
    assert after == before + 20  # the burning-straw deduction no longer counts
    assert (after, grade) == (accounts[story.OBJECTOR]["score"], accounts[story.OBJECTOR]["grade"])


def test_the_month_s_publicity_is_previewed_with_masked_names(demo_run: DemoRun) -> None:
    drafts = list(demo_run.root.glob("publicity-*"))
    assert len(drafts) == 1
    html = (drafts[0] / "publicity.html").read_text(encoding="utf-8")
    assert "信用积分公示（草稿）" in html
    rows = (drafts[0] / "publicity.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("日期,村,姓名,账户")
    # Two residents gave no basis for publication: they are left out, and said to be.
    assert "2 residents left out" in demo_run.out
    assert not any(f",{account}," in row for row in rows for account in story.NO_BASIS)
    # The village's cooperative is an organisation: so marked, and listed apart.
    (organisation,) = story.ORGANISATIONS
    assert all(row.endswith(",组织") == (f",{organisation}," in row) for row in rows[1:])
    assert "<h3>组织（月末累计分与等级）</h3>" in html and organisation in html
    register = (demo_run.root / "register.csv").read_text(encoding="utf-8-sig").splitlines()
    names = {line.split(",")[1] for line in register[1:]}
    exported = b"".join(path.read_bytes() for path in drafts[0].iterdir())
    assert not [name for name in names if name.encode() in exported]  # masked everywhere
    assert f"open {drafts[0]}/publicity.html in a browser" in demo_run.out


def test_three_towns_witness_each_other_and_catch_a_split_view(demo_run: DemoRun) -> None:
    out = demo_run.out
    for town, witnesses in (
        ("Dongguan", "rushan-witness, juxian-witness"),
        ("Rushan", "dongguan-witness, juxian-witness"),
        ("Juxian", "dongguan-witness, rushan-witness"),
    ):
        assert re.search(rf"{town} +size +\d+, cosigned by {witnesses}\n", out), town
    assert "The checkpoint meets the witness policy; vouched for by rushan" in out
    # Each town mirrors the other two; the county checks Dongguan on Rushan's copy too.
    assert out.count("mirroring log dongguan.example/redlist (") == 0  # Dongguan's own mirrors
    assert "mirroring log rushan.example/redlist (0 entries) from 127.0.0.1:" in out
    assert out.count("Verified: log dongguan.example/redlist") >= 2
    # Recognition: the attestation verifies, and Rushan shows the grade it maps to.
    assert "VALID attestation" in out
    assert f"recognised {demo_run.root}/attestations/dgc-0012.attestation.json" in out
    assert re.search(r"dongguan\.example/redlist +dgc-0012 +AAA \(\d+\) +AAA", out)
    # The fork: every witness kept evidence, which the verifier proves from the log key alone.
    assert "PROVES A SPLIT VIEW" in out
    assert "SPLIT VIEW PROVEN for log juxian.example/redlist" in out
    for town in ("node", "rushan"):
        evidence = list((demo_run.root / town / "evidence").glob("*/*.txt"))
        assert evidence, town
        assert (
            verifier_cli.main(
                ["evidence", str(evidence[0]), "--log-key", str(demo_run.root / "juxian/log.pub")]
            )
            == 1
        )
    assert "All nodes and mirrors exited with status 0." in out


def test_the_demo_wipes_its_own_previous_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "demo"
    assert cli.main(["--dir", str(root)]) == 0
    (root / "leftover.txt").write_text("from the last run")
    assert cli.main(["--dir", str(root)]) == 0
    assert not (root / "leftover.txt").exists()
    assert verify_json(root)["tree_size"] == DEMO_ENTRIES


def test_the_demo_never_wipes_a_directory_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "important"
    root.mkdir()
    (root / "ledger.xlsx").write_bytes(b"the village's own records")
    assert cli.main(["--dir", str(root)]) == 2
    assert "was not made by the demo" in capsys.readouterr().err
    assert [path.name for path in root.iterdir()] == ["ledger.xlsx"]


@pytest.fixture
def started_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[NodeProcess]]:
    """Every node the demo starts in this test."""
    nodes: list[NodeProcess] = []
    start = NodeProcess.start

    def recording_start(
        data: Path, output: Path, argv: Sequence[str] | None = None, **banner: Any
    ) -> NodeProcess:
        nodes.append(start(data, output, argv, **banner))
        return nodes[-1]

    monkeypatch.setattr(NodeProcess, "start", staticmethod(recording_start))
    yield nodes
    for node in nodes:
        node.close()


def test_a_failed_step_exits_1_and_still_stops_the_node(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    started_nodes: list[NodeProcess],
) -> None:
    def broken_step(self: Tour) -> None:
        raise RedlistError("the council's key files are missing")

    monkeypatch.setattr(Tour, "council_awards", broken_step)
    assert cli.main(["--dir", str(tmp_path / "demo")]) == 1
    output = capsys.readouterr()
    assert "The demo failed: the council's key files are missing" in output.err
    assert "Step 5." in output.out
    assert "Step 6." not in output.out
    (node,) = started_nodes
    assert not node.running
    assert node.process.returncode == 0  # stopped by SIGTERM, gracefully


def test_a_node_that_cannot_start_is_reported_with_its_own_words(tmp_path: Path) -> None:
    with pytest.raises(RedlistError) as caught:
        NodeProcess.start(tmp_path / "no-such-log", tmp_path / "node.log")
    message = caught.value.diagnostics()
    assert "the node exited with status 2 before serving" in message
    assert "no-such-log" in message


def test_the_audit_of_the_exported_bundle_agrees_with_the_node(
    tmp_path: Path, started_nodes: list[NodeProcess]
) -> None:
    root = tmp_path / "demo"
    cli.prepare_directory(root)
    lines: list[str] = []
    Tour(root, lines.append, audit_over_grpc=False, federation=False).run()
    output = "\n".join(lines)
    assert f"$ redlist-verify bundle {root}/bundle --log-key {root}/node/log.pub" in output
    assert "Result: the log verifies." in output
    assert not started_nodes[0].running


# -- the story and the shown command lines -------------------------------------


def test_the_month_is_the_same_on_every_run() -> None:
    first = story.month_rows()
    assert first == story.month_rows(story.SEED)
    assert first != story.month_rows(story.SEED + 1)
    assert len(first) == story.MONTH_ROWS
    assert {row.account for row in first} == set(story.accounts())
    assert sum(1 for row in first if (row.account, row.rule) == (story.OBJECTOR, "env-straw")) >= 1
    council_rules = {rule.code for rule in story.RULES if rule.council}
    assert not council_rules & {row.rule for row in first}  # grid workers cannot sign those
    # The rows keep within the catalogue's caps, which the node enforces.
    caps = {rule.code: rule for rule in story.RULES}
    assert all(row.qty <= (caps[row.rule].max_qty or row.qty) for row in first)
    assert (
        max(Counter((row.account, row.rule) for row in first if row.rule == "env-sort").values())
        == 1
    )


def test_the_mistyped_account_is_one_the_register_does_not_hold() -> None:
    rows = story.month_rows()
    slipped, row = story.mistyped(rows)
    registered = {line.split(",")[0] for line in story.register_csv().splitlines()[1:]}
    assert story.MISTYPED_ACCOUNT in registered and story.MISTYPED_AS not in registered
    lines = story.sheet_csv(slipped, date(2026, 3, 1)).splitlines()
    assert lines[row - 1].startswith(f"{story.MISTYPED_AS},")  # row 1 is the header
    assert [r for r in slipped if r.account == story.MISTYPED_AS] == [
        replace(rows[row - 2], account=story.MISTYPED_AS)
    ]
    assert [r for r in slipped if r.account != story.MISTYPED_AS] == rows[: row - 2] + rows[
        row - 1 :
    ]


def test_the_files_the_demo_writes_are_what_the_staff_commands_read() -> None:
    rows = story.month_rows()
    today = date(2026, 3, 1)
    parsed = csvfiles.parse_awards_csv(story.sheet_csv(rows, today).encode(), "awards.csv")
    assert [(row.account, row.rule, row.qty, row.date, row.note or "") for row in parsed] == [
        (row.account, row.rule, row.qty, row.date(today), row.note) for row in rows
    ]
    assert {row.date for row in parsed} <= {
        (today - timedelta(days=days)).isoformat() for days in range(1, story.MONTH_DAYS + 1)
    }
    rules = csvfiles.parse_rules_csv(story.catalogue_csv(story.RULES).encode(), "catalogue.csv")
    assert [
        (rule.code, rule.points, rule.council, rule.max_qty, rule.max_per_month) for rule in rules
    ] == [
        (rule.code, rule.points, rule.council, rule.max_qty, rule.max_per_month)
        for rule in story.RULES
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["account", "dgc-0001", "--node", "127.0.0.1:7420"],
        ["reverse", "--target", "116", "--reason", "not the resident's field; withdrawn.",
         "--node", "127.0.0.1:7420", "--signer", "keys/chen.pem", "--cosigner", "keys/zhao.pem"],
    ],
)  # fmt: skip
def test_a_shown_command_line_is_the_command_that_ran(argv: list[str]) -> None:
    line = shell_line("redlist", argv)
    assert all(len(part) <= 120 for part in line.splitlines())
    assert shlex.split(line.replace("\\\n", " ")) == ["redlist", *argv]
