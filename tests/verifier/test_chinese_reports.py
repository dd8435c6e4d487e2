"""``redlist-verify`` speaks Chinese in a Chinese locale and English with ``--lang en``
(docs/adr/0034): failure reports, summaries, statements and errors; ``--json`` is the
same in both languages. Run as an auditor runs it: the installed program, a real
subprocess, the golden bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from tests.verifier.test_failure_reports import GOLDEN, golden_with_a_flipped_signature

from redlist.ledger import i18n

BIN = Path(sys.executable).parent
LOG_KEY = str(GOLDEN / "log.pub")


def _verify(*argv: str, lang: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key not in i18n.LOCALE_VARIABLES}
    return subprocess.run(
        [str(BIN / "redlist-verify"), *argv],
        env={**environ, "LANG": lang},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict[str, object]]:
    """The golden bundle with a flipped bit in an award's signature, its seq, and what
    ``--json`` says about the award (read in English, under the C locale)."""
    directory, seq = golden_with_a_flipped_signature(tmp_path_factory.mktemp("golden"))
    result = _verify("bundle", str(directory), "--log-key", LOG_KEY, "--json", lang="C.UTF-8")
    assert result.returncode == 1, result.stderr
    entry = json.loads(result.stdout)["error"]["entry"]
    return directory, seq, entry


def test_a_tampered_bundle_is_reported_in_chinese_naming_resident_seq_and_tampering(
    tampered: tuple[Path, int, dict[str, object]],
) -> None:
    directory, seq, entry = tampered
    result = _verify("bundle", str(directory), "--log-key", LOG_KEY, lang="zh_CN.UTF-8")
    assert result.returncode == 1 and result.stderr == ""
    out = result.stdout
    assert out.startswith("核验未通过：数据在签名后被改动（篡改或损坏）。")
    flat = "".join(out.split())
    assert f"位置：序号{seq}的条目" in flat
    assert "检查项：signature（篡改）" in flat  # the check's name stays English
    assert "含义：签名与条目内容不符" in flat
    assert f"居民：账户{entry['account']}" in flat
    title = "".join(str(entry["rule_title"]).split())
    assert f"规则{entry['rule']}“{title}”" in flat
    year, month, day = (int(part) for part in str(entry["deed_date"]).split("-"))
    assert f"事迹日期{year}年{month}月{day}日" in flat
    assert "被改动的条目现在的内容（并非签名时的内容）" in flat
    assert "处理意见：请勿采信这些数字。" in flat
    assert "VERIFICATION FAILED" not in out and "Resident" not in out
    # Wrapped by the columns a Chinese character takes: two each.
    assert max(cell_len(line) for line in out.splitlines()) <= 88, out


def test_lang_en_gives_the_english_report_in_a_chinese_locale(
    tampered: tuple[Path, int, dict[str, object]],
) -> None:
    directory, seq, entry = tampered
    argv = ("bundle", str(directory), "--log-key", LOG_KEY, "--lang", "en")
    result = _verify(*argv, lang="zh_CN.UTF-8")
    assert result.returncode == 1
    flat = " ".join(result.stdout.split())
    assert result.stdout.startswith("VERIFICATION FAILED: The data was changed after it was signed")
    assert f"where: entry {seq}" in flat and "check: signature (tampered)" in flat
    assert f"Resident: account {entry['account']}" in flat
    assert f"deed of {entry['deed_date']}" in flat
    assert "核验" not in result.stdout and "居民" not in result.stdout


def test_json_is_the_same_in_both_languages_and_its_stderr_is_english(
    tampered: tuple[Path, int, dict[str, object]],
) -> None:
    directory, _seq, _entry = tampered
    argv = ("bundle", str(directory), "--log-key", LOG_KEY, "--json")
    chinese = _verify(*argv, lang="zh_CN.UTF-8")
    english = _verify(*argv, "--lang", "en", lang="zh_CN.UTF-8")
    forced = _verify(*argv, "--lang", "zh_CN", lang="C.UTF-8")
    assert chinese.returncode == english.returncode == forced.returncode == 1
    assert chinese.stdout == english.stdout == forced.stdout
    error = json.loads(chinese.stdout)["error"]
    assert (error["check"], error["kind"]) == ("signature", "tampered")
    assert error["advice"] in chinese.stderr and "verification failed (tampered)" in chinese.stderr
    assert chinese.stderr == english.stderr


def test_a_verified_bundle_summary_and_statement_are_chinese() -> None:
    expected = json.loads((GOLDEN / "full.verify.json").read_text(encoding="utf-8"))
    account = sorted(expected["accounts"])[0]
    argv = ("bundle", str(GOLDEN / "full"), "--log-key", LOG_KEY, "--account", account)
    result = _verify(*argv, lang="zh_CN.UTF-8")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("核验通过：日志 ")
    assert "每条记录都符合本镇规则" in out and "各等级账户数（基础分" in out
    assert f"账户 {account} 的对账单" in out and "可兑换积分" in out and "目前：积分" in out
    english = _verify(*argv, "--lang", "en", lang="zh_CN.UTF-8")
    assert english.stdout.startswith("Verified: log ") and f"Statement of account {account}" in (
        english.stdout
    )
    as_json = _verify(*argv, "--json", lang="zh_CN.UTF-8")
    assert as_json.stdout == _verify(*argv, "--json", lang="C.UTF-8").stdout


def test_an_error_that_stops_the_check_is_chinese_and_its_json_english(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = _verify("bundle", str(GOLDEN / "full"), lang="zh_CN.UTF-8")
    assert result.returncode == 2
    assert result.stderr.startswith("redlist-verify：无法核验：没有日志公钥")
    gone = _verify("bundle", str(missing), "--log-key", LOG_KEY, lang="zh_CN.UTF-8")
    assert gone.returncode == 2
    assert gone.stderr == f"redlist-verify：无法核验：{missing} 不是目录（应为数据包）\n"
    as_json = _verify("bundle", str(GOLDEN / "full"), "--json", lang="zh_CN.UTF-8")
    error = json.loads(as_json.stdout)["error"]
    assert error["kind"] == "cannot-start" and error["message"].startswith("no log key")
