"""The verifier reads a bundle's files with bounds: no hang on a pipe, no 3 GB read.

Each case replaces one file of a good bundle with something hostile and runs the real
``redlist-verify`` in a subprocess: it must end (the timeout is a hang guard, not a
timing claim) with exit 2 and a message that names the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.verifier.bundles import standard_log

from redlist.ledger import bundle

HANG_GUARD_S = 60


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _huge(path: Path) -> None:
    # Sparse: 3 GB on paper, nothing on disk. Reading it would take 3 GB of memory.
    with path.open("r+b") as stream:
        stream.truncate(3 * 1024**3)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redlist.verifier.cli", "bundle", *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


HOSTILE: dict[str, Callable[[Path], None]] = {"fifo": _fifo, "huge": _huge, "dir": _directory}


# A long leaves file is streamed, never read whole: only a pipe or a directory is refused.
CASES = [
    (name, kind)
    for name in (bundle.CHECKPOINT_FILE, bundle.MANIFEST_FILE, bundle.LEAVES_FILE, "log.pub")
    for kind in sorted(HOSTILE)
    if not (name == bundle.LEAVES_FILE and kind == "huge")
]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_a_hostile_file_is_refused_without_reading_it(tmp_path: Path, name: str, kind: str) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    key_file = tmp_path / "log.pub"
    key_file.write_text(log.town.log_signer.verifier().encode() + "\n", encoding="utf-8")
    target = key_file if name == "log.pub" else directory / name
    HOSTILE[kind](target)
    result = verify(str(directory), "--log-key", str(key_file))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(target) in result.stderr or name in result.stderr, result.stderr


def test_a_good_bundle_still_verifies(tmp_path: Path) -> None:
    log = standard_log()
    directory = log.write_bundle(tmp_path / "bundle")
    result = verify(str(directory), "--log-key", log.town.log_signer.verifier().encode())
    assert result.returncode == 0, result.stdout + result.stderr
