"""Which log key each node must prove it serves: ``--log-key``, or remembered, as ssh does.

A staff tool trusts a node only as far as it proves, with the town log's key, what
it says: every checkpoint it sends must verify with that key. The key comes from
the town admin (the node's ``log.pub``, printed by ``redlist-node init``) and is
given once with ``--log-key``; after the node's checkpoint has verified with it,
it is remembered in the *known-logs file* under the node's address, and later
commands to that node may leave ``--log-key`` out.

The file is ``$XDG_CONFIG_HOME/redlist/known-logs`` (``~/.config/redlist/...``
when that variable is unset): one line per node, ``HOST:PORT VERIFIER-KEY``;
blank lines and lines starting with ``#`` are ignored. It is a plain text file a
clerk may edit: deleting a node's line forgets its key.

A key given with ``--log-key`` that differs from the one remembered for that
address is refused (``KeyFileError``): either the town replaced its log key, and
the clerk deletes the old line after checking the new key with the admin, or the
address now leads to another node. Nothing is ever replaced silently.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger import logkeyfile
from redlist.ledger.errors import KeyFileError, NoteError
from redlist.ledger.i18n import _
from redlist.ledger.note.keys import VerifierKey

KNOWN_LOGS_NAME = "known-logs"
_HEADER = (
    "# Log keys of the redlist nodes this computer has talked to: HOST:PORT VERIFIER-KEY.\n"
    "# Written by the redlist staff tools; delete a node's line to forget its key.\n"
)


def default_path() -> Path:
    """The known-logs file in the user's configuration directory."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "redlist" / KNOWN_LOGS_NAME


@dataclass(frozen=True)
class KnownLog:
    """A remembered log key: the node's address, the key, and its line in the file."""

    address: str
    log_key: VerifierKey
    line: int


@dataclass(frozen=True)
class KnownLogs:
    """The known-logs file at ``path`` (which need not exist yet)."""

    path: Path

    def find(self, address: str) -> KnownLog | None:
        """The key remembered for ``address``, or None."""
        for known in self._read():
            if known.address == address:
                return known
        return None

    def remember(self, address: str, log_key: VerifierKey) -> None:
        """Add ``address``'s key to the file (created with its directory if needed).

        Written to a temporary file and renamed over the old one, so an
        interrupted write leaves the previous file whole.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = _HEADER
        except (OSError, UnicodeDecodeError) as error:
            raise KeyFileError(
                _("cannot read the known-logs file {path}: {error}").format(
                    path=self.path, error=error
                )
            ) from None
        if text and not text.endswith("\n"):
            text += "\n"
        text += f"{address} {log_key.encode()}\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(
                prefix=f".{self.path.name}.", dir=self.path.parent
            )
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except OSError as error:
            raise KeyFileError(
                _("cannot write the known-logs file {path}: {value}").format(
                    path=self.path, value=error.strerror or error
                )
            ) from None

    def _read(self) -> list[KnownLog]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            raise KeyFileError(
                _("cannot read the known-logs file {path}: {error}").format(
                    path=self.path, error=error
                )
            ) from None
        found: list[KnownLog] = []
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            address, _space, key_text = stripped.partition(" ")
            try:
                log_key = VerifierKey.parse(key_text.strip())
            except NoteError as error:
                raise KeyFileError(
                    _(
                        "line {number} of the known-logs file {path} is damaged ({error}); "
                        "delete that "
                        "line and give the node's log key again with --log-key"
                    ).format(number=number, path=self.path, error=error)
                ) from None
            found.append(KnownLog(address, log_key, number))
        return found


@dataclass(frozen=True)
class LogKeyChoice:
    """The key a node must prove its log with, and where it came from (for messages).

    ``remember`` is true on first contact: the caller adds the key to the
    known-logs file once the node's checkpoint has verified with it.
    """

    log_key: VerifierKey
    source: str
    remember: bool


def choose_log_key(address: str, given: str | None, known: KnownLogs) -> LogKeyChoice:
    """The log key for the node at ``address``: ``given`` (``--log-key``) or remembered.

    Raises ``KeyFileError`` when there is none, or when ``given`` is not the key
    remembered for that address.
    """
    remembered = known.find(address)
    if given is None:
        if remembered is None:
            raise KeyFileError(
                _(
                    "this computer does not know the log key of the node at {address} yet. Ask the "
                    "town admin for the town's log key (the file log.pub from the node, or the key "
                    "text 'redlist-node init' printed) and give it once with --log-key; it is then "
                    "remembered in {path}"
                ).format(address=address, path=known.path)
            )
        return LogKeyChoice(
            remembered.log_key, _("remembered in {path}").format(path=known.path), remember=False
        )
    log_key = logkeyfile.read_log_key(given)
    if remembered is None:
        return LogKeyChoice(log_key, _("given with --log-key"), remember=True)
    if remembered.log_key != log_key:
        raise KeyFileError(
            _(
                "the log key given with --log-key ({describe}) is not the one this computer "
                "remembers for the node at {address} ({describe2}, line {line} of {path}). "
                "Nothing was sent. Check the key with the town admin: if the town really changed "
                "its log key, delete that line and run the command again; if not, this address "
                "may lead to another node: do not use it"
            ).format(
                describe=log_key.describe(),
                address=address,
                describe2=remembered.log_key.describe(),
                line=remembered.line,
                path=known.path,
            )
        )
    return LogKeyChoice(log_key, _("remembered in {path}").format(path=known.path), remember=False)


def announce_remembered(address: str, choice: LogKeyChoice, known: KnownLogs) -> None:
    """Remember a first contact's key and say so on stderr (what ssh does for a host key)."""
    known.remember(address, choice.log_key)
    print(
        _(
            "The node at {address} proved that it keeps log {name} (log key {describe}).\n"
            "Key remembered in {path}: later commands to this node may leave out --log-key."
        ).format(
            address=address,
            name=choice.log_key.name,
            describe=choice.log_key.describe(),
            path=known.path,
        ),
        file=sys.stderr,
    )
