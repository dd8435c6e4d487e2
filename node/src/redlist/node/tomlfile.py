"""Reading the node's TOML files (``serve --config``, ``init --config``) with clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from redlist.ledger.errors import FormatError


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The document in the TOML file ``path``; ``what`` names the file in errors
    ("config file"): a missing or unreadable file, or one that is not UTF-8 TOML, is a
    ``FormatError``."""
    try:
        # utf-8-sig: Windows Notepad starts a UTF-8 file with a byte order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise FormatError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise FormatError(f"{what} {path} is not UTF-8 text") from None
    except OSError as error:
        raise FormatError(f"cannot read {what} {path}: {error.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise FormatError(f"{what} {path} is not valid TOML: {error}") from None
