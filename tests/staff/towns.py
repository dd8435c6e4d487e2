"""A served town for the staff commands' end-to-end tests: ``redlist-node serve`` in a
subprocess, its staff keys registered and a small catalogue loaded through the commands."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.node.serving import serve_in_subprocess
from tests.staff.running import Run, redlist

from redlist.ledger import keyfile, logkeyfile
from redlist.ledger.crypto import SigningKey
from redlist.staff import entries
from redlist.staff.client import LedgerClient

ORIGIN = "dongguan.example/redlist"
BIN = Path(sys.executable).parent
STAFF = ("admin", "grid", "council1", "council2", "cashier")
#: The cosigners a key or rule change needs beside the admin once the catalogue is loaded:
#: the council's quorum (the default governance of docs/format.md).
COUNCIL = ("council1", "council2")
CATALOGUE = (
    "code,title,module,points,council\n"
    "V01,Cleaned the village pond,environment,5,no\n"
    "V02,Epidemic prevention duty,public-service,10,否\n"
    "H01,Mediated a neighbourhood dispute,harmony,20,是\n"
    "D01,Burned straw in the open,environment,-20,false\n"
)


@dataclass
class Town:
    """A served town: its address, data directory and staff key files."""

    address: str
    root: Path
    keys: dict[str, Path]

    def run(self, *argv: str, signer: str | None = "grid", cosigners: tuple[str, ...] = ()) -> Run:
        """``redlist argv... --node ADDR --log-key FILE [--signer KEY] [--cosigner KEY ...]``,
        with the town's own configuration directory: the known-logs file remembers keys by
        address, and a town served later on this town's port must not meet its key."""
        extra = ["--node", self.address, "--log-key", str(self.log_pub)]
        if signer is not None:
            extra += ["--signer", str(self.keys[signer])]
        for cosigner in cosigners:
            extra += ["--cosigner", str(self.keys[cosigner])]
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("XDG_CONFIG_HOME", str(self.configuration))
            return redlist(*argv, *extra)

    @property
    def configuration(self) -> Path:
        """The staff tools' configuration directory the town's runs use."""
        return self.root / "config"

    @property
    def log_pub(self) -> Path:
        return self.root / "data" / "log.pub"

    def client(self) -> LedgerClient:
        return LedgerClient(self.address, log_key=logkeyfile.read_log_key(str(self.log_pub)))

    def size(self) -> int:
        with self.client() as client:
            return client.latest().size

    def account(self, account: str, *, reader: str | None = None) -> dict[str, Any]:
        """``redlist account ACCOUNT --json``, parsed; signed by ``reader``'s key (a staff
        member, who gets the free texts) when given, anonymous otherwise."""
        result = self.run("account", account, "--json", signer=reader)
        assert result.code == 0, result.err
        document: dict[str, Any] = json.loads(result.out)
        return document

    def write(self, name: str, text: str, *, bom: bool = False) -> Path:
        path = self.root / name
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        return path


def entry_number(output: str) -> int:
    """The entry number in "... (entry 57)." or "... (deed of 2026-05-03, entry 57)."."""
    match = re.search(r"[(, ]entry (\d+)\)", output)
    assert match is not None, output
    return int(match.group(1))


def town_today() -> str:
    """Today in the town's time zone (a new node's default, Asia/Shanghai)."""
    return entries.today(entries.now_ms(), "Asia/Shanghai")


def deed_date(output: str) -> str:
    """The deed date in "... (deed of 2026-05-03, entry 57).", which must be today's."""
    match = re.search(r"\(deed of ([0-9-]{10}), entry", output)
    assert match is not None, output
    assert match.group(1) in {town_today(), TODAY_AT_START}
    return match.group(1)


#: The town's day when the tests start (a command near midnight may see the next one).
TODAY_AT_START = town_today()
TWO_DAYS_AGO = (date.fromisoformat(TODAY_AT_START) - timedelta(days=2)).isoformat()


@contextlib.contextmanager
def served_town(root: Path, *flags: str | Path) -> Iterator[Town]:
    """A town served from ``root`` (``redlist-node serve FLAGS...``) for as long as the
    context lasts."""
    keys = {name: root / f"{name}.pem" for name in STAFF}
    for name, path in keys.items():
        keyfile.write_key_files(path, SigningKey.generate(), f"{name} of Dongguan")
    data = root / "data"
    subprocess.run(
        [BIN / "redlist-node", "init", "--data", data, "--origin", ORIGIN,
         "--admin-key", keys["admin"]],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    with serve_in_subprocess(data, *flags, output=root) as address:
        served = Town(address, root, keys)
        for name, roles in (
            ("grid", "grid"),
            ("council1", "council,grid"),
            ("council2", "council"),
            ("cashier", "cashier"),
        ):
            pub = str(keyfile.public_path(keys[name]))
            added = served.run(
                "key", "add", "--pub", pub, "--name", name, "--roles", roles, signer="admin"
            )
            assert added.code == 0, added.err
        # The catalogue is the council's decision: the admin and the council's quorum.
        loaded = served.run(
            "rules", "load", "--csv", str(served.write("catalogue.csv", CATALOGUE)),
            signer="admin", cosigners=COUNCIL,
        )  # fmt: skip
        assert loaded.code == 0, loaded.err
        yield served
