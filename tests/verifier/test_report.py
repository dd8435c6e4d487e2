"""The verifier's output: summaries, statements, JSON and the progress bar."""

from __future__ import annotations

import dataclasses
import io
import json
import re

from tests.verifier.bundles import LogBuilder, standard_log

from redlist.ledger.errors import VerificationError
from redlist.ledger.progress import ProgressBar
from redlist.verifier import report
from redlist.verifier.audit import Auditor
from redlist.verifier.checkwords import advice
from redlist.verifier.failure import Failure, cannot_start_json, failure_json, failure_text
from redlist.verifier.results import AuditResult


def _audit(log: LogBuilder, start: int = 0, account: str | None = None) -> AuditResult:
    text = log.checkpoint()
    left = log.left(start) if start else None
    auditor = Auditor(log.town.log_signer.verifier(), left=left, keep_statements_for=account)
    auditor.check_checkpoint(text)
    for leaf in log.leaves[start:]:
        auditor.feed(leaf)
    return auditor.finish(text)


def test_summary_counts_accounts_per_grade_in_grade_order() -> None:
    text = report.summary_text(_audit(standard_log()))
    table = text[text.index("Accounts by grade") :].splitlines()
    rows = {line.split()[0]: line.split()[-1] for line in table[2:9]}
    assert rows == {"AAA": "1", "AA": "1", "A": "1", "B": "0", "C": "0", "D": "0", "total": "3"}
    assert text.index("res-002") < text.index("res-001") < text.index("res-003")


def test_partial_summary_has_no_table_and_says_why() -> None:
    text = report.summary_text(_audit(standard_log(), start=8))
    assert "Accounts by grade" not in text
    assert "NOT recomputed" in text
    assert "entry 8 to entry 7 could not" in text.replace("\n    ", " ")


def test_statement_falls_back_to_utc_for_an_unknown_zone() -> None:
    result = _audit(standard_log(), account="res-001")
    assert result.config is not None
    odd = dataclasses.replace(result, config=dataclasses.replace(result.config, tz="Mars/Base"))
    text = report.statement_text(odd, "res-001")
    assert "UTC (the town's zone 'Mars/Base' is not known" in text
    assert "2026-01-01 11:00" in text  # entry 11 at 11:00 UTC


def test_statement_of_an_account_without_entries() -> None:
    result = _audit(standard_log(), account="res-404")
    assert "No entry of this log touches this account" in report.statement_text(result, "res-404")


def test_json_shapes() -> None:
    value = report.result_json(_audit(standard_log()))
    assert {"ok", "tree_size", "root", "accounts"} <= set(value)
    assert "statement" not in value
    json.dumps(value)
    failure = failure_json(Failure(VerificationError("chain", "broken", seq=7)))
    error = failure["error"]
    assert (error["seq"], error["check"], error["message"]) == (7, "chain", "broken")
    assert (error["kind"], error["advice"]) == ("tampered", advice("tampered"))
    assert failure["ok"] is False and failure["tree_size"] is None
    cannot = cannot_start_json("no such directory")
    assert cannot["error"]["check"] == "input" and cannot["error"]["kind"] == "cannot-start"
    assert cannot["error"]["message"] == "no such directory"
    json.dumps([failure, cannot])


def test_failure_text_names_entry_and_check() -> None:
    text = failure_text(Failure(VerificationError("overdraw", "too much", seq=12)))
    assert "entry 12" in text and "overdraw" in text and "too much" in text
    assert "breaks a rule of the town" in text
    assert "the log as a whole" in failure_text(Failure(VerificationError("root", "x")))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_rate_and_clears() -> None:
    stream = _Terminal()
    now = [0.0]
    with ProgressBar(stream, "checking", "entries", clock=lambda: now[0]) as bar:
        bar.update(0, 2000)  # t = 0: the first call always draws
        now[0] = 0.05
        bar.update(500, 2000)  # too soon after the last drawing: skipped
        now[0] = 1.0
        bar.update(1000, 2000)
        now[0] = 2.0
        bar.update(2000, 2000)
        out = _plain(stream.getvalue())
        assert "0/2,000 entries" in out
        assert "500/2,000" not in out
        assert "1,000/2,000 entries" in out
        assert "2,000/2,000 entries 1,000/s" in out
    assert stream.getvalue().endswith("\x1b[2K")  # erased: the report starts on a clean line


def _plain(text: str) -> str:
    """``text`` without terminal control sequences (colours, cursor moves)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_statement_shows_an_impossible_date_as_milliseconds() -> None:
    result = _audit(standard_log(), account="res-001")
    assert result.statement is not None
    far = dataclasses.replace(result.statement[0], time=1 << 62)
    odd = dataclasses.replace(result, statement=(far,))
    assert f"{1 << 62} ms" in report.statement_text(odd, "res-001")
