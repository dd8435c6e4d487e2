"""What ``redlist rules list`` and ``redlist keys list`` print: the node's catalogue and
staff list as a table (``redlist.ledger.tables``) or as one JSON object.

Both are the node's word (``GetRules``, ``GetKeys``), read after the node proved its
log with a checkpoint signed by the log key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

from redlist.ledger.i18n import _, pgettext
from redlist.ledger.tables import print_table
from redlist.ledger.text import shown
from redlist.staff.client import RemoteKey, RemoteRule
from redlist.staff.values import ROLE_NAMES


def rule_headers() -> list[str]:
    """The rule table's column headers in the reader's language (``--json`` keeps its
    own English keys, ``rule_json``)."""
    return [
        _("code"),
        _("title"),
        _("points"),
        _("module"),
        # The column says whether a rule needs the council, not who sits on it.
        pgettext("rules table", "council"),
        _("max_qty"),
        _("max_per_month"),
        _("decided"),
        _("status"),
    ]


def key_headers() -> list[str]:
    """The key table's column headers in the reader's language (``key_json``: English)."""
    return [_("key id"), _("name"), _("roles"), _("added at"), _("revoked at")]


def rule_status(rule: RemoteRule) -> str:
    """ "active", or "retired (entry N)", in the reader's language."""
    if rule.active:
        return _("active")
    return _("retired (entry {seq})").format(seq=rule.seq)


def rule_json(rule: RemoteRule) -> dict[str, Any]:
    return {
        "code": rule.code,
        "title": rule.title,
        "points": rule.points,
        "module": rule.module,
        "council": rule.council,
        "max_qty": rule.max_qty,
        "max_per_month": rule.max_per_month,
        "decided": rule.decided or None,
        "active": rule.active,
        "seq": rule.seq,
    }


def print_rules(stream: TextIO, rules: Sequence[RemoteRule]) -> None:
    rows = [
        (
            shown(rule.code),
            shown(rule.title),
            f"{rule.points:+d}",
            shown(rule.module),
            _("yes") if rule.council else _("no"),
            "" if rule.max_qty is None else str(rule.max_qty),
            "" if rule.max_per_month is None else str(rule.max_per_month),
            shown(rule.decided),
            rule_status(rule),
        )
        for rule in rules
    ]
    print_table(stream, rule_headers(), rows)


def key_json(key: RemoteKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id.hex(),
        "public_key": key.public.hex(),
        "name": key.name,
        "roles": list(key.roles),
        "added": key.added,
        "revoked": key.revoked,
        "active": key.revoked is None,
    }


def print_keys(stream: TextIO, keys: Sequence[RemoteKey]) -> None:
    rows = [
        (
            key.key_id.hex(),
            shown(key.name),
            _(", ").join(_(ROLE_NAMES.get(role, role)) for role in key.roles),
            str(key.added),
            "" if key.revoked is None else str(key.revoked),
        )
        for key in keys
    ]
    print_table(stream, key_headers(), rows)


__all__ = [
    "key_headers",
    "key_json",
    "print_keys",
    "print_rules",
    "rule_headers",
    "rule_json",
    "rule_status",
]
