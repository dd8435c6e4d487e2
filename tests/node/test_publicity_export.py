"""``redlist-node export --month``: a month's bundle with its publicity, from real LMDB.

Month boundaries around midnight in Shanghai on a machine in UTC, the CSV's masked names
and notes, no personal data in any exported file, the publication date kept across
exports, and the notice rendered by a real Chromium (headless) on A4.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.node.publicitytown import (
    DECIDED,
    KINDS,
    LEFT_OUT,
    MARCH_NOTE_SHOWN,
    MASKED,
    PublicityTown,
    build,
)
from tests.node.serving import BIN

from redlist.ledger import bundle
from redlist.ledger.log import Log
from redlist.ledger.publicity import decode_csv
from redlist.node.cli import main
from redlist.node.publicity import month_range

NOW = 1_800_000_000_000  # 2027-01-15: every month of the town is over


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> PublicityTown:
    return build(tmp_path_factory.mktemp("publicity") / "data")


def export(town: PublicityTown, out: Path, month: str, *extra: str) -> int:
    return main(["export", "--data", str(town.data), "--out", str(out), "--month", month, *extra])


def test_the_last_second_of_january_in_shanghai_is_january(town: PublicityTown) -> None:
    with Log.open(town.data, readonly=True) as log:
        january = month_range(log, "2026-01", NOW)
        february = month_range(log, "2026-02", NOW)
        march = month_range(log, "2026-03", NOW)
    assert (january.start, january.end) == town.january
    assert (february.start, february.end) == town.february
    assert january.previous is None and january.checkpoint.size == january.end
    assert february.previous is not None and february.previous.size == january.end
    assert march.start == february.end and march.end == march.checkpoint.size


def test_a_month_bundle_starts_where_the_last_ended(town: PublicityTown, tmp_path: Path) -> None:
    assert export(town, tmp_path / "jan", "2026-01") == 0
    assert export(town, tmp_path / "feb", "2026-02") == 0
    jan = bundle.decode_manifest((tmp_path / "jan" / "manifest.json").read_bytes())
    feb = bundle.decode_manifest((tmp_path / "feb" / "manifest.json").read_bytes())
    assert (jan.start, jan.end) == town.january and (feb.start, feb.end) == town.february
    assert not (tmp_path / "jan" / "left").exists()
    assert (tmp_path / "feb" / "previous-checkpoint").read_bytes() == (
        tmp_path / "jan" / "checkpoint"
    ).read_bytes()
    assert sorted(path.name for path in (tmp_path / "feb").iterdir()) == [
        "checkpoint",
        "leaves",
        "left",
        "manifest.json",
        "previous-checkpoint",
        "publicity.csv",
        "publicity.html",
    ]


def test_the_csv_lists_masked_names_and_consented_notes(
    town: PublicityTown, tmp_path: Path
) -> None:
    assert export(town, tmp_path / "jan", "2026-01") == 0
    rows = decode_csv((tmp_path / "jan" / "publicity.csv").read_bytes())
    names = {row.cells["账户"]: row.cells["姓名"] for row in rows}
    assert names == MASKED
    assert not set(LEFT_OUT) & {row.cells["账户"] for row in rows}
    notes = {row.cells["账户"]: row.cells["备注"] for row in rows if row.cells["类型"] == "加分"}
    assert notes["dgc-0001"] == "清理了东边的池塘"  # consent
    assert notes["dgc-0003"] == "" and notes["dgc-0007"] == ""  # statute: no notes
    last = rows[-1]
    assert last.cells["账户"] == "dgc-0004" and last.cells["备注"] == "夜班"
    assert last.cells["累计分"] == "1075" and last.cells["等级"] == "AAA"
    deduction = next(row for row in rows if row.seq == town.deduction)
    assert (deduction.cells["类型"], deduction.cells["分数"]) == ("扣分", "-20")
    assert deduction.cells["累计分"] == "985"


def test_a_note_shows_no_phone_or_id_number_and_masks_the_registers_names(
    town: PublicityTown, tmp_path: Path
) -> None:
    # DESIGN 3.7: a notice never shows ID or phone numbers, nor unmasked names, also
    # where a clerk typed them into a consented note.
    march_texts = tmp_path / "mar-texts.jsonl"
    assert export(town, tmp_path / "mar", "2026-03", "--texts", str(march_texts)) == 0
    rows = decode_csv((tmp_path / "mar" / "publicity.csv").read_bytes())
    assert [row.cells["备注"] for row in rows] == [MARCH_NOTE_SHOWN, ""]  # and the objection
    html = (tmp_path / "mar" / "publicity.html").read_text(encoding="utf-8")
    assert MARCH_NOTE_SHOWN in html
    for secret in ("13912345678", "370681195102021011", "张三"):
        assert secret not in html and secret not in rows[0].cells["备注"]
    # The auditor, given the texts, finds the note is the committed one with parts hidden.
    state = tmp_path / "state.json"
    for month in ("2026-01", "2026-02", "2026-03"):
        out = tmp_path / "mar" if month == "2026-03" else tmp_path / month
        if month != "2026-03":
            assert export(town, out, month) == 0
        texts = ("--texts", str(march_texts)) if month == "2026-03" else ()
        verified = subprocess.run(
            [
                *(BIN / "redlist-verify", "bundle", out, "--log-key", town.log_key),
                *("--state", state, "--publicity", "--json", *texts),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["publicity"]["notes_checked"] == 1


def test_the_notice_lists_the_months_rules_with_the_meeting_that_voted_them(
    town: PublicityTown, tmp_path: Path
) -> None:
    assert export(town, tmp_path / "jan", "2026-01", "--town", " 东港镇 ") == 0
    html = (tmp_path / "jan" / "publicity.html").read_text()
    assert "<h1>东港镇 2026年1月 信用积分公示</h1>" in html
    assert "<title>东港镇 2026年1月 信用积分公示</title>" in html
    # Each village's page may be posted alone: it says whose notice it is, and the deadline.
    villages = html.split('<section class="village">')[1:]
    assert len(villages) == 2
    for page in villages:
        assert page.startswith('\n<p class="meta">东港镇 2026年1月 信用积分公示</p>')
        assert "对本页内容有异议的，请于" in page
    rules = html[html.index("<h2>本月所用积分规则</h2>") :]
    assert "<th>规则名称</th><th>分值（每次）</th>" in rules  # with a column of its own
    pond = rules[rules.index("<td>clean-pond</td>") :]
    assert pond.startswith(
        '<td>clean-pond</td><td>Cleaned the village pond</td><td class="n">+5</td>'
    )
    assert f"<td>{DECIDED}</td>" in pond[: pond.index("</tr>")]
    dispute = rules[rules.index("<td>mediate-dispute</td>") :]
    assert '<td class="n">+20</td>' in dispute[: dispute.index("</tr>")]  # a unit, not qty 3
    assert "<td>—</td>" in dispute[: dispute.index("</tr>")]  # voted, but no text kept
    straw = rules[rules.index("<td>burn-straw</td>") :]
    assert '<td class="n">-' in straw[: straw.index("</tr>")]  # a deduction's are negative
    assert "<td>litter</td>" not in rules  # not used this month


def test_a_town_name_is_checked_and_only_for_a_month(
    town: PublicityTown, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export(town, tmp_path / "a", "2026-01", "--town", "东港\u200b镇") == 2
    assert "--town contains an invisible or control character" in capsys.readouterr().err
    assert export(town, tmp_path / "b", "2026-01", "--town", "镇" * 41) == 2
    assert "--town is longer than 40 characters" in capsys.readouterr().err
    full = ["export", "--data", str(town.data), "--out", str(tmp_path / "c"), "--full"]
    assert main([*full, "--town", "东港镇"]) == 2
    assert "give --month" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_the_csv_and_the_notice_show_people_households_and_organisations_apart(
    town: PublicityTown, tmp_path: Path
) -> None:
    assert export(town, tmp_path / "jan", "2026-01") == 0
    rows = decode_csv((tmp_path / "jan" / "publicity.csv").read_bytes())
    kinds = {row.cells["账户"]: row.cells["账户类型"] for row in rows}
    labels = {"person": "个人", "household": "家庭", "organisation": "组织"}
    assert kinds == {account: labels[KINDS.get(account, "person")] for account in MASKED}
    html = (tmp_path / "jan" / "publicity.html").read_text()
    west = html[html.index("<h2>西村</h2>") :]
    organisations = west[
        west.index("<h3>组织（月末累计分与等级）</h3>") : west.index("<h3>本月明细")
    ]
    assert "阿***·**提" in organisations and "dgc-0007" in organisations
    assert "dgc-0006" not in organisations  # a household is counted with the people
    assert "<th>账户类型</th>" in html


def test_february_lists_the_backdated_deed_and_the_late_correction(
    town: PublicityTown, tmp_path: Path
) -> None:
    assert export(town, tmp_path / "feb", "2026-02") == 0
    rows = {
        row.seq: row.cells for row in decode_csv((tmp_path / "feb" / "publicity.csv").read_bytes())
    }
    first = rows[town.february[0]]
    assert (first["账户"], first["日期"]) == ("dgc-0002", "2026-02-01")
    backdated = rows[town.objection - 1]
    assert (backdated["账户"], backdated["日期"]) == ("dgc-0006", "2026-01-30")
    objection, reversal = rows[town.objection], rows[town.reversal]
    assert (objection["类型"], objection["涉及序号"], objection["分数"]) == (
        "异议",
        str(town.deduction),
        "",
    )
    assert (reversal["类型"], reversal["分数"], reversal["累计分"]) == ("撤销", "+20", "1005")
    html = (tmp_path / "feb" / "publicity.html").read_text()
    assert "对以往公示的更正与异议" in html


#: The files of a bundle that hold text (the others are hashes, signatures and leaves).
TEXT_FILES = (
    "publicity.csv",
    "publicity.html",
    "manifest.json",
    "checkpoint",
    "previous-checkpoint",
)


def test_no_personal_data_in_any_exported_file(town: PublicityTown, tmp_path: Path) -> None:
    for month in ("2026-01", "2026-02", "2026-03"):
        assert export(town, tmp_path / month, month) == 0
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) >= 3 * 6
    for path in files:
        data = path.read_bytes()
        for datum in town.personal_data():
            for encoding in ("utf-8", "gb18030", "utf-16-le"):
                needle = datum.encode(encoding)
                if len(datum) == 1 and path.name not in TEXT_FILES:
                    continue  # two or three bytes turn up by chance in hashes and signatures
                if len(datum) == 1:  # a one-character name shows as the surname and a mask
                    positions = [m.start() for m in re.finditer(re.escape(needle), data)]
                    assert all(
                        data[p + len(needle) : p + len(needle) + 1] == b"*" for p in positions
                    )
                    continue
                assert needle not in data, f"{datum!r} ({encoding}) is in {path}"


def test_a_month_that_is_not_over_or_before_the_log_is_refused(
    town: PublicityTown, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export(town, tmp_path / "future", "2999-01") == 2
    assert "2999-01 has not begun yet in Asia/Shanghai" in capsys.readouterr().err
    assert export(town, tmp_path / "past", "2025-12") == 2
    assert "the log began in 2026-01, after 2025-12" in capsys.readouterr().err
    assert export(town, tmp_path / "bad", "2026-1") == 2
    assert "YYYY-MM" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_first_export_of_a_month_is_its_publication(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = build(tmp_path / "data")
    assert export(town, tmp_path / "one", "2026-01", "--objections-to", "东村村委会") == 0
    record = json.loads((town.data / "publicity" / "2026-01.json").read_text())
    assert (record["start"], record["end"]) == town.january
    out = capsys.readouterr().out
    assert "published today" in out and "to 东村村委会" in out
    assert export(town, tmp_path / "two", "2026-01") == 0
    assert "first published earlier" in capsys.readouterr().out
    assert json.loads((town.data / "publicity" / "2026-01.json").read_text()) == record
    one = (tmp_path / "one" / "publicity.html").read_text()
    assert "东村村委会" in one


def test_a_draft_previews_a_month_not_over_and_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = build(tmp_path / "data")
    assert export(town, tmp_path / "draft", "2999-01", "--draft") == 2
    assert "2999-01 has not begun yet" in capsys.readouterr().err
    assert export(town, tmp_path / "jan", "2026-01", "--draft") == 0
    out = capsys.readouterr().out
    assert "draft: a preview marked 草稿, not a publication" in out
    assert "objections until" not in out
    assert not (town.data / "publicity").exists()  # no objection window started
    html = (tmp_path / "jan" / "publicity.html").read_text()
    assert "公示（草稿）" in html and "不是正式公示" in html
    assert '<div class="draft-mark" aria-hidden="true">草稿　不得张贴</div>' in html  # each page
    assert (
        html.count("<p><strong>草稿：仅供核对，不是正式公示，不得张贴。</strong></p>") == 2
    )  # a village each
    assert "对本页内容有异议的" not in html  # a draft starts no window
    # The real publication afterwards starts the window as if the draft never was.
    assert export(town, tmp_path / "published", "2026-01") == 0
    assert "published today" in capsys.readouterr().out
    assert (town.data / "publicity" / "2026-01.json").is_file()
    published = (tmp_path / "published" / "publicity.csv").read_bytes()
    assert (tmp_path / "jan" / "publicity.csv").read_bytes() == published


def test_draft_needs_a_month(town: PublicityTown, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["export", "--data", str(town.data), "--out", "x", "--full", "--draft"]
    assert main(argv) == 2
    assert "--draft previews a month's publicity" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The notice in a real browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Appended to a copy of the notice: writes whether the page fits its width into the DOM.
PROBE = (
    "<script>window.addEventListener('load', () => { document.body.dataset.fits = "
    "String(document.documentElement.scrollWidth <= window.innerWidth); "
    "document.body.dataset.width = String(document.documentElement.scrollWidth); });</script>"
)
A4_WIDTH_PX = 794  # 210 mm at 96 px per inch


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/install-browser installs it in CI")
        pytest.skip("chromium is not installed (.ci/install-browser installs it as root)")
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={A4_WIDTH_PX},1123",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_the_notice_renders_in_chromium_on_a4(town: PublicityTown, tmp_path: Path) -> None:
    assert export(town, tmp_path / "feb", "2026-02") == 0
    notice = tmp_path / "feb" / "publicity.html"
    probe = tmp_path / "probe.html"
    probe.write_text(notice.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    assert 'data-fits="true"' in dom, re.findall(r'data-width="\d+"', dom)
    for text in ("2026年2月 信用积分公示", "东村", "西村", "红榜", "黑榜", "欧**娜", "张*"):
        assert text in dom
    assert "redlist-verify bundle feb --log-key " + town.log_key in dom
    pdf = tmp_path / "notice.pdf"
    _chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", notice.as_uri())
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert 3 <= pages <= 8  # the header, then each village from a new page
    assert b"CJK" in data  # the Chinese text is set in a CJK font (fonts-noto-cjk)
    screenshot = tmp_path / "notice.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", notice.as_uri())
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot of the notice: {screenshot}; PDF ({pages} pages): {pdf}")


def test_a_month_without_entries_is_said_so(
    town: PublicityTown, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert export(town, tmp_path / "apr", "2026-04") == 0
    out = capsys.readouterr().out
    assert "exported no entries (there are none)" in out and "seq" not in out.split("\n")[0]
    html = (tmp_path / "apr" / "publicity.html").read_text(encoding="utf-8")
    assert "本月日志没有新的记录" in html and "至 -1" not in html
