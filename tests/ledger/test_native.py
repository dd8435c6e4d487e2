"""The compiled core runs only while it matches its sources (docs/adr/0057)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from redlist.ledger import native

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ledger" / "src" / "redlist" / "ledger"


def _listed() -> list[str]:
    with (ROOT / "ledger" / "pyproject.toml").open("rb") as pyproject:
        modules: list[str] = tomllib.load(pyproject)["tool"]["redlist"]["native"]["modules"]
    return modules


def _imported_from(*modules: str, switch: str | None = None) -> list[str]:
    """Where a fresh interpreter imports each module from."""
    env = {key: value for key, value in os.environ.items() if key != native.ENVIRONMENT}
    if switch is not None:
        env[native.ENVIRONMENT] = switch
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n"
    code += "    print(importlib.import_module(name).__file__)\n"
    finished = subprocess.run(
        [sys.executable, "-c", code, *modules],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return finished.stdout.split()


def test_the_listed_modules_are_sources_of_the_core() -> None:
    listed = _listed()
    assert len(listed) == len(set(listed))
    for name in listed:
        assert (PACKAGE / f"{name}.py").is_file(), name
    # The package's own switch and the modules mypyc cannot compile stay interpreted.
    assert "native" not in listed and "bodies" not in listed


@pytest.mark.skipif(
    os.environ.get(native.ENVIRONMENT) == "0",
    reason="REDLIST_NATIVE=0: the sources were asked for, and make compiled nothing",
)
def test_the_programs_run_the_compiled_core_that_make_built() -> None:
    """``make`` (what CI runs) compiles the core; the programs import the compiled copy,
    every listed module, and the interpreted rest beside it."""
    root = native.native_root(str(PACKAGE))
    manifest = native.read_manifest(root)
    assert manifest is not None, "no compiled core: run `make native` (docs/adr/0057)"
    assert manifest[2] == sorted(_listed()), "the compiled core is stale: make native"
    assert native.matches(str(PACKAGE), manifest[1]), "the compiled core is stale: make native"
    # What the compiled modules import from the package is in it too, not compiled.
    assert {"bodies", "crypto", "note.keys"} <= manifest[1].keys() - set(manifest[2])
    names = ["redlist.ledger.points", "redlist.ledger.store", "redlist.ledger.bodies"]
    points, store, bodies = _imported_from(*names)
    assert points.endswith(".so") and points.startswith(root)
    assert store.endswith(".so") and store.startswith(root)
    assert bodies == str(PACKAGE / "bodies.py")


def test_redlist_native_0_runs_the_sources() -> None:
    points, validator = _imported_from(
        "redlist.ledger.points", "redlist.ledger.validator", switch="0"
    )
    assert points == str(PACKAGE / "points.py")
    assert validator == str(PACKAGE / "validator.py")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone's layout: two sources compiled, one they import (``note/keys.py``), and a
    manifest of them in build/native/<tag>."""
    package = tmp_path / "ledger" / "src" / "redlist" / "ledger"
    (package / "note").mkdir(parents=True)
    (package / "codec.py").write_text("X = 1\n")
    (package / "points.py").write_text("Y = 2\n")
    (package / "note" / "keys.py").write_text("Z: Final = 3\n")
    root = Path(native.native_root(str(package)))
    assert root == tmp_path / "build" / "native" / native.tag()
    root.mkdir(parents=True)
    lines = [native.source_line(name, str(package / f"{name}.py")) for name in ("codec", "points")]
    keys = native.source_path(str(package), "note.keys")
    lines.append(native.source_line("note.keys", keys, imported=True))
    (root / native.MANIFEST).write_text("\n".join(["mypyc test", *lines]) + "\n")
    return package


def test_a_matching_copy_is_taken(clone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.ENVIRONMENT, raising=False)
    copy = native.matching_copy(str(clone))
    assert copy == (native.native_root(str(clone)), ["codec", "points"])


def test_a_source_touched_but_unchanged_still_matches(
    clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(native.ENVIRONMENT, raising=False)
    os.utime(clone / "points.py", ns=(1, 1))  # a checkout: another time, the same bytes
    assert native.matching_copy(str(clone)) is not None


def _drop_compiled_lines(manifest: Path) -> None:
    build, *lines = manifest.read_text().splitlines()
    kept = [line for line in lines if line.endswith(" " + native.IMPORTED)]
    manifest.write_text("\n".join([build, *kept]) + "\n")


def _append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def _edit(source: Path, text: str) -> None:
    """Write ``text`` into ``source`` as an edit made later does: with a later time (the
    file system's clock may not have moved since the fixture wrote it)."""
    before = source.stat().st_mtime_ns
    source.write_text(text)
    os.utime(source, ns=(before + 10**9, before + 10**9))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: _edit(p / "points.py", "Y = 3\n"), id="same size, new bytes"),
        pytest.param(lambda p: _edit(p / "points.py", "Y = 2  \n"), id="another size"),
        pytest.param(lambda p: (p / "codec.py").unlink(), id="a source removed"),
        # mypyc copied its constant into the compiled code: it counts as much.
        pytest.param(
            lambda p: _edit(p / "note" / "keys.py", "Z: Final = 4\n"), id="an imported source"
        ),
        pytest.param(
            lambda p: (Path(native.native_root(str(p))) / native.MANIFEST).unlink(),
            id="no manifest",
        ),
        pytest.param(
            lambda p: (Path(native.native_root(str(p))) / native.MANIFEST).write_text("x\ny z\n"),
            id="a garbled manifest",
        ),
        pytest.param(
            lambda p: (Path(native.native_root(str(p))) / native.MANIFEST).write_text("mypyc\n"),
            id="a manifest of no module",
        ),
        pytest.param(
            lambda p: _drop_compiled_lines(Path(native.native_root(str(p))) / native.MANIFEST),
            id="a manifest of imported modules only",
        ),
        pytest.param(
            lambda p: _append(Path(native.native_root(str(p))) / native.MANIFEST, "a b 1 2 x\n"),
            id="a line with an unknown last word",
        ),
    ],
)
def test_anything_but_the_compiled_sources_runs_the_sources(
    clone: Path, monkeypatch: pytest.MonkeyPatch, change: object
) -> None:
    monkeypatch.delenv(native.ENVIRONMENT, raising=False)
    assert native.matching_copy(str(clone)) is not None
    change(clone)  # type: ignore[operator]
    assert native.matching_copy(str(clone)) is None


def test_the_switch_turns_a_matching_copy_off(clone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.ENVIRONMENT, "0")
    assert native.matching_copy(str(clone)) is None


def test_the_build_compiles_nothing_when_the_sources_are_asked_for() -> None:
    env = {**os.environ, native.ENVIRONMENT: "0"}
    finished = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_native.py")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "nothing compiled" in finished.stdout
