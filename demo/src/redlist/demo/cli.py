"""The demo's command line: ``python -m redlist.demo [--dir DIR]``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from redlist.demo.tour import Tour
from redlist.ledger.errors import RedlistError

DEFAULT_DIR = Path("demo-data")
#: Written into the demo directory; only a directory holding it is ever wiped.
MARKER = ".redlist-demo"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT_START = 2


def prepare_directory(root: Path) -> None:
    """Empty ``root`` for a new run, refusing a directory the demo did not make."""
    if root.exists():
        if not (root / MARKER).is_file() and (not root.is_dir() or any(root.iterdir())):
            raise RedlistError(
                f"{root} exists and was not made by the demo; remove it or choose --dir"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("made by python -m redlist.demo; wiped on every run\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m redlist.demo",
        description="A month of a village's credit points on a real node, from keys to audit.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"working directory, wiped first if the demo made it (default: {DEFAULT_DIR})",
    )
    args = parser.parse_args(argv)
    # The story is told in English and reads the programs' English output (a key id,
    # a checkpoint line), so they speak English here whatever the locale (ADR 0034).
    os.environ["LANGUAGE"] = "en"
    try:
        prepare_directory(args.dir)
    except (RedlistError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    started = time.monotonic()
    try:
        Tour(args.dir, lambda line: print(line, flush=True)).run()
    except (RedlistError, OSError) as error:
        message = error.diagnostics() if isinstance(error, RedlistError) else str(error)
        print(f"\nThe demo failed: {message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nThe demo was interrupted; the node was stopped.", file=sys.stderr)
        return EXIT_FAILED
    print(f"\nDone in {time.monotonic() - started:.1f} s.")
    return EXIT_OK
