"""``redlist-verify bundle`` starts without what only other commands use (ADR 0041):
gRPC (only ``node`` talks to a node), ``cryptography`` (only staff PEM key files
need it), rich (only a terminal gets a bar or a table) and multiprocessing (only
``bundles`` starts a process pool); nor does it load what only some runs of it need:
the state file (``--state``), the texts (``--texts``), the publicity check
(``--publicity``) and the explanation of a failure. An auditor's run is timed from
start to exit, so its imports count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.verifier.test_failure_reports import GOLDEN, golden_with_a_flipped_signature

from redlist.proto.client import DEFAULT_TIMEOUT_S
from redlist.verifier import cli
from redlist.verifier.nodeaccounts import DEFAULT_ACCOUNT_BOUND

_PROBE = """
import json, sys
from redlist.verifier.cli import main
status = main(sys.argv[1:])
loaded = sorted(sys.modules)
sys.stderr.write("\\nLOADED " + json.dumps(loaded) + "\\n")
sys.exit(status)
"""


def _loaded_by(*arguments: str) -> tuple[int, set[str]]:
    finished = subprocess.run(
        [sys.executable, "-c", _PROBE, *arguments], capture_output=True, text=True, check=False
    )
    line = finished.stderr.rsplit("LOADED ", 1)[1]
    modules = set(json.loads(line))
    return finished.returncode, modules | {name.split(".")[0] for name in modules}


def test_a_bundle_audit_loads_only_what_it_uses() -> None:
    status, loaded = _loaded_by(
        "bundle", str(GOLDEN / "full"), "--log-key", str(GOLDEN / "log.pub"), "--json"
    )
    assert status == cli.EXIT_VERIFIED
    assert "nacl" in loaded  # the probe sees what the audit imported
    assert not loaded & {"grpc", "cryptography", "rich", "multiprocessing"}
    assert not loaded & {
        "redlist.verifier.statefile",
        "redlist.verifier.texts",
        "redlist.verifier.publicitycheck",
        "redlist.verifier.explain",
    }


def test_a_bundle_audit_with_a_state_file_loads_it(tmp_path: Path) -> None:
    state = tmp_path / "town.state"
    status, loaded = _loaded_by(
        "bundle",
        str(GOLDEN / "full"),
        "--log-key",
        str(GOLDEN / "log.pub"),
        "--state",
        str(state),
        "--json",
    )
    assert status == cli.EXIT_VERIFIED
    assert "redlist.verifier.statefile" in loaded
    assert state.is_file()


def test_a_failed_audit_loads_its_explanation(tmp_path: Path) -> None:
    bundle, _ = golden_with_a_flipped_signature(tmp_path)
    status, loaded = _loaded_by(
        "bundle", str(bundle), "--log-key", str(GOLDEN / "log.pub"), "--json"
    )
    assert status == cli.EXIT_FAILED
    assert "redlist.verifier.explain" in loaded


def test_the_node_command_still_loads_its_client() -> None:
    # An address nothing listens on: the command loads the client, then cannot start.
    status, loaded = _loaded_by(
        "node", "127.0.0.1:1", "--log-key", str(GOLDEN / "log.pub"), "--timeout", "1"
    )
    assert status == cli.EXIT_CANNOT_START
    assert "grpc" in loaded


def test_the_node_options_defaults_are_the_clients() -> None:
    assert cli.DEFAULT_TIMEOUT_S == DEFAULT_TIMEOUT_S
    assert cli.DEFAULT_ACCOUNT_BOUND == DEFAULT_ACCOUNT_BOUND
