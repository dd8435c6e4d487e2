"""What the verifier prints: a plain-words summary, a resident's statement, or JSON.

Everything here turns an ``AuditResult`` (or a failure) into text or plain values;
nothing is checked here. Dates are shown in the town's time zone from the genesis
configuration.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redlist.ledger.policy import PolicyVerdict
from redlist.ledger.text import shown
from redlist.verifier.results import AuditResult, StatementLine

#: How many accounts the summary lists under "Highest scores".
TOP_ACCOUNTS = 5
#: Prose lines are wrapped at this width.
WIDTH = 88


def summary_text(result: AuditResult, witnesses: PolicyVerdict | None = None) -> str:
    """The human report of a successful audit: what was checked (with the witnesses that
    vouched for the checkpoint, when a policy asked for them), then the accounts by grade."""
    lines = [f"Verified: log {result.origin}", ""]
    sentences = _what_was_checked(result)
    if witnesses is not None:
        sentences.append(_witness_sentence(witnesses))
    for sentence in sentences:
        lines.extend(
            textwrap.wrap(sentence.strip(), WIDTH, initial_indent="  ", subsequent_indent="    ")
        )
    if result.balances_recomputed and result.config is not None:
        lines.append("")
        lines.extend(_grade_table(result))
        lines.extend(_top_accounts(result))
    return "\n".join(lines) + "\n"


def _count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 entry``, ``2 entries``: a count with its noun in the right number."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def _what_was_checked(result: AuditResult) -> list[str]:
    checkpoint = result.checkpoint
    lines: list[str] = []
    if result.balances_recomputed:
        signatures = (
            f"every signature valid ({_count(result.signatures_checked, 'signature')})"
            if result.signatures_checked
            else "no signatures to check"
        )
        lines.append(
            f"  Checked {_count(result.entries, 'entry', 'entries')}, "
            f"{_count(result.staff_keys, 'staff key')}, {_count(result.rules, 'rule')}; "
            f"{signatures}."
        )
        lines.append(
            "  Every entry follows the town's rules (signer roles, revocations, council "
            "quorum, active rules, no overdraw, no double reversal, unique ids)."
        )
        lines.append(
            "  Every entry links to the one before it by hash; the node's times never go back."
        )
    else:
        last = checkpoint.size - 1
        lines.append(
            f"  Checked entries {result.start:,} to {last:,} "
            f"({_count(result.entries, 'entry', 'entries')}): "
            "format, order, times, hash chain and log name."
        )
        if not result.first_prev_checked:
            lines.append(
                f"  The link of entry {result.start:,} to entry {result.start - 1:,} could not "
                "be checked: that entry is not in this bundle."
            )
        lines.append(
            f"  Signatures and balances were NOT recomputed: they depend on every entry since "
            f"the genesis, and this bundle starts at entry {result.start:,}. Verify a full "
            "bundle to recompute them."
        )
    lines.append(
        f"  Merkle root {checkpoint.root.hex()} matches the checkpoint of "
        f"{_count(checkpoint.size, 'entry', 'entries')} signed by {checkpoint.origin}."
    )
    for head in result.trusted_heads:
        lines.append(
            f"  The log extends the checkpoint of {_count(head.size, 'entry', 'entries')} held "
            f"in {head.source}."
        )
    return lines


def _witness_sentence(verdict: PolicyVerdict) -> str:
    if not verdict.cosigned:
        return "  The witness policy asks for no cosignature; none was required."
    vouched = ", ".join(
        f"{shown(name)} ({_cosignature_time(time)})" for name, time in verdict.cosigned.items()
    )
    return f"  The checkpoint meets the witness policy; vouched for by {vouched}."


def _cosignature_time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, ValueError, OSError):  # a time no calendar can show
        return f"time {seconds}"


def _grade_table(result: AuditResult) -> list[str]:
    config = result.config
    if config is None:
        return []
    counts = {grade.name: 0 for grade in config.grades}
    for summary in result.accounts.values():
        counts[summary.grade] += 1
    width = max([5, *(len(name) for name in counts)])
    lines = [
        f"Accounts by grade (base score {config.base:,}):",
        f"  {'grade':<{width}}  {'from':>7}  {'accounts':>8}",
    ]
    for grade in config.grades:
        minimum = f"{grade.min:,}" if grade.min is not None else "-"
        lines.append(f"  {grade.name:<{width}}  {minimum:>7}  {counts[grade.name]:>8,}")
    lines.append(f"  {'total':<{width}}  {'':>7}  {len(result.accounts):>8,}")
    return lines


def _top_accounts(result: AuditResult) -> list[str]:
    if not result.accounts:
        return []
    ranked = sorted(result.accounts.items(), key=lambda item: (-item[1].score, item[0]))
    width = max(len(account) for account, _ in ranked[:TOP_ACCOUNTS])
    lines = ["", "Highest scores:"]
    for account, summary in ranked[:TOP_ACCOUNTS]:
        lines.append(
            f"  {account:<{width}}  {summary.score:>7,}  {summary.grade:<4}  "
            f"spendable {summary.spendable:,}"
        )
    return lines


def statement_text(result: AuditResult, account: str) -> str:
    """One resident's statement: every entry that touched the account, with running totals."""
    config = result.config
    if not result.balances_recomputed or result.statement is None or config is None:
        return (
            f"No statement for account {account}: this bundle does not start at the genesis, "
            "so balances were not recomputed.\n"
        )
    zone, zone_name = _zone(config.tz)
    lines = [f"Statement of account {account} (log {result.origin}; times in {zone_name})"]
    if not result.statement:
        lines.append("  No entry of this log touches this account.")
        return "\n".join(lines) + "\n"
    rows = [_statement_row(line, zone) for line in result.statement]
    header = ("seq", "date", "entry", "rule", "points", "score", "spendable", "signed by")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(7)]
    right = {0, 4, 5, 6}
    for row in [header, *rows]:
        cells = [
            row[column].rjust(widths[column])
            if column in right
            else row[column].ljust(widths[column])
            for column in range(7)
        ]
        lines.append("  " + "  ".join(cells) + "  " + row[7])
    summary = result.accounts.get(account)
    if summary is not None:
        lines.append(
            f"  Now: score {summary.score:,} (grade {summary.grade}), spendable "
            f"{summary.spendable:,}, redeemed {summary.redeemed:,}."
        )
    return "\n".join(lines) + "\n"


def _statement_row(line: StatementLine, zone: tzinfo) -> tuple[str, ...]:
    when = _date(line.time, zone)
    if line.kind == "redeem":
        change = f"-{line.redeemed:,} spent"
    elif line.kind == "reverse" and line.redeemed:
        change = f"+{-line.redeemed:,} refund"
    elif line.points:
        change = f"{line.points:+,}"
    else:
        change = "0"
    entry = line.kind if line.target is None else f"{line.kind} of {line.target}"
    return (
        str(line.seq),
        when,
        entry,
        shown(line.rule or ""),
        change,
        f"{line.score:,}",
        f"{line.spendable:,}",
        shown(", ".join(line.signers)),
    )


def _date(time_ms: int, zone: tzinfo) -> str:
    try:
        return datetime.fromtimestamp(time_ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):  # a time no calendar can show
        return f"{time_ms} ms"


def _zone(name: str) -> tuple[tzinfo, str]:
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError):
        return UTC, f"UTC (the town's zone {name!r} is not known on this computer)"


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
