"""What the verifier prints: a plain-words summary, a resident's statement, or JSON.

Everything here turns an ``AuditResult`` (or a failure) into text or plain values;
nothing is checked here. Dates are shown in the town's time zone from the genesis
configuration.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from redlist.ledger.deeddate import known_zone
from redlist.ledger.i18n import N_, _, ngettext
from redlist.ledger.policy import PolicyVerdict
from redlist.ledger.tables import wrap_text
from redlist.ledger.text import shown
from redlist.verifier.results import AuditResult, StatementLine

#: How many accounts the summary lists under "Highest scores".
TOP_ACCOUNTS = 5
#: Prose lines are wrapped at this width.
WIDTH = 88
#: The kinds of entry as a statement names them.
_ENTRY_KINDS = {
    "genesis": N_("genesis"),
    "key": N_("key"),
    "rule": N_("rule"),
    "award": N_("award"),
    "redeem": N_("redeem"),
    "objection": N_("objection"),
    "reverse": N_("reverse"),
}


def summary_text(result: AuditResult, witnesses: PolicyVerdict | None = None) -> str:
    """The human report of a successful audit: what was checked (with the witnesses that
    vouched for the checkpoint, when a policy asked for them), then the accounts by grade."""
    lines = [_("Verified: log {origin}").format(origin=result.origin), ""]
    sentences = _what_was_checked(result)
    if witnesses is not None:
        sentences.append(_witness_sentence(witnesses))
    for sentence in sentences:
        lines.extend(
            wrap_text(sentence.strip(), WIDTH, initial_indent="  ", subsequent_indent="    ")
        )
    if result.balances_recomputed and result.config is not None:
        lines.append("")
        lines.extend(_grade_table(result))
        lines.extend(_top_accounts(result))
    return "\n".join(lines) + "\n"


def _entries(number: int) -> str:
    """``1 entry``, ``2 entries``: a count of entries in the right number."""
    return ngettext("{count} entry", "{count} entries", number).format(count=f"{number:,}")


def _what_was_checked(result: AuditResult) -> list[str]:
    checkpoint = result.checkpoint
    lines: list[str] = []
    if result.balances_recomputed:
        signatures = (
            ngettext(
                "every signature valid ({count} signature)",
                "every signature valid ({count} signatures)",
                result.signatures_checked,
            ).format(count=f"{result.signatures_checked:,}")
            if result.signatures_checked
            else _("no signatures to check")
        )
        lines.append(
            _("Checked {entries}, {keys}, {rules}; {signatures}.").format(
                entries=_entries(result.entries),
                keys=ngettext("{count} staff key", "{count} staff keys", result.staff_keys).format(
                    count=f"{result.staff_keys:,}"
                ),
                rules=ngettext("{count} rule", "{count} rules", result.rules).format(
                    count=f"{result.rules:,}"
                ),
                signatures=signatures,
            )
        )
        lines.append(
            _(
                "Every entry follows the town's rules (signer roles, revocations, council "
                "quorum, active rules, no redemption beyond the points spendable, no double "
                "reversal, unique ids)."
            )
        )
        lines.append(
            _("Every entry links to the one before it by hash; the node's times never go back.")
        )
    else:
        last = checkpoint.size - 1
        lines.append(
            _(
                "Checked entries {start} to {last} ({entries}): format, order, times, hash "
                "chain and log name."
            ).format(start=f"{result.start:,}", last=f"{last:,}", entries=_entries(result.entries))
        )
        if not result.first_prev_checked:
            lines.append(
                _(
                    "The link of entry {start} to entry {previous} could not be checked: that "
                    "entry is not in this bundle."
                ).format(start=f"{result.start:,}", previous=f"{result.start - 1:,}")
            )
        lines.append(
            _(
                "Signatures and balances were NOT recomputed: they depend on every entry since "
                "the genesis, and this bundle starts at entry {start}. Verify a full bundle to "
                "recompute them."
            ).format(start=f"{result.start:,}")
        )
    lines.append(
        _("Merkle root {root} matches the checkpoint of {entries} signed by {origin}.").format(
            root=checkpoint.root.hex(), entries=_entries(checkpoint.size), origin=checkpoint.origin
        )
    )
    for head in result.trusted_heads:
        lines.append(
            _("The log extends the checkpoint of {entries} held in {source}.").format(
                entries=_entries(head.size), source=_(head.source)
            )
        )
    return lines


def _witness_sentence(verdict: PolicyVerdict) -> str:
    if not verdict.cosigned:
        return _("The witness policy asks for no cosignature; none was required.")
    vouched = _(", ").join(
        _("{witness} ({time})").format(witness=shown(name), time=_cosignature_time(time))
        for name, time in verdict.cosigned.items()
    )
    return _("The checkpoint meets the witness policy; vouched for by {witnesses}.").format(
        witnesses=vouched
    )


def _cosignature_time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, ValueError, OSError):  # a time no calendar can show
        return _("time {seconds}").format(seconds=seconds)


def _grade_table(result: AuditResult) -> list[str]:
    config = result.config
    if config is None:
        return []
    counts = {grade.name: 0 for grade in config.grades}
    for summary in result.accounts.values():
        counts[summary.grade] += 1
    rows = [(_("grade"), _("from"), _("accounts"))]
    for grade in config.grades:
        minimum = f"{grade.min:,}" if grade.min is not None else "-"
        rows.append((grade.name, minimum, f"{counts[grade.name]:,}"))
    rows.append((_("total"), "", f"{len(result.accounts):,}"))
    widths = [max(_width(row[column]) for row in rows) for column in range(3)]
    lines = [_("Accounts by grade (base score {base}):").format(base=f"{config.base:,}")]
    for name, minimum, count in rows:
        lines.append(
            "  "
            + _pad(name, max(widths[0], 5))
            + "  "
            + _pad(minimum, max(widths[1], 7), right=True)
            + "  "
            + _pad(count, max(widths[2], 8), right=True)
        )
    return lines


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    space = " " * max(0, width - _width(text))
    return space + text if right else text + space


def _top_accounts(result: AuditResult) -> list[str]:
    if not result.accounts:
        return []
    ranked = sorted(result.accounts.items(), key=lambda item: (-item[1].score, item[0]))
    width = max(len(account) for account, _ in ranked[:TOP_ACCOUNTS])
    lines = ["", _("Highest scores:")]
    for account, summary in ranked[:TOP_ACCOUNTS]:
        spendable = _("spendable {points}").format(points=f"{summary.spendable:,}")
        lines.append(f"  {account:<{width}}  {summary.score:>7,}  {summary.grade:<4}  {spendable}")
    return lines


def statement_text(result: AuditResult, account: str) -> str:
    """One resident's statement: every entry that touched the account, with running totals."""
    config = result.config
    if not result.balances_recomputed or result.statement is None or config is None:
        return (
            _(
                "No statement for account {account}: this bundle does not start at the "
                "genesis, so balances were not recomputed."
            ).format(account=account)
            + "\n"
        )
    zone, zone_name = _zone(config.tz)
    lines = [
        _("Statement of account {account} (log {origin}; times in {zone})").format(
            account=account, origin=result.origin, zone=zone_name
        )
    ]
    if not result.statement:
        lines.append("  " + _("No entry of this log touches this account."))
        return "\n".join(lines) + "\n"
    rows = [_statement_row(line, zone) for line in result.statement]
    header = tuple(
        _(word)
        for word in (
            N_("seq"),
            N_("date"),
            N_("kind"),
            N_("rule"),
            N_("points"),
            N_("score"),
            N_("spendable"),
            N_("signed by"),
        )
    )
    widths = [max(_width(row[column]) for row in [header, *rows]) for column in range(7)]
    right = {0, 4, 5, 6}
    for row in [header, *rows]:
        cells = [_pad(row[column], widths[column], right=column in right) for column in range(7)]
        lines.append("  " + "  ".join(cells) + "  " + row[7])
    summary = result.accounts.get(account)
    if summary is not None:
        lines.append(
            "  "
            + _(
                "Now: score {score} (grade {grade}), spendable {spendable}, redeemed {redeemed}."
            ).format(
                score=f"{summary.score:,}",
                grade=summary.grade,
                spendable=f"{summary.spendable:,}",
                redeemed=f"{summary.redeemed:,}",
            )
        )
    return "\n".join(lines) + "\n"


