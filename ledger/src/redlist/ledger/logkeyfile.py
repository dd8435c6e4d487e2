"""A town log's verifier key as people give it: the key string, or a file holding it.

``--log-key`` takes either; the file is a node's ``log.pub`` (what ``redlist-node init``
writes and prints). Kept apart from ``keyfile`` (staff keys in PEM files, which need
``cryptography``) so that a command that only checks a log, such as ``redlist-verify
bundle``, starts without loading what it never uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from redlist.ledger.errors import KeyFileError, NoteError, RedlistError
from redlist.ledger.i18n import _, in_words
from redlist.ledger.note.keys import ALG_ED25519, VerifierKey

#: The name of the file holding a log's verifier key in a node's data directory.
LOG_PUB_NAME = "log.pub"
#: A log key file holds one line; anything larger is refused before it is read whole.
LOG_KEY_FILE_LIMIT = 64 * 1024

# How a PEM file (a key, a certificate) begins; a log key is one line, never PEM.
_PEM_MARK_TEXT = "-----BEGIN "


def read_log_key(given: str, read_file: Callable[[Path], bytes] | None = None) -> VerifierKey:
    """A log's verifier key from ``--log-key``: the key string itself, or a file holding it.

    The file is a node's ``log.pub`` (what ``redlist-node init`` writes and prints),
    read with ``read_file`` (default: at most ``LOG_KEY_FILE_LIMIT`` bytes). Every
    problem is a ``KeyFileError`` that says what to give instead.
    """
    path = Path(given)
    text = given
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except (OSError, ValueError):  # e.g. a name too long to be a path: a key string then
        is_file = is_dir = False
    if is_dir:
        raise KeyFileError(
            _(
                "--log-key {given} is a directory; give the log key file (a node's data "
                "directory holds it as {value}) or the key string itself"
            ).format(given=given, value=path / LOG_PUB_NAME)
        )
    if is_file:
        try:
            text = (read_file or read_log_key_file)(path).decode("utf-8").strip()
        except RedlistError as exc:
            raise KeyFileError(exc.diagnostics()) from None
        except OSError as exc:
            raise KeyFileError(
                _("cannot read the log key file {path}: {strerror}").format(
                    path=path, strerror=exc.strerror
                )
            ) from None
        except UnicodeDecodeError:
            raise KeyFileError(
                _("the log key file {path} is not UTF-8 text").format(path=path)
            ) from None
        if _PEM_MARK_TEXT in text:
            raise KeyFileError(
                _(
                    "{path} is a PEM file (a staff key from 'redlist keygen' or a certificate), "
                    "not the town log's key; that is {LOG_PUB_NAME} in the node's data "
                    "directory, also printed by 'redlist-node init'"
                ).format(path=path, LOG_PUB_NAME=LOG_PUB_NAME)
            )
    elif "+" not in given and ("/" in given or "." in given):
        # A file name or path that names nothing: a key string always has two '+'.
        raise KeyFileError(
            _(
                "the log key file {given} does not exist (--log-key takes that file, e.g. the "
                "node's {LOG_PUB_NAME}, or the key string itself)"
            ).format(given=given, LOG_PUB_NAME=LOG_PUB_NAME)
        )
    try:
        log_key = VerifierKey.parse(text)
    except NoteError as exc:
        what = _("the file {path}").format(path=path) if text is not given else repr(given)
        raise KeyFileError(
            _(
                "{what} is not a log verifier key (name+hash+key, as 'redlist-node init' prints "
                "it): {exc}"
            ).format(what=what, exc=in_words(exc))
        ) from None
    if log_key.algorithm != ALG_ED25519:
        raise KeyFileError(
            _("{name} is a witness cosigning key; the log's own key is needed").format(
                name=log_key.name
            )
        )
    return log_key


def read_log_key_file(path: Path) -> bytes:
    """A log key file's bytes, refused when it is larger than a key file can be."""
    with path.open("rb") as stream:
        data = stream.read(LOG_KEY_FILE_LIMIT + 1)
    if len(data) > LOG_KEY_FILE_LIMIT:
        raise KeyFileError(
            _(
                "the log key file {path} is larger than {LOG_KEY_FILE_LIMIT:,} bytes: it is not "
                "a log key file (that is one line, the node's {LOG_PUB_NAME})"
            ).format(path=path, LOG_KEY_FILE_LIMIT=LOG_KEY_FILE_LIMIT, LOG_PUB_NAME=LOG_PUB_NAME)
        )
    return data
