"""Install every redlist distribution editable into the running interpreter's venv.

Usage: python scripts/install_dev.py [EXTRA ...]   (from the repository root)

The siblings (ledger/, proto/, node/, ...) name each other by path, as
``redlist-ledger @ file:///.../ledger``, so that ``pip install ./verifier`` works from a
clone. pip cannot combine such a requirement with an editable install of the same
folder, so this installs in two steps:

1. each sibling the root pyproject.toml lists, editable and without its dependencies;
2. every other requirement of those siblings (with the extras the root asks for) and
   of the root's own EXTRAs, from the package index;

and then ``pip check`` confirms that the result satisfies every distribution's
metadata, the path requirements included.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SIBLING = re.compile(
    r"^redlist-[a-z]+(\[(?P<extras>[a-z,]+)\])?"
    r" @ \{root(:parent)?:uri\}/(?P<folder>[a-z]+)$"
)


def _project(folder: Path) -> dict[str, object]:
    with (folder / "pyproject.toml").open("rb") as pyproject:
        project: dict[str, object] = tomllib.load(pyproject)["project"]
    return project


def _requirements(folder: Path, extras: set[str]) -> tuple[dict[str, set[str]], list[str]]:
    """The siblings a folder's distribution names (with extras), and its other requirements."""
    project = _project(folder)
    requirements = list(project.get("dependencies", []))  # type: ignore[call-overload]
    optional = project.get("optional-dependencies", {})
    for extra in sorted(extras):
        requirements += optional[extra]  # type: ignore[index]
    siblings: dict[str, set[str]] = {}
    external: list[str] = []
    for requirement in requirements:
        match = _SIBLING.match(requirement)
        if match:
            wanted = set(filter(None, (match["extras"] or "").split(",")))
            siblings.setdefault(match["folder"], set()).update(wanted)
        else:
            external.append(requirement)
    return siblings, external


def main(argv: list[str]) -> int:
    root_siblings, external = _requirements(ROOT, set(argv))
    folders = dict(root_siblings)
    for folder in list(root_siblings):
        more, theirs = _requirements(ROOT / folder, root_siblings[folder])
        external += theirs
        for name, extras in more.items():
            folders.setdefault(name, set()).update(extras)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    editable = [arg for folder in sorted(folders) for arg in ("-e", str(ROOT / folder))]
    subprocess.run([*pip, "--no-deps", *editable], check=True)
    subprocess.run([*pip, *sorted(set(external))], check=True)
    return subprocess.run([sys.executable, "-m", "pip", "check"], check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
