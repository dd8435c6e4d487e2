"""Attestations from the verifier: ``--attest-key/--attest-out`` after a full audit, and
``redlist-verify attestation FILE`` (DESIGN 5, 8.6)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.builders import Town, create_log
from tests.node.serving import Running, run_node
from tests.verifier.bundles import LogBuilder, standard_log
from tests.verifier.test_node import add_activity

from redlist.ledger import bundle, crypto, keyfile
from redlist.ledger.attestation import Attestation, AttestationFile, sign_attestation
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.verifier.attest import SUFFIX
from redlist.verifier.cli import main

NOW = 1_767_225_600


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def log() -> LogBuilder:
    return standard_log()


@pytest.fixture
def auditor(tmp_path: Path) -> Path:
    """A key from the same code as ``redlist keygen``, named for note signatures."""
    key = crypto.SigningKey.from_seed(b"\x07" * 32)
    return keyfile.write_key_files(tmp_path / "audit.pem", key, "county-audit").private


def auditor_signer() -> NoteSigner:
    return NoteSigner("county-audit", crypto.SigningKey.from_seed(b"\x07" * 32))


def bundle_args(log: LogBuilder, directory: Path) -> list[str]:
    log.write_bundle(directory)
    return ["bundle", str(directory), "--log-key", log.town.log_signer.verifier().encode()]


def check(capsys: pytest.CaptureFixture[str], path: Path, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "attestation", str(path), *argv)


def test_a_passed_audit_writes_one_attestation_per_account(
    log: LogBuilder, tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = bundle_args(log, tmp_path / "b")
    out_dir = tmp_path / "attested"
    status, out, err = run(
        capsys, *argv, "--attest-key", str(auditor), "--attest-out", str(out_dir), "--json"
    )
    assert status == 0, out + err
    value = json.loads(out)
    accounts = value["accounts"]
    assert sorted(path.name for path in out_dir.iterdir()) == [
        f"{account}{SUFFIX}" for account in sorted(accounts)
    ]
    written = value["attestations"]
    assert written["count"] == len(accounts)
    assert written["auditor_key"] == auditor_signer().verifier().encode()
    log_key = log.town.log_signer.verifier().encode()
    for account, figures in accounts.items():
        path = out_dir / f"{account}{SUFFIX}"
        status, out, err = check(
            capsys, path, "--auditor-key", f"{auditor}.pub", "--log-key", log_key, "--json"
        )
        assert status == 0, out + err
        result = json.loads(out)
        assert (result["account"], result["grade"], result["score"]) == (
            account,
            figures["grade"],
            figures["score"],
        )
        assert result["origin"] == log.town.origin
        assert result["tree_size"] == len(log.leaves)
        assert result["log_signature_checked"] is True
        assert 89 * 86_400 < result["expires"] - value_time(path) <= 90 * 86_400
    # The text form speaks to a clerk; the key string works as well as the .pub file.
    status, out, _ = check(
        capsys, out_dir / f"res-002{SUFFIX}", "--auditor-key", written["auditor_key"]
    )
    assert status == 0
    assert "VALID attestation" in out
    assert f"account res-002 of log {log.town.origin}" in out
    assert f"grade:     {accounts['res-002']['grade']}" in out
    assert "not checked (give --log-key)" in out
    assert "90 more days" in out


def value_time(path: Path) -> int:
    return int(path.stat().st_mtime)


def test_the_text_report_names_the_auditor_key(
    log: LogBuilder, tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = bundle_args(log, tmp_path / "b")
    status, out, _ = run(
        capsys, *argv, "--attest-key", str(auditor), "--attest-out", str(tmp_path / "a")
    )
    assert status == 0
    assert "Wrote 3 attestations, one per account" in out
    assert auditor_signer().verifier().encode() in out


def test_a_failed_audit_writes_nothing(
    log: LogBuilder, tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "b"
    argv = bundle_args(log, directory)
    leaves = directory / bundle.LEAVES_FILE
    data = bytearray(leaves.read_bytes())
    data[-3] ^= 1
    leaves.write_bytes(bytes(data))
    out_dir = tmp_path / "attested"
    status, out, _ = run(capsys, *argv, "--attest-key", str(auditor), "--attest-out", str(out_dir))
    assert status == 1, out
    assert not out_dir.exists()
    # A witness policy not met is a failed audit too.
    good = bundle_args(log, tmp_path / "good")
    witness = NoteSigner.generate("witness.example/w").cosignature_verifier().encode()
    status, _, _ = run(
        capsys,
        *good,
        "--witness",
        witness,
        "--attest-key",
        str(auditor),
        "--attest-out",
        str(out_dir),
    )
    assert status == 1
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attest-key", "MISSING"], "both --attest-key FILE and --attest-out DIR"),
        (["--attest-out", "OUT"], "both --attest-key FILE and --attest-out DIR"),
        (["--attest-key", "MISSING", "--attest-out", "OUT"], "does not exist"),
        (["--attest-key", "PUB", "--attest-out", "OUT"], "holds a public key"),
        (["--attest-key", "SPACED", "--attest-out", "OUT"], "cannot name a note key"),
        (["--attest-key", "KEY", "--attest-out", "OUT", "--attest-days", "0"], "from 1 to"),
        (["--attest-key", "KEY", "--attest-out", "NOWHERE"], "does not exist"),
        (["--attest-key", "KEY", "--attest-out", "FILE"], "is not a directory"),
        (["--attest-key", "KEY", "--attest-out", "OUT", "--structure-only"], "--structure-only"),
    ],
)
def test_unusable_attestation_options_stop_before_the_audit(
    log: LogBuilder,
    tmp_path: Path,
    auditor: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    directory = tmp_path / "b"
    argv = bundle_args(log, directory)
    # A broken bundle: had the audit started, the status would be 1.
    (directory / bundle.LEAVES_FILE).write_bytes(b"\x00broken")
    spaced = keyfile.write_key_files(
        tmp_path / "spaced.pem", crypto.SigningKey.generate(), "Liu Jun (county audit)"
    ).private
    (tmp_path / "afile").write_text("x")
    files = {
        "MISSING": str(tmp_path / "missing.pem"),
        "OUT": str(tmp_path / "out"),
        "PUB": f"{auditor}.pub",
        "SPACED": str(spaced),
        "KEY": str(auditor),
        "NOWHERE": str(tmp_path / "no" / "such" / "dir"),
        "FILE": str(tmp_path / "afile"),
    }
    status, out, err = run(capsys, *argv, *(files.get(item, item) for item in extra))
    assert status == 2, out + err
    assert message in err
    assert not (tmp_path / "out").exists()


def test_a_spaced_key_name_is_replaced_by_attest_name(
    log: LogBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spaced = keyfile.write_key_files(
        tmp_path / "spaced.pem", crypto.SigningKey.generate(), "Liu Jun (county audit)"
    ).private
    argv = bundle_args(log, tmp_path / "b")
    out_dir = tmp_path / "a"
    status, out, _ = run(
        capsys,
        *argv,
        "--attest-key",
        str(spaced),
        "--attest-name",
        "liu-jun.county",
        "--attest-out",
        str(out_dir),
        "--json",
    )
    assert status == 0
    key = json.loads(out)["attestations"]["auditor_key"]
    assert key.startswith("liu-jun.county+")
    assert check(capsys, out_dir / f"res-001{SUFFIX}", "--auditor-key", key)[0] == 0


# -- redlist-verify attestation: what makes a file invalid ------------------------------


def one_file(log: LogBuilder, tmp_path: Path, *, expires: int, signer: NoteSigner) -> Path:
    checkpoint = log.checkpoint()
    attestation = Attestation(
        log.town.origin, "res-001", 1035, "AA", checkpoint.size, checkpoint.root, expires
    )
    path = tmp_path / "one.attestation.json"
    path.write_bytes(sign_attestation(attestation, checkpoint, signer).to_bytes())
    return path


def test_an_expired_attestation_is_invalid(
    log: LogBuilder, tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = one_file(log, tmp_path, expires=NOW, signer=auditor_signer())
    status, out, _ = check(capsys, path, "--auditor-key", f"{auditor}.pub")
    assert status == 1
    assert "INVALID" in out and "check: expired" in out
    status, out, _ = check(capsys, path, "--auditor-key", f"{auditor}.pub", "--json")
    assert status == 1
    assert json.loads(out)["error"]["check"] == "expired"


def test_an_unknown_auditor_is_invalid(
    log: LogBuilder, tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = NoteSigner("county-audit", crypto.SigningKey.generate())
    path = one_file(log, tmp_path, expires=NOW * 2, signer=stranger)
    status, out, _ = check(capsys, path, "--auditor-key", f"{auditor}.pub")
    assert status == 1
    assert "check: auditor" in out and "not a trusted auditor" in out


def test_an_altered_attestation_is_invalid(
    log: LogBuilder, tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = one_file(log, tmp_path, expires=NOW * 2, signer=auditor_signer())
    path.write_bytes(path.read_bytes().replace(b"grade AA", b"grade AAA"))
    status, out, _ = check(capsys, path, "--auditor-key", f"{auditor}.pub")
    assert status == 1
    assert "check: signature" in out
    path.write_bytes(path.read_bytes().replace(b'"attestation": ', b'"attestation":'))
    status, out, _ = check(capsys, path, "--auditor-key", f"{auditor}.pub")
    assert status == 1
    assert "check: format" in out


def test_a_checkpoint_that_is_not_the_logs_is_invalid(
    log: LogBuilder, tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = one_file(log, tmp_path, expires=NOW * 2, signer=auditor_signer())
    file = AttestationFile.from_bytes(path.read_bytes())
    impostor = NoteSigner(log.town.origin, crypto.SigningKey.generate())
    signed = log.checkpoint()
    forged = sign_checkpoint(Checkpoint(log.town.origin, signed.size, signed.root), impostor)
    path.write_bytes(AttestationFile(file.attestation, forged.note).to_bytes())
    log_key = log.town.log_signer.verifier().encode()
    assert check(capsys, path, "--auditor-key", f"{auditor}.pub")[0] == 0
    status, out, _ = check(capsys, path, "--auditor-key", f"{auditor}.pub", "--log-key", log_key)
    assert status == 1
    assert "check: log-signature" in out
    smaller = log.checkpoint(len(log.leaves) - 1)
    path.write_bytes(AttestationFile(file.attestation, smaller.note).to_bytes())
    status, out, _ = check(capsys, path, "--auditor-key", f"{auditor}.pub", "--log-key", log_key)
    assert status == 1
    assert "check: checkpoint" in out and "tree size" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["FILE", "--auditor-key", "MISSING"], "neither a file nor a key string"),
        (["MISSINGFILE", "--auditor-key", "PUB"], "does not exist"),
        (["FILE", "--auditor-key", "junk+1+2"], "not a verifier key string"),
        (["FILE", "--auditor-key", "PUB", "--log-key", "junk"], "log"),
        (["FILE", "--auditor-key", "PUB", "--witness", "W"], "needs --log-key"),
        (["FILE"], "--auditor-key"),
    ],
)
def test_an_attestation_check_that_cannot_start_exits_2(
    log: LogBuilder,
    tmp_path: Path,
    auditor: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    path = one_file(log, tmp_path, expires=NOW * 2, signer=auditor_signer())
    files = {
        "FILE": str(path),
        "MISSING": str(tmp_path / "missing.pub"),
        "MISSINGFILE": str(tmp_path / "missing.json"),
        "PUB": f"{auditor}.pub",
        "W": NoteSigner.generate("w").cosignature_verifier().encode(),
    }
    status, out, err = run(capsys, "attestation", *(files.get(item, item) for item in argv))
    assert status == 2, out + err
    assert message in err


# -- a node ---------------------------------------------------------------------------


def test_a_node_audit_writes_attestations(
    tmp_path: Path, auditor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = Town.generate()
    node_log = create_log(tmp_path / "data", town, setup=True)
    add_activity(node_log, town)
    key = town.log_signer.verifier().encode()
    out_dir = tmp_path / "attested"

    async def body(running: Running) -> None:
        argv = ["node", running.node.address, "--log-key", key, "--json"]
        argv += ["--attest-key", str(auditor), "--attest-out", str(out_dir)]
        status = await asyncio.to_thread(main, argv)
        out = capsys.readouterr().out
        assert status == 0, out
        assert json.loads(out)["attestations"]["count"] == 3

    try:
        run_node(node_log, body)
    finally:
        node_log.close()
    names = sorted(path.name for path in out_dir.iterdir())
    assert names == [f"resident-{n}{SUFFIX}" for n in (1, 2, 3)]
    status, out, _ = check(
        capsys, out_dir / names[1], "--auditor-key", f"{auditor}.pub", "--log-key", key
    )
    assert status == 0, out
