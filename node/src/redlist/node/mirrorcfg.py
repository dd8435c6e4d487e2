"""Settings of ``redlist-node mirror``: flags for one log, or a TOML file for several.

One process can mirror several towns' logs. Each mirrored log is a table of its own,
because each is a data directory of its own (its own LMDB, exported and checked on its
own), is read from its own primary, and is served on its own address (the ``Ledger``
read API serves one log per address; health reports per address)::

    mirror_key = "keys/mirror.pem"     # cosign as a mirror (C2SP tlog-mirror); optional
    mirror_name = "wendeng-mirror"     # the cosigner's name (default: the key's .pub name)
    witness_key = "keys/witness.pem"   # this town's witness key: never the same as the mirror's
    metrics = "127.0.0.1:9421"         # Prometheus /metrics for every mirrored log; off when absent
    log_level = "info"
    map_size_gib = 1024
    chunk_entries = 4096               # entries per catch-up step (one durable commit each)
    chunk_bytes = 16777216             # most bytes of entries held at once (16 MiB)
    max_backoff = 60.0                 # longest wait, in seconds, before asking a primary again
    peer_ca = "tls/towns-ca.pem"       # reach the primaries over TLS, trusting these CAs ...
    peer_cert = "tls/node.pem"         # ... presenting this town's certificate and key
    peer_key = "tls/node.key"          #     (plaintext, to this machine only, without peer_ca)
    tls_cert = "tls/node.pem"          # serve the copies over TLS (as serve: tls_key,
    tls_key = "tls/node.key"           # tls_client_ca, peer_names, max_calls, max_streams,
    peer_names = ["rushan", "juxian"]  # rate_limit, ... : the keys of serve's config file)

    [[mirror]]
    data = "mirrors/rushan"            # relative paths are relative to this file
    from = "rushan.example:7420"       # the primary: the town's own node (or another mirror)
    log_key = "rushan.pub"             # the log's verifier key string, or a file holding it
    listen = "0.0.0.0:7431"

Flags (``--data --from --log-key --listen``) add one more log; ``--mirror-key``,
``--mirror-name`` and the others override the file. The mirror key is the town's
signature as a mirror, the same for every log it mirrors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redlist.ledger import keyfile, logkeyfile
from redlist.ledger.errors import FormatError, KeyFileError, NoteError
from redlist.ledger.i18n import _
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.node.config import LISTENER_TYPES, LOG_LEVELS, ListenerSettings, parse_address
from redlist.node.configfile import listener_values
from redlist.node.mirror import CHUNK_BYTES, CHUNK_ENTRIES, FIRST_BACKOFF, MAX_BACKOFF, MirrorLimits
from redlist.node.tls import (
    PeerMaterial,
    PeerTLS,
    load_peer_material,
)
from redlist.node.tomlfile import read_toml
from redlist.proto.client import check_address


@dataclass(frozen=True)
class MirroredLog:
    """One log to mirror: where to keep it, whom to copy, its key, where to serve it."""

    data: Path
    upstream: str
    log_key: VerifierKey
    listen: str


@dataclass(frozen=True, kw_only=True)
class MirrorSettings(ListenerSettings):
    """Everything ``mirror`` needs to know, after file and flags were combined; the
    listener's settings (TLS, peers let in, limits) are ``serve``'s, for every address
    a mirrored log is served on."""

    logs: tuple[MirroredLog, ...]
    mirror_key: Path | None = None
    mirror_name: str | None = None
    witness_key: Path | None = None
    metrics: str | None = None
    log_level: str = "info"
    map_size_gib: int | None = None
    chunk_entries: int = CHUNK_ENTRIES
    chunk_bytes: int = CHUNK_BYTES
    max_backoff: float = MAX_BACKOFF

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.logs:
            raise FormatError(
                _(
                    "no log to mirror: give --data, --from, --log-key and --listen, or "
                    "[[mirror]] tables in --config"
                )
            )
        for what, values in (
            (_("data directory"), [str(log.data.resolve()) for log in self.logs]),
            # Port 0 picks a free port for each: only fixed addresses can clash.
            (
                _("listen address"),
                [log.listen for log in self.logs if not log.listen.endswith(":0")],
            ),
            ("log", [log.log_key.name for log in self.logs]),
        ):
            if len(set(values)) != len(values):
                raise FormatError(
                    _("two mirrored logs have the same {what}: each needs its own").format(
                        what=what
                    )
                )
        if self.log_level not in LOG_LEVELS:
            raise FormatError(
                _("'log_level' must be one of {join}, not {log_level!r}").format(
                    join=", ".join(LOG_LEVELS), log_level=self.log_level
                )
            )
        if self.metrics is not None:
            parse_address(self.metrics, "metrics")
        if self.mirror_name is not None and self.mirror_key is None:
            raise FormatError(_("'mirror_name' (--mirror-name) needs 'mirror_key' as well"))
        for name in ("chunk_entries", "chunk_bytes"):
            if getattr(self, name) < 1:
                raise FormatError(
                    _("'{name}' must be at least 1, not {getattr}").format(
                        name=name, getattr=getattr(self, name)
                    )
                )
        if not (self.max_backoff >= FIRST_BACKOFF and math.isfinite(self.max_backoff)):
            raise FormatError(
                _(
                    "'max_backoff' must be at least {FIRST_BACKOFF:g} seconds, not {max_backoff}"
                ).format(FIRST_BACKOFF=FIRST_BACKOFF, max_backoff=self.max_backoff)
            )
        if self.map_size_gib is not None and self.map_size_gib < 1:
            raise FormatError(
                _("'map_size_gib' must be at least 1, not {map_size_gib}").format(
                    map_size_gib=self.map_size_gib
                )
            )

    def limits(self) -> MirrorLimits:
        """How much each follower holds at once and how long it waits at most."""
        return MirrorLimits(
            chunk_entries=self.chunk_entries,
            chunk_bytes=self.chunk_bytes,
            max_backoff=self.max_backoff,
        )

    def peer_tls(self) -> PeerMaterial | None:
        """How to reach the primaries (``peers.open_peer_channel``): TLS with ``peer_ca``
        (and this town's certificate), else plaintext, to this machine only."""
        if self.peer_ca is None:
            return None
        return load_peer_material(PeerTLS(self.peer_ca, self.peer_cert, self.peer_key))

    def signer(self) -> NoteSigner | None:
        """The mirror's cosigning key, named; refused when it is the witness key."""
        if self.mirror_key is None:
            return None
        key = keyfile.read_signing_key(self.mirror_key)
        if self.witness_key is not None:
            witness = keyfile.read_signing_key(self.witness_key)
            if witness.public == key.public:
                raise KeyFileError(
                    _(
                        "the mirror key {mirror_key} is the witness key {witness_key}: a "
                        "mirror's and a witness's signatures say different things, so they need "
                        "different keys (make one with 'redlist keygen')"
                    ).format(mirror_key=self.mirror_key, witness_key=self.witness_key)
                )
        name = self.mirror_name or keyfile.read_holder_name(self.mirror_key)
        if name is None:
            raise KeyFileError(
                _(
                    "the mirror key {mirror_key} has no name (its .pub file is missing or names "
                    "nobody): give --mirror-name"
                ).format(mirror_key=self.mirror_key)
            )
        try:
            return NoteSigner(name, key)
        except NoteError as error:
            raise KeyFileError(
                _(
                    "the mirror name {name!r} cannot name a cosigner ({error}): give --mirror-name "
                    "with a name without spaces or '+'"
                ).format(name=name, error=error)
            ) from None


_TOP: dict[str, type] = {
    **{name: float if float in kinds else kinds[0] for name, kinds in LISTENER_TYPES.items()},
    "mirror_key": str,
    "mirror_name": str,
    "witness_key": str,
    "metrics": str,
    "log_level": str,
    "map_size_gib": int,
    "chunk_entries": int,
    "chunk_bytes": int,
    "max_backoff": float,
    "mirror": list,
}
_TOP_PATHS = ("mirror_key", "witness_key")
_TABLE = ("data", "from", "log_key", "listen")


def _table_problem(item: Any) -> str | None:
    """What is wrong with one ``[[mirror]]`` table, in words; None if nothing."""
    if not isinstance(item, dict):
        return _("it is not a table")
    unknown = sorted(set(item) - set(_TABLE))
    if unknown:
        return _("unknown setting {names}").format(names=", ".join(repr(name) for name in unknown))
    missing = [name for name in _TABLE if name not in item]
    if missing:
        return _("{names} missing").format(names=", ".join(repr(name) for name in missing))
    odd = [name for name in _TABLE if not isinstance(item[name], str)]
    if odd:
        return _("{names} must be text").format(names=", ".join(repr(name) for name in odd))
    return None


def load_mirror_config(path: Path) -> dict[str, Any]:
    """The settings a TOML file gives, checked for names and types (not yet combined)."""
    document = read_toml(path, _("config file"))
    values: dict[str, Any] = {}
    for name, value in document.items():
        kind = _TOP.get(name)
        if kind is None:
            known = ", ".join(sorted(_TOP))
            raise FormatError(
                _("config file {path}: unknown setting {name!r} (known: {known})").format(
                    path=path, name=name, known=known
                )
            )
        allowed = (int, float) if kind is float else (kind,)
        if isinstance(value, bool) or not isinstance(value, allowed):
            wanted = {
                str: "text",
                int: _("a whole number"),
                float: _("a number"),
                list: _("a list"),
            }
            what = _("[[mirror]] tables") if name == "mirror" else wanted[kind]
            raise FormatError(
                _("config file {path}: {name!r} must be {what}").format(
                    path=path, name=name, what=what
                )
            )
        values[name] = float(value) if kind is float and isinstance(value, int | float) else value
    for name in _TOP_PATHS:
        if name in values:
            values[name] = _relative(path, values[name])
    values.update(listener_values(path, values))
    values["mirror"] = tuple(
        _mirrored(path, number, item)
        for number, item in enumerate(values.get("mirror", ()), start=1)
    )
    return values


def _mirrored(path: Path, number: int, item: Any) -> MirroredLog:
    problem = _table_problem(item)
    if problem is not None:
        raise FormatError(
            _(
                "config file {path}, [[mirror]] number {number}: {problem}; each [[mirror]] "
                "has exactly 'data', 'from', 'log_key' and 'listen' (text)"
            ).format(path=path, number=number, problem=problem)
        )
    log_key = item["log_key"]
    if "+" not in log_key:  # a key string always has two '+'; anything else names a file
        log_key = str(_relative(path, log_key))
    return mirrored_log(_relative(path, item["data"]), item["from"], log_key, item["listen"])


def mirrored_log(data: Path, upstream: str, log_key: str, listen: str) -> MirroredLog:
    """One log to mirror, checked: addresses of the form HOST:PORT, a usable log key."""
    parse_address(listen, "listen")
    check_address(upstream)
    return MirroredLog(data, upstream, logkeyfile.read_log_key(log_key), listen)


def _relative(path: Path, given: str) -> Path:
    named = Path(given)
    return named if named.is_absolute() else path.parent / named


def resolve_mirror_settings(
    file_values: Mapping[str, Any], flag_values: Mapping[str, Any | None]
) -> MirrorSettings:
    """Combine the file's settings with the flags (a flag that is None was not given)."""
    merged: dict[str, Any] = dict(file_values)
    logs = list(merged.pop("mirror", ()))
    one = {name: flag_values.get(name) for name in ("data", "upstream", "log_key", "listen")}
    given = [name for name, value in one.items() if value is not None]
    if given and len(given) != len(one):
        raise FormatError(
            _("a log to mirror needs all four of --data, --from, --log-key and --listen")
        )
    if given:
        data, upstream, log_key, listen = (one[name] for name in one)
        logs.append(mirrored_log(Path(str(data)), str(upstream), str(log_key), str(listen)))
    merged.update(
        {
            name: value
            for name, value in flag_values.items()
            if value is not None and name not in one
        }
    )
    if "peer_names" in merged:
        merged["peer_names"] = tuple(merged["peer_names"])
    return MirrorSettings(logs=tuple(logs), **merged)


__all__ = [
    "MirrorSettings",
    "MirroredLog",
    "load_mirror_config",
    "mirrored_log",
    "resolve_mirror_settings",
]
