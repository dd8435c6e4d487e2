"""Each component installs on its own (docs/adr/0006).

An auditor runs ``pip install ./verifier`` and a clerk ``pip install ./staff`` in a clone:
each gets a working command with only the ``ledger`` and ``proto`` folders beside it,
and none of the node's libraries (``import lmdb`` must fail). These tests build the
wheels in fresh virtual environments, from the package index like a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.data.make_golden import GOLDEN

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_ONLY = ("lmdb", "grpc_health", "grpc_reflection", "prometheus_client", "redlist.node")


def _fresh_install(tmp_path: Path, folder: str) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO_ROOT / folder)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv / "bin"


def _importable(bin_dir: Path, module: str) -> bool:
    probe = subprocess.run(
        [str(bin_dir / "python"), "-c", f"import {module}"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


def _installed(bin_dir: Path) -> set[str]:
    listing = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {package["name"] for package in json.loads(listing.stdout)}


def test_the_verifier_installs_alone(tmp_path: Path) -> None:
    bin_dir = _fresh_install(tmp_path, "verifier")
    assert {"redlist-verifier", "redlist-ledger", "redlist-proto"} <= _installed(bin_dir)
    assert not {"redlist-node", "redlist-staff", "lmdb"} & _installed(bin_dir)
    for module in (*NODE_ONLY, "redlist.staff"):
        assert not _importable(bin_dir, module), module
    audit = subprocess.run(
        [
            str(bin_dir / "redlist-verify"),
            "bundle",
            str(GOLDEN / "full"),
            "--log-key",
            str(GOLDEN / "log.pub"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    expected = json.loads((GOLDEN / "full.verify.json").read_text(encoding="utf-8"))
    assert json.loads(audit.stdout) == expected


def test_the_staff_tools_install_alone(tmp_path: Path) -> None:
    bin_dir = _fresh_install(tmp_path, "staff")
    assert not {"redlist-node", "redlist-verifier", "lmdb"} & _installed(bin_dir)
    for module in (*NODE_ONLY, "redlist.verifier"):
        assert not _importable(bin_dir, module), module
    keygen = subprocess.run(
        [str(bin_dir / "redlist"), "keygen", "--out", str(tmp_path / "wang.pem"), "--name", "Wang"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert keygen.returncode == 0, keygen.stdout + keygen.stderr
    assert (tmp_path / "wang.pem.pub").is_file()
    # The compiled Chinese catalogue is installed with the ledger (docs/adr/0034).
    chinese = subprocess.run(
        [str(bin_dir / "redlist"), "--lang", "zh_CN", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "镇积分台账的工作人员工具" in chinese.stdout, chinese.stdout + chinese.stderr


@pytest.mark.parametrize("folder", ["ledger", "proto", "node", "verifier", "staff", "demo"])
def test_every_distribution_lives_in_the_namespace(folder: str) -> None:
    # PEP 420: no distribution may own redlist/__init__.py, or it would hide the others.
    source = REPO_ROOT / folder / "src" / "redlist"
    assert source.is_dir()
    assert not (source / "__init__.py").exists()
    assert (source / folder).is_dir()
