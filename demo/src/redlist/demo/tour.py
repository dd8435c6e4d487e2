"""The demo's steps: a month of Dongguan village's credit points on a real node.

:class:`Tour` walks through what a town does, with the real commands, and says
in plain words what each step means. The node is a real ``redlist-node serve``
process (:mod:`redlist.demo.node`); every other command runs in this process
(:mod:`redlist.demo.console`). The node is stopped whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from redlist.demo import story
from redlist.demo.console import Console, Program, Show, shell_line
from redlist.demo.federation import Federation
from redlist.demo.node import NodeProcess, serve_argv
from redlist.ledger import logkeyfile
from redlist.ledger.errors import RedlistError
from redlist.ledger.logdir import LOG_PUB_NAME
from redlist.node import cli as node_cli
from redlist.proto.client import RemoteAccount
from redlist.staff import cli as staff_cli
from redlist.staff.client import LedgerClient
from redlist.staff.knownlogs import KNOWN_LOGS_NAME
from redlist.verifier import cli as verifier_cli

REDLIST = Program("redlist", staff_cli.main)
REDLIST_NODE = Program("redlist-node", node_cli.main)
REDLIST_VERIFY = Program("redlist-verify", verifier_cli.main)

#: Step 10, the live audit. True: the auditor checks the node itself over gRPC
#: ('redlist-verify node ADDR --log-key VKEY'); the bundle is still exported, for
#: checking again offline. False: the auditor checks the exported bundle instead.
AUDIT_OVER_GRPC = True


class Tour:
    """One run of the demo in ``root`` (an empty directory), telling it through ``say``."""

    def __init__(
        self,
        root: Path,
        say: Callable[[str], None],
        *,
        audit_over_grpc: bool = AUDIT_OVER_GRPC,
        federation: bool = True,
    ) -> None:
        self.root = root
        #: Part two: three towns witness each other (:mod:`redlist.demo.federation`).
        self.federation = federation
        self.audit_over_grpc = audit_over_grpc
        self.say = say
        self.console = Console(say)
        self.keys = root / "keys"
        self.data = root / "node"
        self.bundle = root / "bundle"
        self.log_key = str(self.data / LOG_PUB_NAME)
        # The staff tools' configuration (their known-logs file) stays in the demo's
        # directory: the demo never writes to the reader's own configuration.
        self.config = root / "config"
        self.node: NodeProcess | None = None
        #: The notice and the list the publicity step wrote.
        self.publicity_files: tuple[Path, Path] | None = None

    # -- plumbing -------------------------------------------------------------

    def key(self, staff: story.Staff) -> str:
        return str(self.keys / f"{staff.handle}.pem")

    @property
    def address(self) -> str:
        if self.node is None:
            raise RedlistError("the node is not running")
        return self.node.address

    def signed(self, signer: story.Staff, *cosigners: story.Staff) -> list[str]:
        """``--node ADDR --signer KEY [--cosigner KEY ...]``."""
        argv = ["--node", self.address, "--signer", self.key(signer)]
        for cosigner in cosigners:
            argv += ["--cosigner", self.key(cosigner)]
        return argv

    def account_json(self, account: str) -> dict[str, Any]:
        argv = ["account", account, "--node", self.address, "--json"]
        value: dict[str, Any] = json.loads(self.console.run(REDLIST, argv, show=Show.NOTHING))
        return value

    def step(self, number: int, text: str) -> None:
        self.say("")
        self.say(f"Step {number}. {text}")

    # -- the story ------------------------------------------------------------

    def run(self) -> None:
        with _config_home(self.config):
            self._run()

    def _run(self) -> None:
        self.say(f"A month of credit points in Dongguan village, on a real node, in {self.root}/")
        self.make_keys()
        self.create_log()
        try:
            self.start_node()
            self.register()
            self.import_register()
            rows = self.submit_month()
            self.council_awards()
            self.declaration()
            self.redeem(rows)
            self.objection()
            self.audit()
            self.publicity()
            self.stop_node()
        finally:
            if self.node is not None:
                self.node.close()
        if self.federation:
            Federation(
                self.root, self.say, dongguan_data=self.data, keys=self.keys, first_step=12
            ).run()
        if self.publicity_files is not None:
            html, csv_file = self.publicity_files
            self.say("")
            self.say(f"The month's publicity (draft): open {html} in a browser and print it,")
            self.say(f"or {csv_file} in Excel; names are masked as the board shows them.")
        again = ["bundle", str(self.bundle), "--log-key", self.log_key]
        self.say("")
        self.say("Check the bundle again yourself, no node needed (with .venv/bin on your PATH;")
        self.say(f"--account {story.OBJECTOR} adds that resident's statement, with running score):")
        self.say(f"  {shell_line(REDLIST_VERIFY.name, again)}")

    def make_keys(self) -> None:
        self.step(1, "Each staff member creates a signing key on their own computer.")
        self.keys.mkdir()
        for number, staff in enumerate(story.STAFF):
            argv = ["keygen", "--out", self.key(staff), "--name", staff.name]
            if number == 0:
                self.console.run(REDLIST, argv)
                self.say("  The others do the same:")
            else:
                out = self.console.run(REDLIST, argv, show=Show.NOTHING)
                key_id = next(line for line in out.splitlines() if line.startswith("key id:"))
                self.say(f"  $ {shell_line(REDLIST.name, argv)}")
                self.say(f"      {key_id}")

    def create_log(self) -> None:
        self.step(2, "The town creates its log (the admin signs entry 0) and starts its node.")
        argv = ["init", "--data", str(self.data), "--origin", story.ORIGIN]
        self.console.run(REDLIST_NODE, [*argv, "--admin-key", self.key(story.ADMIN)])

    def start_node(self) -> None:
        self.say(f"  $ {shell_line(REDLIST_NODE.name, serve_argv(self.data))} &")
        self.node = NodeProcess.start(self.data, self.root / "node.log")
        self.say(f"    {self.node.banner}")
        self.say(
            f"  The node runs in the background (process {self.node.pid}, its log lines in "
            f"{self.node.output}); port 0 let the system pick a free port."
        )

    def register(self) -> None:
        self.step(
            3,
            "The admin registers the staff keys; the village's rule catalogue goes in with the "
            "council's approval.",
        )
        known_logs = self.config / "redlist" / KNOWN_LOGS_NAME
        self.say(
            "  The first command to the node names the town's log key (the node's log.pub); "
            "the staff tools check every answer of the node against it, and remember it for "
            f"this node, as ssh does a host key (here in {known_logs}: the demo points "
            "XDG_CONFIG_HOME there):"
        )
        for number, staff in enumerate(story.STAFF[1:]):
            first = ["--log-key", self.log_key] if number == 0 else []
            argv = [
                "key",
                "add",
                "--pub",
                f"{self.key(staff)}.pub",
                "--name",
                staff.name,
                "--roles",
                ",".join(staff.roles),
                *self.signed(story.ADMIN),
                *first,
            ]
            self.console.run(REDLIST, argv, show=Show.ALL if number == 0 else Show.OUTPUT)
            if number == 0:
                self.say(
                    "  While the log is being set up (no rule yet) the admin registers keys "
                    "alone. The other keys the same way:"
                )
        catalogue = self.root / "catalogue.csv"
        catalogue.write_text(story.catalogue_csv(story.RULES), encoding="utf-8")
        self.say("")
        self.say(f"  The catalogue the village voted, saved from a spreadsheet as {catalogue}:")
        for rule in story.RULES:
            council = "  (needs council approval)" if rule.council else ""
            if rule.max_qty is not None:
                council += f"  (at most {rule.max_qty} per award)"
            if rule.max_per_month is not None:
                council += f"  (at most {rule.max_per_month} a month per resident)"
            self.say(f"    {rule.code:<12} {rule.points:+4}  {rule.title}{council}")
        argv = ["rules", "load", "--csv", str(catalogue)]
        self.say(
            "  From the first rule on, the catalogue and the staff list change only with the "
            "town's governance quorum (docs/format.md): a rule needs the admin and two council "
            "members, a key two admins or the admin and two council members. The admin's "
            "signature alone is refused:"
        )
        self.console.run(REDLIST, [*argv, *self.signed(story.ADMIN)], expect=1)
        self.say("  With two council members as cosigners the catalogue is loaded:")
        self.console.run(REDLIST, [*argv, *self.signed(story.ADMIN, *story.COUNCIL[:2])])
        self.say(
            "  A second admin key, so that losing one never locks the town out; a key change "
            "now needs the council's approval too:"
        )
        deputy = story.DEPUTY
        self.console.run(REDLIST, ["keygen", "--out", self.key(deputy), "--name", deputy.name])
        argv = ["key", "add", "--pub", f"{self.key(deputy)}.pub", "--name", deputy.name]
        argv += ["--roles", "admin", *self.signed(story.ADMIN, *story.COUNCIL[:2])]
        self.console.run(REDLIST, argv)
        self.say("  Anyone can read the catalogue and the staff list the node keeps:")
        self.console.run(REDLIST, ["rules", "list", "--node", self.address])
        self.console.run(REDLIST, ["keys", "list", "--node", self.address])

    def import_register(self) -> None:
        self.step(
            4,
            "The town office imports its register of residents, kept beside the log (never "
            "in it): from now on the staff tools check every account against it.",
        )
        register = self.root / "register.csv"
        register.write_text(story.register_csv(), encoding="utf-8")
        self.say(
            f"  The register, saved from Excel ({register}; names, villages, households and "
            "each resident's consent to publication):"
        )
        argv = ["residents", "import", "--data", str(self.data), "--csv", str(register)]
        self.console.run(REDLIST_NODE, argv)
        self.say(
            "  The node never serves the register: staff may only ask whether it holds the "
            "accounts of a sheet (a signed question, docs/adr/0038), and names stay off the log."
        )

    def submit_month(self) -> list[story.SheetRow]:
        self.step(
            5,
            f"Grid workers submit last month's spreadsheets: awards and deductions for "
            f"{story.RESIDENTS} residents.",
        )
        rows = story.month_rows()
        submitted: list[list[str]] = []
        for side, worker in (("east", story.GRID_EAST), ("west", story.GRID_WEST)):
            sheet = [row for row in rows if story.grid_worker(row.account) == worker]
            path = self.root / f"awards-{side}.csv"
            submitted.append(["submit", "--csv", str(path), *self.signed(worker)])
            self.say(
                f"  {worker.short_name}, grid worker for the {side} of the village "
                f"({len(sheet)} rows in {path}):"
            )
            if story.MISTYPED_ACCOUNT in {row.account for row in sheet}:
                row = self.refuse_mistyped(sheet, path, submitted[-1])
                self.say(f"  Row {row} corrected and the sheet saved again, it goes in:")
            path.write_text(story.sheet_csv(sheet, story.town_today()), encoding="utf-8")
            self.console.run(REDLIST, submitted[-1])
        deductions = sum(1 for row in rows if row.points < 0)
        self.say(
            f"  {len(rows)} rows: {len(rows) - deductions} awards and {deductions} deductions."
        )
        self.say("  Submitting a file again (after a crash, say) never records a row twice:")
        self.console.run(REDLIST, submitted[0], show=Show.OUTPUT)
        return rows

    def refuse_mistyped(self, sheet: list[story.SheetRow], path: Path, argv: list[str]) -> int:
        """``sheet`` saved to ``path`` with one account mistyped, and submitted by ``argv``:
        refused whole, naming the row and the account, with the log unchanged. The row."""
        slipped, row = story.mistyped(sheet)
        path.write_text(story.sheet_csv(slipped, story.town_today()), encoding="utf-8")
        self.say(
            f"  The first save has {story.MISTYPED_AS} for {story.MISTYPED_ACCOUNT} in row "
            f"{row}, two digits swapped. The whole sheet is checked, every account against "
            "the register, before anything is sent, and refused:"
        )
        before = self.tree_size()
        self.console.run(REDLIST, argv, expect=2)
        if self.tree_size() != before:
            raise RedlistError(f"the refused sheet {path.name} changed the log")
        self.say(f"  Nothing was sent: the log still holds {before} entries.")
        return row

    def tree_size(self) -> int:
        """The size of the node's latest checkpoint, verified with the town's log key."""
        with LedgerClient(self.address, log_key=logkeyfile.read_log_key(self.log_key)) as client:
            return client.latest().size

    def council_awards(self) -> None:
        self.step(6, "The council meets: awards under council rules need two council signatures.")
        first = story.COUNCIL_AWARDS[0]
        argv = ["award", "--account", first.account, "--rule", first.rule]
        self.say(f"  With one signature the node refuses ({first.signers[0].short_name} alone):")
        self.console.run(REDLIST, [*argv, *self.signed(first.signers[0])], expect=1)
        self.say("  With a second council member as cosigner it is recorded:")
        for award in story.COUNCIL_AWARDS:
            argv = ["award", "--account", award.account, "--rule", award.rule]
            argv += ["--note", award.note]
            if award.days_ago:  # else today, the command's default
                deed = story.town_today() - timedelta(days=award.days_ago)
                argv += ["--date", deed.isoformat()]
            self.console.run(REDLIST, [*argv, *self.signed(*award.signers)])

    def declaration(self) -> None:
        self.step(
            7,
            "A resident declares a good deed; the council reviews it over two days "
            "(the review queue).",
        )
        declared = story.DECLARATION
        grid = story.grid_worker(declared.account)
        deed = story.town_today() - timedelta(days=declared.days_ago)
        self.say(f"  {grid.short_name} enters the resident's own declaration; it waits for review:")
        argv = ["propose", "--account", declared.account, "--rule", declared.rule]
        argv += ["--date", deed.isoformat(), "--note", declared.note, "--declared-by-resident"]
        proposed = self.console.run(REDLIST, [*argv, *self.signed(grid)], show=Show.ALL)
        number = proposed.split()[1].rstrip(":")
        first, second = declared.reviewers
        self.say(f"  Day 1: {first.short_name} lists what waits, reads the award and approves:")
        self.console.run(REDLIST, ["review", "list", "--node", self.address], show=Show.ALL)
        approve = ["approve", number, "--node", self.address, "--signer"]
        self.console.run(REDLIST, [*approve, self.key(first)], show=Show.ALL)
        self.say(f"  Day 2: {second.short_name} approves too; the quorum is met, it is recorded:")
        self.console.run(REDLIST, [*approve, self.key(second)], show=Show.ALL)
        statement = self.account_json(declared.account)
        if not any(entry.get("declared") for entry in statement["entries"]):
            raise RedlistError(f"the statement of {declared.account} shows no declaration")

    def redeem(self, rows: list[story.SheetRow]) -> None:
        self.step(8, "A resident spends points at the points supermarket (the cashier signs).")
        spendable = story.spendable_after(rows)
        richest = max(story.accounts(), key=lambda account: spendable[account])
        before = self.account_json(richest)
        price = min(story.SHOP_PRICE, before["spendable"])
        argv = ["redeem", "--account", richest, "--points", str(price), "--item", story.SHOP_ITEM]
        self.console.run(REDLIST, [*argv, *self.signed(story.CASHIER)])
        after = self.account_json(richest)
        if (after["score"], after["spendable"]) != (before["score"], before["spendable"] - price):
            raise RedlistError(f"the node's figures for {richest} after the redemption are wrong")
        self.say(
            f"  Points to spend {before['spendable']} -> {after['spendable']}; the score stays "
            f"{after['score']} (grade {after['grade']}): spending does not lower a grade."
        )

    def objection(self) -> None:
        self.step(9, "A resident objects to a deduction; the council upholds the objection.")
        before = self.account_json(story.OBJECTOR)
        target = next(
            entry["seq"]
            for entry in before["entries"]
            if entry["kind"] == "award" and entry["rule"] == story.OBJECTED_RULE
        )
        grid = story.grid_worker(story.OBJECTOR)
        self.say(f"  {grid.short_name} files the objection of {story.OBJECTOR} to entry {target}:")
        argv = ["objection", "--target", str(target), "--text", story.OBJECTION]
        self.console.run(REDLIST, [*argv, *self.signed(grid)])
        self.say("  The council checks the field register and reverses the deduction:")
        argv = ["reverse", "--target", str(target), "--reason", story.REVERSAL]
        self.console.run(REDLIST, [*argv, *self.signed(*story.COUNCIL[:2])])
        self.say("  The resident's account, as anyone may ask the node (no signing key needed):")
        self.console.run(REDLIST, ["account", story.OBJECTOR, "--node", self.address])
        self.say(
            "  Notes and items are kept by the town, off the log; staff see them by signing "
            "the request:"
        )
        self.console.run(REDLIST, ["account", story.OBJECTOR, *self.signed(grid)])
        after = self.account_json(story.OBJECTOR)
        self.say(
            f"  {story.OBJECTOR}: score {before['score']} (grade {before['grade']}) -> "
            f"{after['score']} (grade {after['grade']}). Entry {target} stays in the log, "
            "marked as reversed."
        )

    def audit(self) -> None:
        self.step(
            10,
            "An auditor checks the live node with only the town's public log key "
            "(the verifier trusts nothing the node says).",
        )
        argv = ["export", "--data", str(self.data), "--out", str(self.bundle), "--full"]
        self.say("  The town exports its whole log as a bundle, while the node keeps serving:")
        self.console.run(REDLIST_NODE, argv, show=Show.ALL)
        if self.audit_over_grpc:
            source = ["node", self.address]
            self.say("  The auditor asks the node itself, over the network:")
        else:
            source = ["bundle", str(self.bundle)]
            self.say("  The auditor checks the bundle just exported from the running node:")
        audit = [*source, "--log-key", self.log_key]
        self.console.run(REDLIST_VERIFY, audit)
        verdict = json.loads(
            self.console.run(REDLIST_VERIFY, [*audit, "--json"], show=Show.NOTHING)
        )
        grades = self.compare_with_node(verdict)
        accounts: dict[str, dict[str, Any]] = verdict["accounts"]
        counts = Counter(summary["grade"] for summary in accounts.values())
        per_grade = ", ".join(f"{grade} {counts[grade]}" for grade in grades if counts[grade])
        self.say("")
        self.say(
            f"Result: the log verifies. The verifier recomputed all {len(accounts)} residents' "
            f"scores from the {verdict['tree_size']} signed entries and agrees with the node on "
            "every one, and on the log's root hash."
        )
        self.say(f"Residents per grade: {per_grade}.")

    def compare_with_node(self, verdict: dict[str, Any]) -> list[str]:
        """Check the verifier's figures against the node's; the town's grade names, best first."""
        if verdict.get("ok") is not True:
            raise RedlistError(f"the verifier did not accept the log: {verdict.get('error')}")
        log_key = logkeyfile.read_log_key(self.log_key)
        with LedgerClient(self.address, log_key=log_key) as client:
            head = client.latest()
            grades = [grade.name for grade in client.get_genesis().config.grades]
            disagree = [
                account
                for account, summary in verdict["accounts"].items()
                if _figures(client.get_account(account)) != _figures_of(summary)
            ]
        if (head.size, head.root.hex()) != (verdict["tree_size"], verdict["root"]):
            raise RedlistError(
                f"the node's checkpoint (size {head.size}) is not the one the verifier checked "
                f"(size {verdict['tree_size']})"
            )
        if disagree:
            raise RedlistError(f"the verifier and the node disagree on {', '.join(disagree)}")
        if sorted(verdict["accounts"]) != story.accounts():
            raise RedlistError(
                f"the verifier found {len(verdict['accounts'])} accounts, not the village's "
                f"{story.RESIDENTS} residents"
            )
        return grades

    def publicity(self) -> None:
        self.step(
            11,
            "The town office previews the month's publicity for the village board, with the "
            "names of its register masked.",
        )
        month = story.town_today().strftime("%Y-%m")
        out = self.root / f"publicity-{month}"
        self.say(
            "  The month is not over yet, so the office exports a draft to check (after the "
            "month ends, the same command without --draft publishes it and starts the "
            "objection window):"
        )
        argv = ["export", "--data", str(self.data), "--out", str(out), "--month", month]
        self.console.run(REDLIST_NODE, [*argv, "--town", story.TOWN_NAME, "--draft"])
        self.publicity_files = (out / "publicity.html", out / "publicity.csv")

    def stop_node(self) -> None:
        node = self.node
        if node is None:
            raise RedlistError("the node is not running")
        self.step(12, "The town stops its node, as an operator does: SIGTERM (kill, or Ctrl-C).")
        self.say(f"  $ kill -TERM {node.pid}")
        status = node.stop()
        if status != 0:
            raise RedlistError(f"the node exited with status {status} after SIGTERM; {node.tail()}")
        self.say(
            "  The node finished the calls in flight, closed its log and exited with status 0. "
            "Start it again with the same serve command: nothing is lost."
        )


def _figures(view: RemoteAccount) -> tuple[int, int, int, str]:
    return (view.score, view.spendable, view.redeemed, view.grade)


def _figures_of(summary: dict[str, Any]) -> tuple[int, int, int, str]:
    return (summary["score"], summary["spendable"], summary["redeemed"], summary["grade"])


@contextlib.contextmanager
def _config_home(directory: Path) -> Iterator[None]:
    """``XDG_CONFIG_HOME`` set to ``directory`` for the staff commands the demo runs."""
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(directory)
    try:
        yield
    finally:
        if before is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = before
