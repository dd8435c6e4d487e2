"""The demo's second part: three towns keep each other honest (DESIGN 8).

Dongguan, whose month :class:`~redlist.demo.tour.Tour` just played, and its two
neighbours (:mod:`redlist.demo.towns`) each run a node that also witnesses the other
two towns' logs and asks them to cosign its own checkpoints. A county auditor
checks Dongguan's log under a 2-of-2 witness policy and signs attestations of its
residents' grades, which Rushan recognises for a resident who moved there. Then
Juxian shows two histories (two copies of its log, one log key), and the
witnesses catch it with signed evidence that anyone can check.

Every node is a real ``redlist-node serve`` process on loopback
(:class:`~redlist.demo.node.NodeProcess`); ports are chosen before the nodes start,
because each town names the others' addresses on its command line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redlist.demo import story, towns
from redlist.demo.console import WRAP_AT, Console, Program, Show, shell_line
from redlist.demo.node import MIRRORING, NodeProcess
from redlist.ledger import logkeyfile
from redlist.ledger.errors import NoteError, RedlistError
from redlist.ledger.logdir import LOG_PUB_NAME
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import VerifierKey
from redlist.node import cli as node_cli
from redlist.staff import cli as staff_cli
from redlist.staff.client import LedgerClient
from redlist.verifier import cli as verifier_cli

REDLIST = Program("redlist", staff_cli.main)
REDLIST_NODE = Program("redlist-node", node_cli.main)
REDLIST_VERIFY = Program("redlist-verify", verifier_cli.main)

#: How often a primary asks its witnesses (``--cosign-interval``): short, for the demo.
COSIGN_INTERVAL_S = "0.2"
#: How long the demo waits for cosignatures or evidence before it calls it a failure.
SETTLE_TIMEOUT_S = 60.0
POLL_S = 0.1


@dataclass
class Town:
    """One town's node as the federation sees it: data, address and keys."""

    name: str
    handle: str
    origin: str
    data: Path
    port: int
    witness_key: Path
    witness_vkey: str = ""
    node: NodeProcess | None = field(default=None, repr=False)
    #: Its ``redlist-node mirror`` process, holding copies of the other towns' logs.
    mirror: NodeProcess | None = field(default=None, repr=False)
    #: Where its copy of each other town's log is served: that town's handle -> port.
    mirror_ports: dict[str, int] = field(default_factory=dict)

    @property
    def mirror_key(self) -> Path:
        return self.witness_key.with_name(f"{self.handle}-mirror.pem")

    def mirror_address(self, of: Town) -> str:
        return f"127.0.0.1:{self.mirror_ports[of.handle]}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_key(self) -> str:
        return str(self.data / LOG_PUB_NAME)


