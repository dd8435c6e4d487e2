"""Reading the node's TOML files (``serve --config``, ``init --config``) with clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import _


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The document in the TOML file ``path``; ``what`` names the file in errors
    ("config file"): a missing or unreadable file, or one that is not UTF-8 TOML, is a
    ``FormatError``."""
    try:
        # utf-8-sig: Windows Notepad starts a UTF-8 file with a byte order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(_("{what} {path} does not exist").format(what=what, path=path)) from None
    except IsADirectoryError:
        raise FormatError(
            _("{what} {path} is a directory, not a file").format(what=what, path=path)
        ) from None
    except UnicodeDecodeError:
        raise FormatError(
            _("{what} {path} is not UTF-8 text").format(what=what, path=path)
        ) from None
    except OSError as error:
        raise FormatError(
            _("cannot read {what} {path}: {strerror}").format(
                what=what, path=path, strerror=error.strerror
            )
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise FormatError(
            _("{what} {path} is not valid TOML: {error}").format(what=what, path=path, error=error)
        ) from None
