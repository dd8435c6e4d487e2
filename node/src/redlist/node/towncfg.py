"""The town's scoring configuration: the default scale and a TOML file to override it.

The configuration is written once, into the log's genesis entry (DESIGN 3.4), so
it is chosen at ``redlist-node init`` and never edited afterwards. Without a
file, a town gets Wendeng's published scale (``DEFAULT_TOWN_CONFIG``). A TOML
file may set any of the keys; those it leaves out keep their default::

    base = 1000               # every resident's starting score
    quorum = 2                # council signatures for council rules and reversals
    publicity_days = 7        # objection window after the monthly publicity
    tz = "Asia/Shanghai"      # IANA time zone of the town's days and months
    backdate_days = 92        # how many days back an award's deed date may lie

    # Grades from the highest down; the last one has no min (everyone else).
    [[grades]]
    name = "AAA"
    min = 1050
    [[grades]]
    name = "A"
    min = 960
    [[grades]]
    name = "B"

``grades``, when given, replaces the whole default list.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redlist.ledger.entry import Grade, TownConfig
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import _
from redlist.node.tomlfile import read_toml

DEFAULT_TOWN_CONFIG = TownConfig(
    base=1000,
    grades=(
        Grade("AAA", 1050),
        Grade("AA", 1030),
        Grade("A", 960),
        Grade("B", 850),
        Grade("C", 600),
        Grade("D", None),
    ),
    quorum=2,
    publicity_days=7,
    tz="Asia/Shanghai",
)

_GRADE_KEYS = frozenset({"name", "min"})


def load_town_config(path: Path) -> TownConfig:
    """The default configuration with the overrides of the TOML file ``path``."""
    document = read_toml(path, _("town config"))
    try:
        return town_config_from_toml(document)
    except FormatError as error:
        raise FormatError(
            _("town config {path}: {diagnostics}").format(
                path=path, diagnostics=error.diagnostics()
            )
        ) from None


def town_config_from_toml(document: Mapping[str, Any]) -> TownConfig:
    """Apply a parsed TOML document's overrides to ``DEFAULT_TOWN_CONFIG``.

    The result is validated exactly as the genesis entry will be
    (``TownConfig.from_value``), and the time zone must be one this machine knows.
    """
    value = DEFAULT_TOWN_CONFIG.to_value()
    for key, item in document.items():
        value[key] = _grades_from_toml(item) if key == "grades" else item
    config = TownConfig.from_value(value)
    check_time_zone(config.tz)
    return config


def check_time_zone(name: str) -> None:
    """Refuse a time zone name that is not in the IANA database."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise FormatError(
            _("'tz': {name!r} is not a known IANA time zone (for example Asia/Shanghai)").format(
                name=name
            )
        ) from None


def _grades_from_toml(item: Any) -> Any:
    """``[[grades]]`` tables become the genesis form ``[[name, min], ..., [name, nil]]``."""
    if not isinstance(item, list):
        raise FormatError(_("'grades' must be a list of [[grades]] tables"))
    grades: list[list[Any]] = []
    for number, table in enumerate(item, start=1):
        if not isinstance(table, dict):
            raise FormatError(
                _("grade {number} must be a table with 'name' and 'min'").format(number=number)
            )
        unknown = sorted(set(table) - _GRADE_KEYS)
        if unknown:
            raise FormatError(
                _("grade {number}: unknown key(s) {join}").format(
                    number=number, join=", ".join(map(repr, unknown))
                )
            )
        if not isinstance(table.get("name"), str):
            raise FormatError(_("grade {number} needs a 'name' (text)").format(number=number))
        # TOML has no null: "no min" is a missing key, and only the last grade has none.
        last = number == len(item)
        if last and "min" in table:
            raise FormatError(
                _(
                    "the last grade ({table!r}) must have no 'min': it is the grade of everyone "
                    "below the others"
                ).format(table=table["name"])
            )
        if not last and "min" not in table:
            raise FormatError(
                _("grade {number} ({table!r}) needs a 'min'; only the last grade has none").format(
                    number=number, table=table["name"]
                )
            )
        grades.append([table["name"], table.get("min")])
    return grades
