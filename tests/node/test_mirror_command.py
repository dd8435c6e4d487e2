"""``redlist-node mirror`` as operators run it: subprocesses of real primaries and
mirrors, kill -9 of either, the copy checked by ``redlist-verify`` and exported."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
from tests.builders import Town, build_town_log, create_log, submit_request
from tests.node.mirroring import mirror_in_subprocess, run_cli, wait_for_size
from tests.node.serving import serve_in_subprocess

from redlist.ledger import keyfile
from redlist.ledger.bundle import CHECKPOINT_FILE
from redlist.ledger.crypto import SigningKey
from redlist.ledger.mirrorlog import MirrorLog
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import NoteSigner
from redlist.v1 import ledger_pb2_grpc

MIRROR = NoteSigner("juxian-mirror", SigningKey.generate())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_mirror_serves_a_copy_that_verifies_exports_and_carries_its_cosignature(
    tmp_path: Path,
) -> None:
    town = Town.generate()
    build_town_log(tmp_path / "primary", town)
    log_pub = tmp_path / "primary" / "log.pub"
    key_file = tmp_path / "mirror.pem"
    keyfile.write_key_files(key_file, MIRROR.key, MIRROR.name)
    with (
        serve_in_subprocess(tmp_path / "primary", output=tmp_path) as upstream,
        mirror_in_subprocess(
            "--data",
            tmp_path / "mirror",
            "--from",
            upstream,
            "--log-key",
            log_pub,
            "--listen",
            "127.0.0.1:0",
            "--mirror-key",
            key_file,
            output=tmp_path,
        ) as (_process, address),
    ):
        wait_for_size(address, 32, town.log_signer.verifier())
        audit = run_cli("redlist-verify", "node", address, "--log-key", log_pub)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        exported = run_cli(
            "redlist-node",
            "export",
            "--data",
            tmp_path / "mirror",
            "--out",
            tmp_path / "bundle",
            "--full",
        )
        assert exported.returncode == 0, exported.stderr
        assert "cosigned by: juxian-mirror" in exported.stdout
    checked = run_cli("redlist-verify", "bundle", tmp_path / "bundle", "--log-key", log_pub)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    note = (tmp_path / "bundle" / CHECKPOINT_FILE).read_text("utf-8")
    verify_cosignature(
        SignedCheckpoint(note, town.log_signer.verifier()), MIRROR.cosignature_verifier()
    )


def test_kill_9_of_the_mirror_mid_catch_up_loses_nothing_it_verified(tmp_path: Path) -> None:
    town = Town.generate()
    with create_log(tmp_path / "primary", town, setup=True) as log:
        for batch in range(150):
            awards = [town.award(f"resident-{batch}-{n}", "clean-pond") for n in range(10)]
            log.append(awards, now_ms=town.now_ms)
        size = log.size
    log_pub = tmp_path / "primary" / "log.pub"
    config = tmp_path / "mirror.toml"
    config.write_text('chunk_entries = 10\nlog_level = "info"\n')
    flags = (
        "--data",
        tmp_path / "mirror",
        "--log-key",
        log_pub,
        "--listen",
        "127.0.0.1:0",
        "--config",
        config,
    )
    with serve_in_subprocess(tmp_path / "primary", output=tmp_path) as upstream:
        with mirror_in_subprocess(*flags, "--from", upstream, output=tmp_path) as (process, _):
            logged = 0
            deadline = time.monotonic() + 60
            while logged < 200:
                sizes = re.findall(r"mirrored .* size=(\d+)", (tmp_path / "mirror.err").read_text())
                logged = max(map(int, sizes), default=0)
                assert time.monotonic() < deadline and logged < size, "too slow or too fast"
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        with MirrorLog.open(tmp_path / "mirror", town.log_signer.verifier()) as mirror:
            assert logged <= mirror.size < size  # every commit it reported is there
        with mirror_in_subprocess(*flags, "--from", upstream, output=tmp_path, name="again") as (
            _,
            address,
        ):
            wait_for_size(address, size, town.log_signer.verifier())
            audit = run_cli("redlist-verify", "node", address, "--log-key", log_pub)
            assert audit.returncode == 0, audit.stdout + audit.stderr


def test_the_mirror_backs_off_and_resumes_after_kill_9_of_the_primary(tmp_path: Path) -> None:
    town = Town.generate()
    create_log(tmp_path / "primary", town, setup=True).close()
    log_pub = tmp_path / "primary" / "log.pub"
    config = tmp_path / "mirror.toml"
    config.write_text("max_backoff = 1.0\n")
    listen = f"127.0.0.1:{free_port()}"
    primaries: list[subprocess.Popen[bytes]] = []
    with (
        serve_in_subprocess(
            tmp_path / "primary", output=tmp_path, listen=listen, started=primaries.append
        ) as upstream,
        mirror_in_subprocess(
            "--data",
            tmp_path / "mirror",
            "--from",
            upstream,
            "--log-key",
            log_pub,
            "--listen",
            "127.0.0.1:0",
            "--config",
            config,
            output=tmp_path,
        ) as (_, address),
    ):
        key = town.log_signer.verifier()
        with grpc.insecure_channel(upstream) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            answer = stub.Submit(submit_request([town.award("resident-1", "litter")]))
        wait_for_size(address, answer.seqs[0] + 1, key)
        os.kill(primaries[0].pid, signal.SIGKILL)  # mid-stream: the mirror is following it
        primaries[0].wait(timeout=20)
        deadline = time.monotonic() + 30
        while "primary not answering" not in (tmp_path / "mirror.err").read_text():
            assert time.monotonic() < deadline, (tmp_path / "mirror.err").read_text()
            time.sleep(0.05)
        restart = tmp_path / "restart"
        restart.mkdir()
        with serve_in_subprocess(tmp_path / "primary", output=restart, listen=listen):
            with grpc.insecure_channel(upstream) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                awards = [town.award(f"resident-{n}", "clean-pond") for n in range(5)]
                answer = stub.Submit(submit_request(awards))
            wait_for_size(address, answer.seqs[-1] + 1, key)
        audit = run_cli("redlist-verify", "node", address, "--log-key", log_pub)
        assert audit.returncode == 0, audit.stdout + audit.stderr


def test_several_logs_in_one_process_from_a_config_file(tmp_path: Path) -> None:
    towns = {name: Town.generate(f"{name}.example/log") for name in ("rushan", "rongcheng")}
    for name, town in towns.items():
        build_town_log(tmp_path / name, town)
    rushan, rongcheng = (tmp_path / "rushan", tmp_path / "rongcheng")
    with (
        serve_in_subprocess(rushan, output=rushan) as first,
        serve_in_subprocess(rongcheng, output=rongcheng) as second,
    ):
        config = tmp_path / "mirrors.toml"
        config.write_text(
            "".join(
                f'[[mirror]]\ndata = "copies/{name}"\nfrom = "{address}"\n'
                f'log_key = "{name}/log.pub"\nlisten = "127.0.0.1:0"\n'
                for name, address in (("rushan", first), ("rongcheng", second))
            )
        )
        with mirror_in_subprocess("--config", config, output=tmp_path):
            deadline = time.monotonic() + 30
            while True:  # one line per log, printed as each starts serving
                text = (tmp_path / "mirror.out").read_text()
                lines = re.findall(r"^mirroring log (\S+) .* on (\S+)$", text, re.M)
                if len(lines) == 2:
                    break
                assert time.monotonic() < deadline, text
                time.sleep(0.05)
            served = dict(lines)
            assert set(served) == {town.origin for town in towns.values()}
            for name, town in towns.items():
                wait_for_size(served[town.origin], 32, town.log_signer.verifier())
                audit = run_cli(
                    "redlist-verify",
                    "node",
                    served[town.origin],
                    "--log-key",
                    tmp_path / name / "log.pub",
                )
                assert audit.returncode == 0, audit.stdout + audit.stderr


def test_a_mirror_key_that_is_the_witness_key_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "town.pem"
    keyfile.write_key_files(key_file, MIRROR.key, MIRROR.name)
    town = Town.generate()
    refused = run_cli(
        "redlist-node",
        "mirror",
        "--data",
        tmp_path / "mirror",
        "--from",
        "127.0.0.1:1",
        "--log-key",
        town.log_signer.verifier().encode(),
        "--listen",
        "127.0.0.1:0",
        "--mirror-key",
        key_file,
        "--witness-key",
        key_file,
    )
    assert refused.returncode == 2, refused.stderr
    assert "is the witness key" in refused.stderr


def test_a_primary_on_another_machine_needs_the_towns_cas(tmp_path: Path) -> None:
    town = Town.generate()
    refused = run_cli(
        "redlist-node",
        "mirror",
        "--data",
        tmp_path / "mirror",
        "--from",
        "10.0.0.1:7420",
        "--log-key",
        town.log_signer.verifier().encode(),
        "--listen",
        "127.0.0.1:0",
    )
    assert refused.returncode == 2, refused.stderr
    assert "--peer-ca" in refused.stderr
    assert not (tmp_path / "mirror" / "ledger.lmdb").exists()
