"""The project's own guard rails: the layering contract, the generated code, the lint setup.

Each guard is tested in both directions: it holds for the tree as it is, and it
fails when the thing it guards against is done on a throwaway copy.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VENV_BIN = Path(sys.executable).parent
STALE_MESSAGE = "generated code is stale: run make proto"


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- layering (import-linter) ----------------------------------------------------------

CONTRACTS: dict[str, str] = {
    contract["id"]: contract["name"] for contract in PYPROJECT["tool"]["importlinter"]["contracts"]
}


def lint_imports(
    project_root: Path, package_parent: Path, *contract_ids: str
) -> subprocess.CompletedProcess[str]:
    """Run import-linter with ``project_root``'s pyproject.toml on the ``redlist``
    package found in ``package_parent``."""
    args = [str(VENV_BIN / "lint-imports"), "--no-cache"]
    for contract_id in contract_ids:
        args += ["--contract", contract_id]
    # PYTHONPATH puts a copy ahead of the editable install of the real tree;
    # COLUMNS stops the report from wrapping contract names.
    return run(args, project_root, PYTHONPATH=str(package_parent), COLUMNS="300")


def contract_status(output: str, contract_id: str) -> str | None:
    """``"KEPT"`` or ``"BROKEN"`` as reported for one contract, None if not reported."""
    # A status line reads "<name> KEPT" or "<name> BROKEN", maybe followed by a
    # remark such as "(1 ignored import)".
    pattern = re.compile(rf"{re.escape(CONTRACTS[contract_id])} (KEPT|BROKEN)( \(.*\))?")
    for line in output.splitlines():
        if match := pattern.fullmatch(line.strip()):
            return match.group(1)
    return None


#: The folders of the sibling distributions, each with its part of ``redlist`` in src/.
DISTRIBUTIONS = ("ledger", "proto", "node", "verifier", "staff", "demo")


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """Every distribution's part of the ``redlist`` namespace merged into one scratch
    copy, plus pyproject.toml, to inject violations into."""
    for folder in DISTRIBUTIONS:
        shutil.copytree(
            REPO_ROOT / folder / "src" / "redlist",
            tmp_path / "redlist",
            ignore=shutil.ignore_patterns("__pycache__"),
            dirs_exist_ok=True,
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(f"{previous}\n{line}\n", encoding="utf-8")


@dataclass(frozen=True)
class Violation:
    """An edit to the copied package that must break ``contract_id``."""

    contract_id: str
    # (path relative to the copy's root, line appended to it; the file is created if new)
    edits: tuple[tuple[str, str], ...]

    def apply(self, root: Path) -> None:
        for relative_path, line in self.edits:
            append_line(root / relative_path, line)


PURE = "redlist/ledger/errors.py"
STORE = "redlist/ledger/store.py"
NODE = "redlist/node/__init__.py"
VERIFIER = "redlist/verifier/__init__.py"
STAFF = "redlist/staff/__init__.py"
CLIENT = "redlist/proto/client.py"

VIOLATIONS: dict[str, Violation] = {
    "node imports verifier": Violation("siblings", ((NODE, "import redlist.verifier"),)),
    "node imports staff": Violation("siblings", ((NODE, "from redlist.staff import cli"),)),
    "staff imports verifier": Violation("siblings", ((STAFF, "import redlist.verifier.audit"),)),
    "verifier imports node": Violation("siblings", ((VERIFIER, "import redlist.node"),)),
    "ledger imports node": Violation("ledger-is-the-core", ((PURE, "import redlist.node"),)),
    "ledger imports verifier": Violation(
        "ledger-is-the-core", ((PURE, "from redlist import verifier"),)
    ),
    "ledger imports the client": Violation(
        "ledger-is-the-core", ((PURE, "import redlist.proto.client"),)
    ),
    "ledger imports wire code": Violation(
        "ledger-is-the-core", ((PURE, "from redlist.v1 import ledger_pb2"),)
    ),
    "store imports grpc": Violation("ledger-is-the-core", ((STORE, "import grpc"),)),
    "store imports node": Violation("ledger-is-the-core", ((STORE, "import redlist.node"),)),
    "client imports verifier": Violation(
        "proto-is-the-wire", ((CLIENT, "import redlist.verifier"),)
    ),
    "client imports lmdb": Violation("proto-is-the-wire", ((CLIENT, "import lmdb"),)),
    "pure imports lmdb": Violation("ledger-pure", ((PURE, "import lmdb"),)),
    "pure imports os": Violation("ledger-pure", ((PURE, "import os"),)),
    "pure imports time": Violation("ledger-pure", ((PURE, "from time import monotonic"),)),
    "pure imports pathlib": Violation("ledger-pure", ((PURE, "import pathlib"),)),
    "pure imports socket": Violation("ledger-pure", ((PURE, "import socket"),)),
    "pure imports subprocess": Violation("ledger-pure", ((PURE, "import subprocess"),)),
    "pure imports store": Violation("ledger-pure", ((PURE, "import redlist.ledger.store"),)),
    "pure imports log": Violation(
        "ledger-edges-above-core", ((PURE, "from redlist.ledger import log"),)
    ),
    "pure imports sigworkers": Violation(
        "ledger-edges-above-core", ((PURE, "from redlist.ledger import sigworkers"),)
    ),
    "the validator starts threads": Violation(
        "ledger-edges-above-core",
        (("redlist/ledger/validator.py", "from redlist.ledger import sigschedule"),),
    ),
    "the validator reads the clock": Violation(
        "ledger-pure", (("redlist/ledger/validator.py", "import time"),)
    ),
    "undeclared ledger module": Violation(
        "ledger-edges-above-core", (("redlist/ledger/unclassified.py", "VALUE = 1"),)
    ),
    "note keys import checkpoints": Violation(
        "note-layers",
        (("redlist/ledger/note/keys.py", "from redlist.ledger.note import checkpoint"),),
    ),
    "undeclared note module": Violation(
        "note-layers", (("redlist/ledger/note/unclassified.py", "VALUE = 1"),)
    ),
    "verifier imports lmdb": Violation("verifier-offline", ((VERIFIER, "import lmdb"),)),
    "verifier imports store": Violation(
        "verifier-offline", ((VERIFIER, "import redlist.ledger.store"),)
    ),
    "verifier imports server libraries": Violation(
        "verifier-offline", ((VERIFIER, "import prometheus_client"),)
    ),
    "log imports lmdb": Violation("store-seam", (("redlist/ledger/log.py", "import lmdb"),)),
    "a check imports the store layout": Violation(
        "store-seam", (("redlist/ledger/fullcheck.py", "from redlist.ledger import storelayout"),)
    ),
    "node imports lmdb": Violation("store-seam", ((NODE, "import lmdb"),)),
    "staff imports lmdb": Violation("staff-is-a-client", ((STAFF, "import lmdb"),)),
    "staff imports log": Violation(
        "staff-is-a-client", ((STAFF, "from redlist.ledger import log"),)
    ),
}


def test_layering_contracts_hold_for_the_tree(package_copy: Path) -> None:
    result = lint_imports(package_copy, package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract_id in CONTRACTS:
        assert contract_status(result.stdout, contract_id) == "KEPT", contract_id


def test_every_contract_has_a_violation_case() -> None:
    covered = {violation.contract_id for violation in VIOLATIONS.values()}
    assert covered == set(CONTRACTS)


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_layering_violation_is_caught(package_copy: Path, case: str) -> None:
    violation = VIOLATIONS[case]
    violation.apply(package_copy)
    result = lint_imports(package_copy, package_copy, violation.contract_id)
    assert result.returncode != 0, result.stdout
    assert contract_status(result.stdout, violation.contract_id) == "BROKEN", result.stdout


def test_storage_modules_may_use_lmdb(package_copy: Path) -> None:
    # The store's legitimate imports must not trip any contract.
    for name in ("store", "storeview", "storestate", "storelayout"):
        append_line(package_copy / f"redlist/ledger/{name}.py", "import lmdb")
    append_line(package_copy / STORE, "import redlist.ledger.errors")
    append_line(package_copy / STORE, "import redlist.ledger.storelayout")
    result = lint_imports(package_copy, package_copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_storage_packages_may_use_lmdb(package_copy: Path) -> None:
    # The same when the store grows into a package with submodules.
    ledger = package_copy / "redlist" / "ledger"
    for name in ("store",):
        (ledger / f"{name}.py").unlink(missing_ok=True)
        append_line(ledger / name / "__init__.py", "import lmdb")
        append_line(ledger / name / "environment.py", "import lmdb")
    result = lint_imports(package_copy, package_copy)
    assert result.returncode == 0, result.stdout + result.stderr


# --- generated code ----------------------------------------------------------------------


def check_fresh(committed_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(REPO_ROOT / "scripts" / "check_proto_fresh.sh")]
    if committed_dir is not None:
        args.append(str(committed_dir))
    return run(args, REPO_ROOT, VENV=str(VENV_BIN.parent))


@pytest.fixture
def stub_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "v1"
    shutil.copytree(
        REPO_ROOT / "proto" / "src" / "redlist" / "v1",
        copy,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return copy


def test_committed_stubs_are_fresh() -> None:
    result = check_fresh()
    assert result.returncode == 0, result.stdout + result.stderr


def test_freshness_check_accepts_an_exact_copy(stub_copy: Path) -> None:
    result = check_fresh(stub_copy)
    assert result.returncode == 0, result.stderr


def _edit_stub(copy: Path) -> None:
    stub = copy / "ledger_pb2.py"
    stub.write_bytes(stub.read_bytes().replace(b"DO NOT EDIT", b"DO NOT EDlT", 1))


def _delete_stub(copy: Path) -> None:
    (copy / "ledger_pb2_grpc.pyi").unlink()


def _add_leftover(copy: Path) -> None:
    (copy / "retired_pb2.py").write_text("# left behind by a removed .proto\n")


@pytest.mark.parametrize("damage", [_edit_stub, _delete_stub, _add_leftover])
def test_freshness_check_catches_stale_stubs(
    stub_copy: Path, damage: Callable[[Path], None]
) -> None:
    damage(stub_copy)
    result = check_fresh(stub_copy)
    assert result.returncode == 1
    assert STALE_MESSAGE in result.stderr


def test_freshness_check_catches_an_unregenerated_proto_edit(tmp_path: Path) -> None:
    # A scratch checkout: someone edits the .proto and forgets `make proto`.
    for name in ("scripts", "proto"):
        shutil.copytree(
            REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    proto = tmp_path / "proto" / "redlist" / "v1" / "ledger.proto"
    proto.write_text(
        proto.read_text(encoding="utf-8") + "\nmessage Unregenerated { string field = 1; }\n",
        encoding="utf-8",
    )
    venv = str(VENV_BIN.parent)

    stale = run([str(tmp_path / "scripts" / "check_proto_fresh.sh")], tmp_path, VENV=venv)
    assert stale.returncode == 1
    assert STALE_MESSAGE in stale.stderr

    regenerated = run([str(tmp_path / "scripts" / "gen_proto.sh")], tmp_path, VENV=venv)
    assert regenerated.returncode == 0, regenerated.stderr
    fresh = run([str(tmp_path / "scripts" / "check_proto_fresh.sh")], tmp_path, VENV=venv)
    assert fresh.returncode == 0, fresh.stderr


# The names DESIGN.md section 4 fixes: (service, method, request, response, streams reply).
DESIGN_METHODS = [
    ("Ledger", "Submit", "SubmitRequest", "SubmitResponse", False),
    ("Ledger", "GetCheckpoint", "GetCheckpointRequest", "GetCheckpointResponse", False),
    ("Ledger", "GetLeaves", "GetLeavesRequest", "LeafData", True),
    ("Ledger", "GetInclusionProof", "InclusionProofRequest", "Proof", False),
    ("Ledger", "GetConsistencyProof", "ConsistencyProofRequest", "Proof", False),
    ("Ledger", "GetAccount", "GetAccountRequest", "Account", False),
    ("Ledger", "Follow", "FollowRequest", "FollowEvent", True),
    ("Witness", "AddCheckpoint", "AddCheckpointRequest", "AddCheckpointResponse", False),
    ("Witness", "GetWitnessKey", "GetWitnessKeyRequest", "GetWitnessKeyResponse", False),
]

# (message, field, protobuf type name, repeated): the fields DESIGN.md section 4 names.
DESIGN_FIELDS = [
    ("SubmitRequest", "envelopes", "bytes", True),
    ("SubmitResponse", "seqs", "uint64", True),
    ("SubmitResponse", "checkpoint", "string", False),
    ("GetCheckpointResponse", "checkpoint", "string", False),
    ("GetLeavesRequest", "start", "uint64", False),
    ("GetLeavesRequest", "end", "uint64", False),
    ("LeafData", "seq", "uint64", False),
    ("LeafData", "leaf", "bytes", False),
    ("InclusionProofRequest", "seq", "uint64", False),
    ("InclusionProofRequest", "tree_size", "uint64", False),
    ("ConsistencyProofRequest", "first", "uint64", False),
    ("ConsistencyProofRequest", "second", "uint64", False),
    ("Proof", "hashes", "bytes", True),
]


def test_wire_api_keeps_the_design_names() -> None:
    from google.protobuf.descriptor import FieldDescriptor

    from redlist.v1 import ledger_pb2

    file = ledger_pb2.DESCRIPTOR
    assert file.package == "redlist.v1"
    for service, method, request, response, streams in DESIGN_METHODS:
        method_descriptor = file.services_by_name[service].methods_by_name[method]
        assert method_descriptor.input_type.name == request, method
        assert method_descriptor.output_type.name == response, method
        assert method_descriptor.server_streaming is streams, method
        assert not method_descriptor.client_streaming, method
    type_names = {
        value: name.removeprefix("TYPE_").lower()
        for name, value in vars(FieldDescriptor).items()
        if name.startswith("TYPE_")
    }
    for message, field, type_name, repeated in DESIGN_FIELDS:
        field_descriptor = file.message_types_by_name[message].fields_by_name[field]
        assert type_names[field_descriptor.type] == type_name, (message, field)
        assert field_descriptor.is_repeated is repeated, (message, field)


# --- lint configuration ------------------------------------------------------------------


def _normalised(override: dict[str, Any]) -> dict[str, Any]:
    """Config keys as mypy's option names (``no_implicit_reexport = true`` -> False)."""
    options = {}
    for key, value in override.items():
        if key.startswith("no_"):
            options[key.removeprefix("no_")] = not value
        elif key.startswith("allow_"):
            options["dis" + key] = not value
        else:
            options[key] = value
    return options


def test_strict_override_enables_everything_strict_does() -> None:
    # mypy cannot set `strict` per module; the override spells the flags out, and a
    # newer mypy adding a flag to --strict must not leave ledger/verifier less strict.
    from mypy.main import process_options
    from mypy.options import PER_MODULE_OPTIONS

    def options(*flags: str) -> Any:
        _, parsed = process_options(
            [*flags, "--config-file", os.devnull, "-c", "pass"],
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
        return parsed

    default, strict = options(), options("--strict")
    strict_per_module = {
        name: getattr(strict, name)
        for name in PER_MODULE_OPTIONS
        if getattr(strict, name, None) != getattr(default, name, None)
    }
    assert strict_per_module, "mypy's --strict no longer sets any per-module option"

    overrides = PYPROJECT["tool"]["mypy"]["overrides"]
    strict_override = next(o for o in overrides if "redlist.ledger.*" in o["module"])
    assert set(strict_override["module"]) == {
        "redlist.ledger.*",
        "redlist.proto.*",
        "redlist.verifier.*",
    }
    configured = _normalised(strict_override)
    missing = {
        name: value for name, value in strict_per_module.items() if configured.get(name) != value
    }
    assert not missing, f"add to the strict mypy override: {missing}"
