"""Which copy of the core's hot modules runs: the compiled one, only while it matches.

``make`` compiles the modules that ``ledger/pyproject.toml`` lists under
``[tool.redlist.native]`` with mypyc (``scripts/build_native.py``, docs/adr/0057) into
``build/native/<tag>/`` of the clone, with a manifest of the sources it was compiled
from and against. When ``redlist.ledger`` is imported, ``search_path`` puts that folder
before the sources in the package's search path, so the compiled modules are the ones
imported, but only if every source in the manifest is byte for byte the one the build
read: a source changed since (an edit, a checkout, a pull) makes the whole package run
from its sources until ``make`` compiles it again. The compiled modules call one another
directly, so they are taken all together or not at all.

The manifest holds the modules of the package that the compiled ones import, too
(``imported``). They run from their sources, but the compiled code was built against
them: mypyc copies a ``Final`` constant's value and a ``NamedTuple``'s field positions
into the code that uses them, so an edit of one would leave the compiled copy running
what the source no longer says.

The sources stay the reference: they are what the compiled modules are made from,
what the tests also run (``REDLIST_NATIVE=0``), and what an installation without a C
compiler, or not made from a clone, runs.

Every program imports this, worker processes included, so it loads little: no
``pathlib`` and no ``json``; ``hashlib`` only when a source's size or time changed.
"""

from __future__ import annotations

import os
import sys
import sysconfig

#: Set to ``0`` to run the sources even where a matching compiled copy exists.
ENVIRONMENT = "REDLIST_NATIVE"
#: The manifest written last by the build: a line for the build, then one a module
#: (``name sha256 size mtime_ns``) with the source it was compiled from, and one for each
#: module the compiled ones import, with ``IMPORTED`` after it.
MANIFEST = "manifest.txt"
#: The last word of a manifest line whose module was read by the build, not compiled.
IMPORTED = "imported"
#: The name of the compiled modules' shared library (``<group>__mypyc``), in the package.
GROUP = "redlist.ledger.native"

#: The modules running compiled (set once, at the package's import; empty: the sources).
_modules: list[str] = []


def tag() -> str:
    """The interpreter and platform a compiled copy is for (one folder each)."""
    return f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"


def native_root(package_dir: str) -> str:
    """Where the compiled copy of the package in ``package_dir`` lives: ``build/native/<tag>``
    of the clone whose ``ledger/src/redlist/ledger`` it is."""
    clone = package_dir
    for _ in range(4):
        clone = os.path.dirname(clone)
    return os.path.join(clone, "build", "native", tag())


def source_digest(path: str) -> str:
    import hashlib

    with open(path, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()


def source_path(package_dir: str, name: str) -> str:
    """The source of module ``name`` of the package (``note.keys``: ``note/keys.py``)."""
    return os.path.join(package_dir, *name.split(".")) + ".py"


def source_line(name: str, path: str, *, imported: bool = False) -> str:
    """The manifest's line for a module: its source's digest, and the size and time that
    spare hashing it again while they are unchanged; ``imported``: read, not compiled."""
    status = os.stat(path)
    line = f"{name} {source_digest(path)} {status.st_size} {status.st_mtime_ns}"
    return f"{line} {IMPORTED}" if imported else line


Sources = dict[str, tuple[str, int, int]]


def read_manifest(root: str) -> tuple[str, Sources, list[str]] | None:
    """The build's line, every source's (digest, size, time) by module, and the modules
    compiled; None if the manifest is unreadable."""
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as manifest:
            build, *lines = manifest.read().splitlines()
        sources: Sources = {}
        compiled = []
        for line in lines:
            name, digest, size, mtime, *rest = line.split(" ")
            if rest not in ([], [IMPORTED]):
                return None
            sources[name] = (digest, int(size), int(mtime))
            if not rest:
                compiled.append(name)
    except (OSError, ValueError):
        return None
    return build, sources, sorted(compiled)


def matches(package_dir: str, sources: Sources) -> bool:
    """Whether every module has exactly the source the build read."""
    if not sources:
        return False
    for name, (digest, size, mtime) in sources.items():
        source = source_path(package_dir, name)
        try:
            status = os.stat(source)
            if (status.st_size, status.st_mtime_ns) == (size, mtime):
                continue
            if source_digest(source) != digest:
                return False
        except OSError:
            return False
    return True


def matching_copy(package_dir: str) -> tuple[str, list[str]] | None:
    """The compiled copy's folder and modules, if it may run: built, matching every
    source, and not turned off (``REDLIST_NATIVE=0``)."""
    if os.environ.get(ENVIRONMENT, "1") == "0":
        return None
    root = native_root(package_dir)
    manifest = read_manifest(root)
    if manifest is None or not manifest[2] or not matches(package_dir, manifest[1]):
        return None
    return root, manifest[2]


def search_path(package_dir: str) -> list[str]:
    """The folders to put before the package's own: the compiled copy's, when it matches."""
    global _modules
    copy = matching_copy(package_dir)
    if copy is None:
        return []
    root, _modules = copy
    return [os.path.join(root, "redlist", "ledger")]


def compiled_modules() -> list[str]:
    """The names of the modules running compiled (empty when the sources run)."""
    return list(_modules)


__all__ = [
    "ENVIRONMENT",
    "GROUP",
    "IMPORTED",
    "MANIFEST",
    "Sources",
    "compiled_modules",
    "matches",
    "matching_copy",
    "native_root",
    "read_manifest",
    "search_path",
    "source_line",
    "source_path",
    "tag",
]