class Federation:
    """Part two of the demo in ``root``, after Dongguan's month; numbered from ``first_step``."""

    def __init__(
        self,
        root: Path,
        say: Callable[[str], None],
        *,
        dongguan_data: Path,
        keys: Path,
        first_step: int,
    ) -> None:
        self.root = root
        self.say = say
        self.console = Console(say)
        self.keys = keys
        self.number = first_step
        ports = _free_ports(3)
        self.dongguan = Town(
            "Dongguan",
            "dongguan",
            story.ORIGIN,
            dongguan_data,
            ports[0],
            keys / "dongguan-witness.pem",
        )
        self.neighbours = {
            town.handle: Town(
                town.name,
                town.handle,
                town.origin,
                root / town.handle,
                port,
                keys / f"{town.handle}-witness.pem",
            )
            for town, port in zip(towns.NEIGHBOURS, ports[1:], strict=True)
        }
        self.towns = [self.dongguan, *self.neighbours.values()]
        self.fork: NodeProcess | None = None

    # -- plumbing -------------------------------------------------------------

    def step(self, text: str) -> None:
        self.number += 1
        self.say("")
        self.say(f"Step {self.number}. {text}")

    def key(self, staff: story.Staff) -> str:
        return str(self.keys / f"{staff.handle}.pem")

    def others(self, town: Town) -> list[Town]:
        return [other for other in self.towns if other is not town]

    def serve_argv(
        self, town: Town, data: Path | None = None, port: int | None = None
    ) -> list[str]:
        """``redlist-node serve`` for ``town``: witness for the others, asking them to cosign."""
        argv = ["serve", "--data", str(data or town.data), "--listen"]
        argv.append(f"127.0.0.1:{port or town.port}")
        argv += ["--witness-key", str(town.witness_key)]
        for other in self.others(town):
            argv += ["--witness-for", other.log_key]
        for other in self.others(town):
            argv += ["--ask-witness", other.address, other.witness_vkey]
        return [*argv, "--cosign-interval", COSIGN_INTERVAL_S]

    def start(self, town: Town, *, show: bool = False) -> None:
        argv = self.serve_argv(town)
        if show:
            self.say(f"  $ {_wrapped(REDLIST_NODE.name, argv)} &")
        town.node = NodeProcess.start(town.data, self.root / f"{town.handle}.log", argv)
        if show:
            self.say(f"    {town.node.banner}")

    def signed(self, town: Town, signer: story.Staff) -> list[str]:
        return ["--node", town.address, "--signer", self.key(signer)]

    def processes(self) -> list[NodeProcess]:
        """Every node and mirror process this part started, mirrors first."""
        started = [self.fork, *(town.mirror for town in self.towns)]
        return [node for node in (*started, *(town.node for town in self.towns)) if node]

    def close(self) -> None:
        """Stop every node this part started (after a failure too)."""
        for node in self.processes():
            node.close()

    # -- the story ------------------------------------------------------------

    def run(self) -> None:
        try:
            self.neighbours_start()
            self.witnesses()
            self.mirrors()
            self.neighbours_record()
            self.policy()
            self.recognition()
            self.split_view()
            self.stop()
        finally:
            self.close()

    def neighbours_start(self) -> None:
        self.step("Two neighbouring towns, Rushan and Juxian, run credit-point logs of their own.")
        for neighbour in towns.NEIGHBOURS:
            for staff in (neighbour.admin, neighbour.grid, *neighbour.council):
                argv = ["keygen", "--out", self.key(staff), "--name", staff.name]
                self.console.run(REDLIST, argv, show=Show.NOTHING)
            town = self.neighbours[neighbour.handle]
            argv = ["init", "--data", str(town.data), "--origin", town.origin]
            argv += ["--admin-key", self.key(neighbour.admin)]
            self.console.run(
                REDLIST_NODE, argv, show=Show.ALL if town.handle == "rushan" else Show.NOTHING
            )
        self.say("  Juxian does the same. Each town gives the other two its log key (log.pub).")

    def witnesses(self) -> None:
        self.step(
            "Each town makes a witness key and serves as witness for the other two towns, "
            "asking them in turn to cosign its own checkpoints."
        )
        for town in self.towns:
            argv = ["keygen", "--out", str(town.witness_key), "--name", f"{town.handle}-witness"]
            out = self.console.run(
                REDLIST, argv, show=Show.ALL if town is self.dongguan else Show.NOTHING
            )
            town.witness_vkey = _printed(out, "as a witness or mirror")
        self.say(
            "  The witness key string (printed by keygen) is what the other towns list; "
            "Rushan and Juxian do the same. Dongguan restarts its node as a witness:"
        )
        for town in self.towns:
            self.start(town, show=town is self.dongguan)
        self.say(
            "  Rushan and Juxian start theirs the same way. A witness cosigns a town's "
            "checkpoint only if it extends the last one it cosigned for that town."
        )

    def mirrors(self) -> None:
        self.step(
            "Each town also keeps a copy of the other two towns' logs (a mirror), checking "
            "every entry as an auditor does: a town's log survives its node."
        )
        for town in self.towns:
            argv = ["keygen", "--out", str(town.mirror_key), "--name", f"{town.handle}-mirror"]
            self.console.run(REDLIST, argv, show=Show.NOTHING)
            others = self.others(town)
            config = self.root / f"{town.handle}-mirrors.toml"
            copies = self.root / f"{town.handle}-mirrors"
            town.mirror_ports = dict(
                zip((other.handle for other in others), _free_ports(len(others)), strict=True)
            )
            lines = [
                f'mirror_key = "{_beside(config, town.mirror_key)}"',
                f'witness_key = "{_beside(config, town.witness_key)}"',
            ]
            for other in others:
                lines += [
                    "",
                    "[[mirror]]",
                    f'data = "{_beside(config, copies / other.handle)}"',
                    f'from = "{other.address}"',
                    f'log_key = "{_beside(config, Path(other.log_key))}"',
                    f'listen = "{town.mirror_address(other)}"',
                ]
            config.write_text("\n".join(lines) + "\n", encoding="utf-8")
            argv = ["mirror", "--config", str(config)]
            if town is self.dongguan:
                self.say(f"  Dongguan's mirrors, in one file ({config}):")
                for line in lines:
                    self.say(f"    {line}".rstrip())
                self.say(f"  $ {shell_line(REDLIST_NODE.name, argv)} &")
            town.mirror = NodeProcess.start(
                self.root / f"{town.handle}-mirrors",
                self.root / f"{town.handle}-mirror.log",
                argv,
                banner=MIRRORING,
                banners=len(others),
            )
            if town is self.dongguan:
                for line in town.mirror.output.read_text(encoding="utf-8").splitlines():
                    if MIRRORING.match(line):
                        self.say(f"    {line}")
        self.say(
            "  Rushan and Juxian run theirs the same way. A mirror cosigns a checkpoint "
            "(with its own mirror key) once it holds every entry up to it."
        )

    def neighbours_record(self) -> None:
        self.step(
            "Rushan and Juxian register their grid workers and councils, load their catalogues "
            "with their councils' approval and record a month's awards."
        )
        catalogue = self.root / "catalogue.csv"
        for neighbour in towns.NEIGHBOURS:
            town = self.neighbours[neighbour.handle]
            for number, staff in enumerate((neighbour.grid, *neighbour.council)):
                argv = ["key", "add", "--pub", f"{self.key(staff)}.pub"]
                argv += ["--name", staff.name, "--roles", ",".join(staff.roles)]
                argv += self.signed(town, neighbour.admin)
                if number == 0:
                    argv += ["--log-key", town.log_key]
                self.console.run(REDLIST, argv, show=Show.NOTHING)
            # The catalogue is the council's decision: the admin and the council's quorum.
            argv = ["rules", "load", "--csv", str(catalogue), *self.signed(town, neighbour.admin)]
            for member in neighbour.council:
                argv += ["--cosigner", self.key(member)]
            self.console.run(
                REDLIST, argv, show=Show.ALL if town.handle == "rushan" else Show.NOTHING
            )
            sheet = self.root / f"awards-{town.handle}.csv"
            sheet.write_text(
                story.sheet_csv(towns.sheet(neighbour), story.town_today()), encoding="utf-8"
            )
            argv = ["submit", "--csv", str(sheet), *self.signed(town, neighbour.grid)]
            self.console.run(REDLIST, argv, show=Show.OUTPUT)
        for town in self.towns:
            self.await_cosigned(town)
            for other in self.others(town):
                self.await_cosigned(town, other.mirror_address(town))
        self.say(
            "  Every town's latest checkpoint now carries the cosignatures of both its "
            "neighbours' witnesses:"
        )
        for town in self.towns:
            with LedgerClient(
                town.address, log_key=logkeyfile.read_log_key(town.log_key)
            ) as client:
                head = client.latest()
            names = ", ".join(other.witness_vkey.split("+")[0] for other in self.others(town))
            self.say(f"    {town.name:<9} size {head.size:>4}, cosigned by {names}")

    def policy(self) -> None:
        self.step(
            "The county auditor checks Dongguan's log and requires both neighbours' "
            "cosignatures (a 2-of-2 witness policy)."
        )
        path = self.root / "county-policy.txt"
        lines = [f"log {logkeyfile.read_log_key(self.dongguan.log_key).encode()}"]
        neighbours = list(self.neighbours.values())
        lines += [f"witness {town.handle} {town.witness_vkey}" for town in neighbours]
        lines += [f"group neighbours 2 {' '.join(town.handle for town in neighbours)}"]
        lines += ["quorum neighbours"]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.say(f"  The policy, in C2SP tlog-policy form ({path}):")
        for line in lines:
            self.say(f"    {_short(line)}")
        argv = ["node", self.dongguan.address, "--log-key", self.dongguan.log_key]
        self.console.run(REDLIST_VERIFY, [*argv, "--policy", str(path)])
        rushan = self.neighbours[towns.RUSHAN.handle]
        self.say(
            "  Were Dongguan's node gone, the same check runs on Rushan's copy, which serves "
            "Dongguan's checkpoint with its witnesses' cosignatures and Rushan's mirror's own:"
        )
        argv = ["node", rushan.mirror_address(self.dongguan), "--log-key", self.dongguan.log_key]
        out = self.console.run(REDLIST_VERIFY, [*argv, "--policy", str(path)], show=Show.NOTHING)
        self.say(f"  $ {_wrapped(REDLIST_VERIFY.name, [*argv, '--policy', str(path)])}")
        for line in out.splitlines():
            if line.startswith(("Verified", "VERIFIED")) or "witness policy" in line:
                self.say(f"    {line.strip()}")

    def recognition(self) -> None:
        self.step(
            "A Dongguan resident moves to Rushan. The county auditor signs attestations of "
            "Dongguan's grades; Rushan's clerk recognises the resident's grade."
        )
        auditor = self.keys / f"{towns.AUDITOR_NAME}.pem"
        out = self.console.run(
            REDLIST,
            ["keygen", "--out", str(auditor), "--name", towns.AUDITOR_NAME],
            show=Show.NOTHING,
        )
        auditor_vkey = _printed(out, "as an auditor")
        attestations = self.root / "attestations"
        argv = ["node", self.dongguan.address, "--log-key", self.dongguan.log_key]
        argv += ["--policy", str(self.root / "county-policy.txt")]
        argv += ["--attest-key", str(auditor), "--attest-out", str(attestations)]
        self.say(f"  $ {_wrapped(REDLIST_VERIFY.name, argv)}")
        out = self.console.run(REDLIST_VERIFY, argv, show=Show.NOTHING)
        lines = out.splitlines()
        self.say("    ... (the same audit as above, then:)")
        for line in lines[next(i for i, line in enumerate(lines) if "attestation" in line) :]:
            self.say(f"    {line.strip()}")
        mover = story.COUNCIL_AWARDS[0].account
        attestation = attestations / f"{mover}.attestation.json"
        self.say(f"  {mover} brings {attestation.name} to Rushan. Anyone can check it offline:")
        self.console.run(
            REDLIST_VERIFY,
            [
                "attestation",
                str(attestation),
                "--auditor-key",
                auditor_vkey,
                "--log-key",
                self.dongguan.log_key,
            ],
        )
        rushan = self.neighbours[towns.RUSHAN.handle]
        config = self.root / "rushan.toml"
        grades = '{ AAA = "AAA", AA = "AA", A = "A", B = "B", C = "C", D = "D" }'
        config.write_text(
            "[recognition]\n"
            f'auditors = ["{auditor_vkey}"]\n'
            f'[recognition.towns."{self.dongguan.origin}"]\n'
            f'log_key = "{_beside(config, Path(self.dongguan.log_key))}"\n'
            f"grades = {grades}\n",
            encoding="utf-8",
        )
        self.say(
            f"  Rushan's config ({config}) lists the auditors it trusts and how Dongguan's "
            "grades map onto its own; its clerk records the resident under a Rushan account:"
        )
        argv = ["recognise", "--data", str(rushan.data), "--config", str(config)]
        self.console.run(REDLIST_NODE, [*argv, "--as", towns.NEWCOMER_ACCOUNT, str(attestation)])
        self.console.run(REDLIST, ["account", towns.NEWCOMER_ACCOUNT, "--node", rushan.address])

    def split_view(self) -> None:
        juxian = self.neighbours[towns.JUXIAN.handle]
        self.step(
            "Juxian tries to show two histories: a copy of its log, signed with the same "
            "log key, where a deduction never happened and a favourite got 20 points."
        )
        node = juxian.node
        if node is None:
            raise RedlistError("Juxian's node is not running")
        node.stop()
        copy = self.root / "juxian-copy"
        shutil.copytree(juxian.data, copy)
        self.say(f"  The operator copies the log to {copy} and runs both copies.")
        self.start(juxian)
        honest, forged = towns.fork_rows(towns.JUXIAN)
        self.record(juxian, juxian.address, honest)
        self.await_cosigned(juxian)
        fork_port = _free_ports(1)[0]
        argv = self.serve_argv(juxian, copy, fork_port)
        self.fork = NodeProcess.start(copy, self.root / "juxian-copy.log", argv)
        self.record(juxian, f"127.0.0.1:{fork_port}", forged)
        self.say(
            "  The copy asks the same witnesses to cosign its checkpoint. They refuse: it "
            "does not extend the checkpoint they cosigned. Each keeps both signed "
            "checkpoints as evidence and raises an alarm:"
        )
        evidence = self.await_evidence(self.dongguan)
        argv = ["alarms", "--data", str(self.dongguan.data), "--witness-for", juxian.log_key]
        self.console.run(REDLIST_NODE, argv, expect=1)
        self.say("  Anyone — the county, another town, a court — checks the evidence offline:")
        argv = ["evidence", str(evidence), "--log-key", juxian.log_key]
        self.console.run(REDLIST_VERIFY, argv, expect=1)

    def stop(self) -> None:
        self.step("The towns stop their nodes and mirrors (SIGTERM).")
        for node in self.processes():
            if node.stop() != 0:
                raise RedlistError(f"a node exited with an error after SIGTERM; {node.tail()}")
        self.say("  All nodes and mirrors exited with status 0.")

    # -- waiting --------------------------------------------------------------

    def record(self, town: Town, address: str, rows: Sequence[story.SheetRow]) -> None:
        neighbour = next(n for n in towns.NEIGHBOURS if n.handle == town.handle)
        sheet = self.root / f"awards-{town.handle}-{address.rsplit(':', 1)[1]}.csv"
        sheet.write_text(story.sheet_csv(rows, story.town_today()), encoding="utf-8")
        argv = ["submit", "--csv", str(sheet), "--node", address]
        argv += ["--signer", self.key(neighbour.grid), "--log-key", town.log_key]
        self.console.run(REDLIST, argv, show=Show.NOTHING)

    def await_cosigned(self, town: Town, address: str | None = None) -> None:
        """Wait until ``town``'s latest checkpoint carries both other towns' cosignatures.

        ``address``: ask a mirror of ``town``'s log there instead of ``town``'s node; its
        checkpoint must then also be the node's latest.
        """
        witnesses = [VerifierKey.parse(other.witness_vkey) for other in self.others(town)]
        log_key = logkeyfile.read_log_key(town.log_key)
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        with LedgerClient(address or town.address, log_key=log_key) as client:
            while time.monotonic() < deadline:
                head = client.latest()
                try:
                    for witness in witnesses:
                        verify_cosignature(head, witness)
                except NoteError:
                    time.sleep(POLL_S)
                    continue
                return
        raise RedlistError(
            f"{town.name}'s checkpoint at {address or town.address} was not cosigned by "
            "both witnesses within "
            f"{SETTLE_TIMEOUT_S:.0f} s; see {self.root}/*.log"
        )

    def await_evidence(self, witness: Town) -> Path:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            found = sorted((witness.data / "evidence").glob("*/*.txt"))
            if found:
                return found[0]
            time.sleep(POLL_S)
        raise RedlistError(
            f"{witness.name}'s witness kept no evidence of the split view within "
            f"{SETTLE_TIMEOUT_S:.0f} s; see {self.root}/*.log"
        )


def _beside(config: Path, path: Path) -> str:
    """``path`` as a TOML file at ``config`` names it: relative to the file's directory."""
    return os.path.relpath(path, config.parent)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (a node names the others' before they start)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _printed(out: str, label: str) -> str:
    for line in out.splitlines():
        if line.startswith(f"{label}:"):
            return line.split(":", 1)[1].strip()
    raise RedlistError(f"'{label}' missing from the output: {out!r}")


def _short(line: str) -> str:
    """A policy line with its long base64 key cut, for reading."""
    return line if len(line) <= 100 else line[:97] + "..."


def _wrapped(program: str, argv: Sequence[str]) -> str:
    """A long command continued (`` \\``) between its options, as a person writes it."""
    chunks: list[list[str]] = [[program]]
    for arg in argv:
        if arg.startswith("--"):
            chunks.append([])
        chunks[-1].append(arg)
    lines: list[str] = []
    for chunk in (shlex.join(chunk) for chunk in chunks):
        if lines and len(lines[-1]) + 1 + len(chunk) <= WRAP_AT:
            lines[-1] += " " + chunk
        else:
            lines.append(chunk)
    return " \\\n      ".join(lines)
