"""Reading ``redlist-node serve``'s settings: the TOML file, checked, then the flags over it.

``load_config_file`` checks every key's name and type (an unknown or misspelt key is
refused, naming the known ones), makes the paths it names relative to the file, and
parses the tables (``[[ask_witness]]``, ``[recognition]``); ``resolve_settings``
puts the flags given over the file's values and builds the ``ServeSettings``. What
each setting means, and its default, is ``config``'s; ``mirrorcfg`` reads a
mirror's file with the same listener settings (``listener_values``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _
from redlist.node.config import DEFAULT_MAX_GROUP, LISTENER_TYPES, ServeSettings
from redlist.node.recognition import parse_recognition
from redlist.node.tomlfile import read_toml

# Setting name -> the types a TOML value may have for it.
_TYPES: dict[str, tuple[type, ...]] = {
    "data": (str,),
    "listen": (str,),
    "metrics": (str,),
    "max_batch": (int,),
    "max_group": (int,),
    "commit_depth": (int,),
    "grace_seconds": (int, float),
    **LISTENER_TYPES,
    "log_level": (str,),
    "map_size_gib": (int,),
    "witness_key": (str,),
    "witness_name": (str,),
    "witness_for": (list,),
    "ask_witness": (list,),
    "cosign_interval": (int, float),
    "recognition": (dict,),
    "review_days": (int,),
    "review_max_pending": (int,),
    "review_max_per_proposer": (int,),
}
#: Settings that name files: relative paths in a config file are relative to it.
_LISTENER_PATHS = ("tls_cert", "tls_key", "tls_client_ca", "peer_ca", "peer_cert", "peer_key")
_PATHS = ("data", "witness_key")


def load_config_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file gives, checked for names and types (not yet combined)."""
    document = read_toml(path, _("config file"))
    values: dict[str, Any] = {}
    for name, value in document.items():
        allowed = _TYPES.get(name)
        if allowed is None:
            known = ", ".join(sorted(_TYPES))
            raise FormatError(
                _("config file {path}: unknown setting {name!r} (known: {known})").format(
                    path=path, name=name, known=known
                )
            )
        if isinstance(value, bool) or not isinstance(value, allowed):
            wanted = _(" or ").join(
                _("a number") if kind is float else _(_KIND[kind]) for kind in allowed
            )
            raise FormatError(
                _("config file {path}: {name!r} must be {wanted}").format(
                    path=path, name=name, wanted=wanted
                )
            )
        values[name] = value
    values.update(listener_values(path, values))
    for name in _PATHS:
        if name in values:
            named = Path(values[name])
            values[name] = named if named.is_absolute() else path.parent / named
    if "witness_for" in values:
        values["witness_for"] = _log_keys(path, values["witness_for"])
    if "ask_witness" in values:
        values["ask_witness"] = _asked_witnesses(path, values["ask_witness"])
    if "recognition" in values:
        values["recognition"] = parse_recognition(values["recognition"], path)
    for name in ("grace_seconds", "cosign_interval"):
        if name in values:
            values[name] = float(values[name])
    return values


def listener_values(path: Path, values: Mapping[str, Any]) -> dict[str, Any]:
    """The listener's settings among ``values`` (read from the TOML file ``path`` and
    checked against ``LISTENER_TYPES``) as ``ListenerSettings`` takes them: files
    relative to ``path``, ``peer_names`` a tuple of text, numbers of seconds or of a
    rate as floats."""
    found = {name: values[name] for name in LISTENER_TYPES if name in values}
    for name in _LISTENER_PATHS:
        if name in found:
            named = Path(found[name])
            found[name] = named if named.is_absolute() else path.parent / named
    if "peer_names" in found:
        if not all(isinstance(item, str) for item in found["peer_names"]):
            raise FormatError(
                _("config file {path}: 'peer_names' must be a list of text").format(path=path)
            )
        found["peer_names"] = tuple(found["peer_names"])
    for name in ("rate_limit", "stream_write_seconds", "rate_limit_bytes"):
        if name in found:
            found[name] = float(found[name])
    return found


_KIND = {str: N_("text"), int: N_("a whole number"), list: N_("a list"), dict: N_("a table")}


def _log_keys(path: Path, given: list[Any]) -> tuple[str, ...]:
    """``witness_for``'s items: key strings as they are, files relative to the config file."""
    if not all(isinstance(item, str) for item in given):
        raise FormatError(
            _("config file {path}: 'witness_for' must be a list of text").format(path=path)
        )
    # A key string always has two '+'; anything else names a file.
    return tuple(
        item if "+" in item or Path(item).is_absolute() else str(path.parent / item)
        for item in given
    )


def _asked_witnesses(path: Path, given: list[Any]) -> tuple[tuple[str, str], ...]:
    """``[[ask_witness]]`` tables, each exactly an ``address`` and a ``key`` (text)."""
    asked = []
    for item in given:
        if (
            not isinstance(item, dict)
            or set(item) != {"address", "key"}
            or not all(isinstance(value, str) for value in item.values())
        ):
            raise FormatError(
                _(
                    "config file {path}: each [[ask_witness]] has exactly 'address' and 'key' "
                    "(text)"
                ).format(path=path)
            )
        asked.append((item["address"], item["key"]))
    return tuple(asked)


def resolve_settings(
    file_values: Mapping[str, Any], flag_values: Mapping[str, Any | None]
) -> ServeSettings:
    """Combine the file's settings with the flags (a flag that is ``None`` was not given)."""
    merged: dict[str, Any] = dict(file_values)
    merged.update({name: value for name, value in flag_values.items() if value is not None})
    if "witness_for" in merged:
        merged["witness_for"] = tuple(merged["witness_for"])
    if "peer_names" in merged:
        merged["peer_names"] = tuple(merged["peer_names"])
    if "ask_witness" in merged:
        merged["ask_witness"] = tuple(tuple(pair) for pair in merged["ask_witness"])
    for required, flag in (("data", "--data"), ("listen", "--listen")):
        if required not in merged:
            raise FormatError(
                _("no {required} given: pass {flag} or set {required!r} in --config").format(
                    required=required, flag=flag
                )
            )
    data = merged.pop("data")
    listen = merged.pop("listen")
    if "max_group" not in merged and "max_batch" in merged:
        # A group takes whole batches: let it grow with a larger batch limit.
        merged["max_group"] = max(DEFAULT_MAX_GROUP, merged["max_batch"])
    try:
        return ServeSettings(data=Path(data), listen=listen, **merged)
    except TypeError as error:  # an unknown name among the flag values: a programming slip
        raise FormatError(_("unknown setting: {error}").format(error=error)) from None


__all__ = ["listener_values", "load_config_file", "resolve_settings"]
