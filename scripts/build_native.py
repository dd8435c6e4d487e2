"""Compile the core's hot modules with mypyc, where they run (docs/adr/0057).

Usage: python scripts/build_native.py   (from the repository root; ``make`` runs it)

The modules are those ``ledger/pyproject.toml`` lists under ``[tool.redlist.native]``.
They are compiled into ``build/native/<tag>/`` (``redlist.ledger.native``), which the
package puts before its sources only while every listed source is the one compiled.
Nothing is done when the copy there already matches the sources; otherwise the copy
is built beside it and put in its place whole, the manifest written last, so an
interrupted build leaves either the old copy or none, never half of one.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ledger" / "src" / "redlist" / "ledger"
#: ``REDLIST_NATIVE=0 make ...``: the sources are asked for, so nothing is compiled.
ASKED_FOR_SOURCES = os.environ.get("REDLIST_NATIVE") == "0"
sys.path.insert(0, str(ROOT / "ledger" / "src"))
os.environ["REDLIST_NATIVE"] = "0"  # this process reads the sources, never a copy

from redlist.ledger import native  # noqa: E402


def listed_modules() -> list[str]:
    with (ROOT / "ledger" / "pyproject.toml").open("rb") as pyproject:
        table = tomllib.load(pyproject)["tool"]["redlist"]["native"]
    modules: list[str] = table["modules"]
    return modules


def imported_modules(modules: list[str]) -> list[str]:
    """The package's modules that ``modules`` import, directly or through one another,
    and are not among them: the build reads them (``native`` says why they count)."""
    package = "redlist.ledger"
    seen, pending = set(modules), list(modules)
    while pending:
        tree = ast.parse(Path(native.source_path(str(PACKAGE), pending.pop())).read_bytes())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for name in names:
                if not name.startswith(package + "."):
                    continue
                module = name.removeprefix(package + ".")
                for candidate in (module, module + ".__init__"):  # a module, or a package
                    if candidate in seen:
                        break
                    if Path(native.source_path(str(PACKAGE), candidate)).is_file():
                        seen.add(candidate)
                        pending.append(candidate)
                        break
    return sorted(seen - set(modules))


def mypyc_version() -> str:
    from mypy.version import __version__

    return __version__


#: The manifest's layout: 2 records the modules the compiled ones import.
MANIFEST_LAYOUT = 2


def build_line() -> str:
    return f"mypyc {mypyc_version()} {native.tag()} manifest {MANIFEST_LAYOUT}"


def up_to_date(root: Path, modules: list[str]) -> bool:
    manifest = native.read_manifest(str(root))
    return (
        manifest is not None
        and manifest[0] == build_line()
        and manifest[2] == sorted(modules)
        # The imports of unchanged sources are unchanged: no need to find them again.
        and native.matches(str(PACKAGE), manifest[1])
    )


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
out, temp, group, *paths = sys.argv[1:]
sys.argv = [sys.argv[0], "build_ext", "--build-lib", out, "--build-temp", temp]
setup(
    name="redlist-ledger-native",
    packages=[],
    ext_modules=mypycify(
        ["--no-warn-unused-configs", *paths], opt_level="3", group_name=group, target_dir=temp
    ),
)
"""


def build(root: Path, modules: list[str]) -> None:
    lines = [native.source_line(name, native.source_path(str(PACKAGE), name)) for name in modules]
    lines += [
        native.source_line(name, native.source_path(str(PACKAGE), name), imported=True)
        for name in imported_modules(modules)
    ]
    staging = root.with_name(root.name + ".new")
    temp = root.with_name(root.name + ".tmp")
    for folder in (staging, temp):
        shutil.rmtree(folder, ignore_errors=True)
    paths = [str((PACKAGE / f"{name}.py").relative_to(ROOT)) for name in modules]
    print(f"compiling {len(modules)} modules of the core with mypyc into {root.relative_to(ROOT)}")
    finished = subprocess.run(
        [sys.executable, "-c", _SETUP, str(staging), str(temp), native.GROUP, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        sys.stderr.write(finished.stdout[-20000:] + finished.stderr[-20000:])
        raise SystemExit(
            "build_native: mypyc could not compile the core (the output is above); "
            "the sources still run as they are"
        )
    shutil.rmtree(temp, ignore_errors=True)
    (staging / native.MANIFEST).write_text("\n".join([build_line(), *lines]) + "\n", "utf-8")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)


def main() -> int:
    if ASKED_FOR_SOURCES:
        print("REDLIST_NATIVE=0: the core runs from its sources; nothing compiled")
        return 0
    modules = listed_modules()
    root = Path(native.native_root(str(PACKAGE)))
    if up_to_date(root, modules):
        return 0
    # The copy in place no longer matches: nobody may run it while the new one builds.
    (root / native.MANIFEST).unlink(missing_ok=True)
    build(root, modules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
