"""``make demo``: one simulated month of a village's credit points, end to end.

Run as ``python -m redlist.demo [--dir DIR]`` (default ``./demo-data``, wiped first;
a directory the demo did not make is never wiped). It walks through what a town
does, printing each step in plain words:

1. seven staff members create their signing keys (``redlist keygen``);
2. the town creates its log (``redlist-node init``);
3. the admin registers the staff keys and the village's rule catalogue;
4. grid workers record last month's awards and deductions for 60 residents;
5. the village council approves the awards that need its quorum;
6. a resident spends points at the points supermarket;
7. a resident objects to a deduction and the council reverses it;
8. the town exports a bundle (``redlist-node export --full``);
9. an auditor checks it independently (``redlist-verify bundle``).

The command-line steps call the real commands' ``main(argv)`` in this process
(the same code the console scripts run; separate processes would only add
start-up time) and show their output. The entries of steps 3-7 are signed here
with the staff keys and appended with ``Log.append``, as a node does on
``Submit``. The month's content comes from a fixed seed; the dates are those of
the previous calendar month, so every entry lies in the past.

Exit status: 0 when every step worked and the verifier accepted the bundle, 1
when a step failed, 2 when the demo directory cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from redlist.ledger import crypto
from redlist.ledger.entry import (
    ID_SIZE,
    Award,
    Body,
    EntrySignature,
    Envelope,
    KeyChange,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
)
from redlist.ledger.errors import RedlistError
from redlist.ledger.log import LOG_PUB_NAME, Log
from redlist.node import cli as node_cli
from redlist.node.towncfg import DEFAULT_TOWN_CONFIG
from redlist.staff import cli as staff_cli
from redlist.staff import keyfile
from redlist.verifier import cli as verifier_cli

DEFAULT_DIR = Path("demo-data")
#: Written into the demo directory; only a directory holding it is ever wiped.
MARKER = ".redlist-demo"
ORIGIN = "wendeng.example/redlist"
SEED = 20260101
RESIDENTS = 60
GRID_AWARDS = 300
BATCH_SIZE = 100
#: How long after an entry is written the (simulated) node integrates it.
ENTRY_DELAY_MS = 30 * 60 * 1000
ZONE = ZoneInfo(DEFAULT_TOWN_CONFIG.tz)


@dataclass(frozen=True)
class Staff:
    handle: str
    name: str
    roles: tuple[str, ...]


STAFF = (
    Staff("admin", "Liu Jun (town admin, Wendeng credit office)", ("admin",)),
    Staff("wang-fang", "Wang Fang (grid, Dongguan village east)", ("grid",)),
    Staff("zhang-lei", "Zhang Lei (grid, Dongguan village west)", ("grid",)),
    Staff("chen-guoqiang", "Chen Guoqiang (Dongguan village council)", ("council",)),
    Staff("zhao-min", "Zhao Min (Dongguan village council)", ("council",)),
    Staff("sun-hua", "Sun Hua (Dongguan village council)", ("council",)),
    Staff("zhou-li", "Zhou Li (cashier, Dongguan points supermarket)", ("cashier",)),
)


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    module: str
    points: int
    council: bool = False


RULES = (
    Rule("vol-cleanup", "Village clean-up day", "volunteer service", 5),
    Rule("vol-epidemic", "Epidemic prevention duty (per shift)", "volunteer service", 10),
    Rule("vol-elderly", "Visiting elderly people who live alone", "volunteer service", 3),
    Rule("fil-care", "Caring for elderly parents", "filial piety", 10),
    Rule("fil-model", "Model family of the month", "filial piety", 30, council=True),
    Rule("env-sort", "Waste sorted correctly (monthly check)", "environment", 2),
    Rule("env-tree", "Tree planting", "environment", 3),
    Rule("env-straw", "Burning straw in the open", "environment", -20),
    Rule("env-litter", "Littering", "environment", -5),
    Rule("saf-fire", "Reporting a fire hazard", "public safety", 5),
    Rule("saf-patrol", "Night patrol (per shift)", "public safety", 4),
    Rule("saf-life", "Saving a life", "public safety", 50, council=True),
    Rule("saf-drunk", "Drunk driving (police notice)", "public safety", -50, council=True),
    Rule("med-dispute", "Mediating a neighbour dispute", "mediation", 8),
    Rule("med-quarrel", "Starting a public quarrel", "mediation", -10),
)

# How often grid workers record each rule, the most shifts per award, and typical notes.
GRID_RULE_WEIGHTS = {
    "env-sort": 40,
    "vol-cleanup": 30,
    "vol-elderly": 25,
    "saf-patrol": 20,
    "fil-care": 12,
    "vol-epidemic": 10,
    "env-tree": 10,
    "env-litter": 10,
    "med-dispute": 8,
    "env-straw": 6,
    "saf-fire": 5,
    "med-quarrel": 4,
}
MAX_QTY = {"saf-patrol": 3, "vol-epidemic": 2}
NOTES = {
    "vol-cleanup": ("pond clean-up, east end", "clearing the main road after the storm"),
    "vol-elderly": ("weekly visit to Grandma Li", "helped with shopping and medicine"),
    "fil-care": ("confirmed by the village council", "took father to hospital appointments"),
    "env-straw": ("field by the north canal", "reported by the fire patrol"),
    "med-dispute": ("boundary wall between two households",),
}

# The story the demo tells around the routine awards.
OBJECTOR = "dgc-0023"
COUNCIL_AWARDS = (
    ("dgc-0012", "saf-life", "pulled a child out of the reservoir", ("chen-guoqiang", "zhao-min")),
    ("dgc-0033", "fil-model", "chosen at the council meeting", ("chen-guoqiang", "sun-hua")),
    ("dgc-0047", "saf-drunk", "notice from the county traffic police", ("zhao-min", "sun-hua")),
)


class DemoError(Exception):
    """A step failed; the message says which and why."""


class Month:
    """Timestamps (ms since 1970, UTC) of days in the previous calendar month, local time."""

    def __init__(self, now: datetime) -> None:
        first_of_this = now.astimezone(ZONE).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        self.start = (first_of_this - timedelta(days=1)).replace(day=1)
        self.days = (first_of_this - self.start).days

    @property
    def label(self) -> str:
        return self.start.strftime("%B %Y")

    def at(self, day: int, hour: int, minute: int = 0) -> int:
        moment = self.start.replace(day=day, hour=hour, minute=minute)
        return int(moment.timestamp()) * 1000


class Demo:
    def __init__(self, root: Path, out: Callable[[str], None]) -> None:
        self.root = root
        self.say = out
        self.rng = random.Random(SEED)  # noqa: S311 -- reproducible story, not secrets
        self.month = Month(datetime.now(ZONE))
        self.keys: dict[str, crypto.SigningKey] = {}
        self.data = root / "node"
        self.bundle = root / "bundle"

    # -- plumbing -------------------------------------------------------------

    def command(
        self, program: str, main: Callable[[Sequence[str]], int], argv: list[str], show: bool
    ) -> str:
        """Run a command's ``main`` in-process; show it and its output; fail on non-zero exit."""
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
        if show:
            self.say(f"  $ {shlex.join([program, *argv])}")
            for line in stdout.getvalue().splitlines():
                self.say(f"    {line}")
        if code != 0:
            raise DemoError(
                f"'{program} {argv[0]}' exited with status {code}: "
                f"{(stderr.getvalue() or stdout.getvalue()).strip()}"
            )
        return stdout.getvalue()

    def new_id(self) -> bytes:
        return self.rng.randbytes(ID_SIZE)

    def seal(self, body: Body, *handles: str) -> bytes:
        """Envelope bytes: ``body`` signed by the named staff, signatures in key id order."""
        data = body.to_bytes()
        signatures = sorted(
            (
                EntrySignature(self.keys[handle].key_id, crypto.sign_entry(self.keys[handle], data))
                for handle in handles
            ),
            key=lambda signature: signature.key_id,
        )
        return Envelope(data, tuple(signatures)).to_bytes()

    def entry(self, body: Body, *handles: str) -> tuple[int, bytes]:
        """``(author time, envelope)`` of ``body`` signed by the named staff."""
        return body.at, self.seal(body, *handles)

    def append(self, log: Log, entries: Sequence[tuple[int, bytes]]) -> tuple[int, ...]:
        """Append ``(author time, envelope)`` pairs in batches; return their seqs.

        The demo plays the node too: it integrates each batch a little after its
        latest entry was written, so the log's times fall in the simulated month.
        """
        seqs: list[int] = []
        real_now = time.time_ns() // 1_000_000
        for first in range(0, len(entries), BATCH_SIZE):
            batch = entries[first : first + BATCH_SIZE]
            node_time = min(real_now, max(at for at, _ in batch) + ENTRY_DELAY_MS)
            seqs.extend(log.append([envelope for _, envelope in batch], now_ms=node_time).seqs)
        return tuple(seqs)

    # -- the story ------------------------------------------------------------

    def run(self) -> None:
        self.say(
            f"A month of credit points in Dongguan village ({self.month.label}, simulated), "
            f"in {self.root}/"
        )
        self.make_keys()
        self.create_log()
        with Log.open(self.data) as log:
            self.register(log)
            awards = self.record_month(log)
            self.council_awards(log)
            self.redeem(log)
            self.objection(log, awards)
            self.say_grades(log)
        self.export()
        self.verify()

    def make_keys(self) -> None:
        self.say("")
        self.say("Step 1. Each staff member creates a signing key on their own computer.")
        keys_dir = self.root / "keys"
        keys_dir.mkdir()
        for number, staff in enumerate(STAFF):
            path = keys_dir / f"{staff.handle}.pem"
            argv = ["keygen", "--out", str(path), "--name", staff.name]
            self.command("redlist", staff_cli.main, argv, show=number == 0)
            self.keys[staff.handle] = keyfile.read_signing_key(path)
            if number == 0:
                self.say("  The others do the same:")
            else:
                key_id = self.keys[staff.handle].key_id.hex()
                self.say(f"    {staff.name:<48} key id {key_id}")

    def create_log(self) -> None:
        self.say("")
        self.say("Step 2. The town creates its log; the admin's key signs the first entry.")
        argv = [
            "init",
            "--data",
            str(self.data),
            "--origin",
            ORIGIN,
            "--admin-key",
            str(self.root / "keys" / "admin.pem"),
            "--genesis-at",
            str(self.month.at(1, 8)),
        ]
        self.command("redlist-node", node_cli.main, argv, show=True)

    def register(self, log: Log) -> None:
        self.say("")
        self.say("Step 3. The admin registers the staff keys and the village's rule catalogue.")
        entries = [
            self.entry(
                KeyChange(
                    ORIGIN,
                    self.new_id(),
                    self.month.at(1, 9),
                    "add",
                    self.keys[staff.handle].public,
                    staff.name,
                    staff.roles,
                ),
                "admin",
            )
            for staff in STAFF[1:]
        ]
        entries += [
            self.entry(
                RuleChange(
                    ORIGIN,
                    self.new_id(),
                    self.month.at(1, 10),
                    "set",
                    rule.code,
                    rule.title,
                    rule.module,
                    rule.points,
                    rule.council,
                ),
                "admin",
            )
            for rule in RULES
        ]
        seqs = self.append(log, entries)
        self.say(f"  {len(STAFF) - 1} staff keys registered (entries {seqs[0]}-{seqs[5]}).")
        self.say(f"  {len(RULES)} rules (entries {seqs[6]}-{seqs[-1]}):")
        for rule in RULES:
            council = "  (needs council approval)" if rule.council else ""
            self.say(f"    {rule.code:<13} {rule.points:+4}  {rule.title}{council}")

    def record_month(self, log: Log) -> dict[int, Award]:
        self.say("")
        self.say(
            f"Step 4. Grid workers record the month's awards and deductions for "
            f"{RESIDENTS} residents."
        )
        accounts = [f"dgc-{number:04d}" for number in range(1, RESIDENTS + 1)]
        activity = [self.rng.choice((1, 1, 2, 3, 5)) for _ in accounts]
        # Every household gets its monthly waste-sorting check; the rest is random.
        awards = [self.draft_award(account, "env-sort") for account in accounts]
        extra = self.rng.choices(accounts, activity, k=GRID_AWARDS - 1 - RESIDENTS)
        awards += [self.draft_award(account) for account in extra]
        # The deduction a resident objects to in step 7.
        awards.append(
            Award(
                ORIGIN,
                self.new_id(),
                self.month.at(12, 16, 30),
                OBJECTOR,
                "env-straw",
                1,
                "field by the north canal",
            )
        )
        awards.sort(key=lambda award: award.at)
        seqs = self.append(
            log, [self.entry(award, self.grid_worker(award.account)) for award in awards]
        )
        points = {rule.code: rule.points for rule in RULES}
        deductions = sum(1 for award in awards if points[award.rule] < 0)
        self.say(
            f"  {len(seqs)} entries (entries {seqs[0]}-{seqs[-1]}), signed by Wang Fang and "
            f"Zhang Lei and appended in batches of {BATCH_SIZE}: "
            f"{len(seqs) - deductions} awards, {deductions} deductions."
        )
        return dict(zip(seqs, awards, strict=True))

    def draft_award(self, account: str, code: str | None = None) -> Award:
        """A routine award for ``account`` on a working day of the month's first 25 days."""
        if code is None:
            code = self.rng.choices(list(GRID_RULE_WEIGHTS), list(GRID_RULE_WEIGHTS.values()))[0]
        day = self.rng.randint(1, 25)
        at = self.month.at(day, self.rng.randint(8, 18), self.rng.randint(0, 59))
        notes = NOTES.get(code)
        note = self.rng.choice(notes) if notes and self.rng.random() < 0.5 else None
        qty = self.rng.randint(1, MAX_QTY.get(code, 1))
        return Award(ORIGIN, self.new_id(), at, account, code, qty, note)

    def grid_worker(self, account: str) -> str:
        return "wang-fang" if int(account.split("-")[1]) <= RESIDENTS // 2 else "zhang-lei"

    def council_awards(self, log: Log) -> None:
        self.say("")
        self.say(
            "Step 5. The council meets; entries under council rules need two council signatures."
        )
        at = self.month.at(26, 15)
        titles = {rule.code: rule for rule in RULES}
        for account, code, note, signers in COUNCIL_AWARDS:
            award = Award(ORIGIN, self.new_id(), at, account, code, 1, note)
            (seq,) = self.append(log, [self.entry(award, *signers)])
            names = " and ".join(self.staff_name(handle) for handle in signers)
            rule = titles[code]
            self.say(f"  entry {seq}: {account} {rule.points:+d} '{rule.title}', signed by {names}")

    def redeem(self, log: Log) -> None:
        self.say("")
        self.say("Step 6. A resident spends points at the points supermarket.")
        accounts = [f"dgc-{number:04d}" for number in range(1, RESIDENTS + 1)]
        richest = max(accounts, key=lambda account: log.account(account).spendable)
        before = log.account(richest)
        item = "5 L peanut oil and 10 kg rice"
        spend = min(60, before.spendable)
        body = Redeem(ORIGIN, self.new_id(), self.month.at(27, 10, 15), richest, spend, item)
        (seq,) = self.append(log, [self.entry(body, "zhou-li")])
        after = log.account(richest)
        self.say(
            f"  entry {seq}: {richest} redeems {spend} points for {item} (signed by the cashier)."
        )
        self.say(
            f"  Spendable points {before.spendable} -> {after.spendable}; the score stays "
            f"{after.score} (grade {after.grade}): spending does not lower a grade."
        )

    def objection(self, log: Log, awards: dict[int, Award]) -> None:
        self.say("")
        self.say("Step 7. A resident objects to a deduction; the council upholds the objection.")
        target = next(
            seq
            for seq, award in awards.items()
            if award.account == OBJECTOR and award.rule == "env-straw"
        )
        before = log.account(OBJECTOR)
        objection = Objection(
            ORIGIN,
            self.new_id(),
            self.month.at(28, 9),
            target,
            "The burning field belongs to my neighbour; I was in Weihai that day.",
        )
        (objection_seq,) = self.append(log, [self.entry(objection, "wang-fang")])
        reverse = Reverse(
            ORIGIN,
            self.new_id(),
            self.month.at(min(30, self.month.days), 16),
            target,
            "Council checked the field register: not the resident's field. Deduction withdrawn.",
        )
        (reverse_seq,) = self.append(log, [self.entry(reverse, "chen-guoqiang", "zhao-min")])
        after = log.account(OBJECTOR)
        self.say(
            f"  entry {objection_seq}: objection to entry {target} (-20, burning straw), filed "
            "by Wang Fang for the resident."
        )
        self.say(
            f"  entry {reverse_seq}: the council reverses entry {target} "
            "(signed by Chen Guoqiang and Zhao Min)."
        )
        self.say(
            f"  {OBJECTOR}: score {before.score} (grade {before.grade}) -> {after.score} "
            f"(grade {after.grade}). Entry {target} stays in the log, marked as reversed."
        )

    def say_grades(self, log: Log) -> None:
        config = log.config()
        counts = Counter(
            log.account(f"dgc-{number:04d}").grade for number in range(1, RESIDENTS + 1)
        )
        grades = ", ".join(
            f"{grade.name} {counts[grade.name]}" for grade in config.grades if counts[grade.name]
        )
        self.say("")
        self.say(f"The log now holds {log.size} entries. Residents per grade: {grades}.")

    def export(self) -> None:
        self.say("")
        self.say("Step 8. The town exports the whole log as a bundle for auditors.")
        argv = ["export", "--data", str(self.data), "--out", str(self.bundle), "--full"]
        self.command("redlist-node", node_cli.main, argv, show=True)

    def verify(self) -> None:
        self.say("")
        self.say(
            "Step 9. An auditor checks the bundle with only the town's public log key "
            "(it never trusts the node):"
        )
        log_key = str(self.data / LOG_PUB_NAME)
        argv = ["bundle", str(self.bundle), "--log-key", log_key, "--account", OBJECTOR]
        self.command("redlist-verify", verifier_cli.main, argv, show=True)
        verdict = json.loads(
            self.command("redlist-verify", verifier_cli.main, [*argv[:4], "--json"], show=False)
        )
        with Log.open(self.data, readonly=True) as log:
            disagree = [
                account
                for account, summary in verdict["accounts"].items()
                if summary["score"] != log.account(account).score
                or summary["spendable"] != log.account(account).spendable
            ]
        if not verdict["ok"] or disagree:
            raise DemoError(f"the verifier and the node disagree on {', '.join(disagree)}")
        self.say("")
        self.say(
            f"Result: the bundle verifies. The verifier recomputed all {len(verdict['accounts'])} "
            "residents' scores from the signed entries and agrees with the node on every one."
        )
        self.say("Check it again yourself:")
        self.say(f"  redlist-verify bundle {self.bundle} --log-key {log_key}")

    def staff_name(self, handle: str) -> str:
        name = next(staff.name for staff in STAFF if staff.handle == handle)
        return name.split(" (")[0]


def prepare_directory(root: Path) -> None:
    """Empty ``root`` for a new run, refusing a directory the demo did not make."""
    if root.exists():
        if not (root / MARKER).is_file() and (not root.is_dir() or any(root.iterdir())):
            raise DemoError(
                f"{root} exists and was not made by the demo; remove it or choose --dir"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("made by python -m redlist.demo; wiped on every run\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m redlist.demo",
        description="A simulated month of a village's credit points, from keys to audit.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"working directory, wiped first (default: {DEFAULT_DIR})",
    )
    args = parser.parse_args(argv)
    try:
        prepare_directory(args.dir)
    except (DemoError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        Demo(args.dir, print).run()
    except (DemoError, RedlistError) as error:
        message = error.diagnostics() if isinstance(error, RedlistError) else str(error)
        print(f"\nThe demo failed: {message}", file=sys.stderr)
        return 1
    print(f"\nDone in {time.monotonic() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