def _statement_row(line: StatementLine, zone: tzinfo) -> tuple[str, ...]:
    when = _date(line.time, zone)
    if line.kind == "redeem":
        change = _("-{points} spent").format(points=f"{line.redeemed:,}")
    elif line.kind == "reverse" and line.redeemed:
        change = _("+{points} refund").format(points=f"{-line.redeemed:,}")
    elif line.points:
        change = f"{line.points:+,}"
    else:
        change = "0"
    kind = _(_ENTRY_KINDS.get(line.kind, line.kind))
    entry = (
        kind
        if line.target is None
        else _("{kind} of {target}").format(kind=kind, target=line.target)
    )
    return (
        str(line.seq),
        when,
        entry,
        shown(line.rule or ""),
        change,
        f"{line.score:,}",
        f"{line.spendable:,}",
        shown(_(", ").join(line.signers)),
    )


def _date(time_ms: int, zone: tzinfo) -> str:
    try:
        return datetime.fromtimestamp(time_ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):  # a time no calendar can show
        return _("{time_ms} ms").format(time_ms=time_ms)


def _zone(name: str) -> tuple[tzinfo, str]:
    zone = known_zone(name)
    if zone is not None:
        return zone, name
    return UTC, _("UTC (the town's zone {name!r} is not known on this computer)").format(name=name)


def result_json(
    result: AuditResult, account: str | None = None, witnesses: PolicyVerdict | None = None
) -> dict[str, Any]:
    """The ``--json`` object of a successful audit (DESIGN 5); with a witness policy,
    ``witnesses`` maps each witness that cosigned to its cosignature time (POSIX s)."""
    value: dict[str, Any] = {
        "ok": True,
        "origin": result.origin,
        "tree_size": result.tree_size,
        "root": result.root.hex(),
        "start": result.start,
        "balances_recomputed": result.balances_recomputed,
        "accounts": {
            name: {
                "score": summary.score,
                "spendable": summary.spendable,
                "redeemed": summary.redeemed,
                "grade": summary.grade,
            }
            for name, summary in result.accounts.items()
        },
    }
    if account is not None:
        value["statement"] = _statement_json(result.statement)
    if witnesses is not None:
        value["witnesses"] = dict(witnesses.cosigned)
    return value


def _statement_json(statement: Sequence[StatementLine] | None) -> list[dict[str, Any]] | None:
    if statement is None:
        return None
    return [
        {
            "seq": line.seq,
            "time": line.time,
            "kind": line.kind,
            "rule": line.rule,
            "points": line.points,
            "redeemed": line.redeemed,
            "target": line.target,
            "signers": list(line.signers),
            "score": line.score,
            "spendable": line.spendable,
        }
        for line in statement
    ]


__all__ = [
    "TOP_ACCOUNTS",
    "result_json",
    "statement_text",
    "summary_text",
]
