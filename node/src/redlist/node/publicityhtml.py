"""``publicity.html``: the month's notice for the village board, printable on A4.

One self-contained page of HTML (no script, no external file): the 公示 heading, the
period, the objection deadline and where to object, the month's totals, the late
corrections of earlier months, then per village its grade summary, 红榜 (residents at
the top grade), 黑榜 (the month's deductions that stand) and every listed entry, and
last the signed checkpoint with the exact command that verifies the bundle. Each
village starts on a new page when printed. Text is escaped; long strings (the log key,
the checkpoint) wrap anywhere, so nothing runs off the paper.

Names appear only masked, as in ``publicity.csv``; the page shows nothing the CSV does
not, apart from counts and lists computed from the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape

from redlist.ledger import months
from redlist.ledger.deeddate import day_of, log_zone
from redlist.ledger.publicity import (
    AWARD,
    BLACK_HEADERS,
    DEDUCTION,
    OBJECTION,
    REVERSAL,
    late,
    objection_cell,
    objections_by_target,
)
from redlist.ledger.residents import KIND_LABELS
from redlist.node.publicity import Listed, Publicity, VillageNotice

FONT_STACK = (
    '"Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Micro Hei", '
    '"WenQuanYi Zen Hei", SimSun, sans-serif'
)

_STYLE = f"""
@page {{ size: A4; margin: 14mm 12mm; }}
html {{ font-family: {FONT_STACK}; font-size: 10pt; color: #000; }}
body {{ margin: 0 auto; max-width: 186mm; padding: 0 2mm; }}
h1 {{ text-align: center; font-size: 20pt; margin: 0 0 2mm; letter-spacing: 0.2em; }}
h2 {{ font-size: 14pt; border-bottom: 2px solid #b00; margin: 6mm 0 2mm; }}
h3 {{ font-size: 11pt; margin: 4mm 0 1mm; }}
p {{ margin: 1mm 0; }}
.meta {{ text-align: center; }}
.notice {{ border: 1px solid #b00; padding: 2mm 3mm; margin: 3mm 0; }}
table {{ width: 100%; border-collapse: collapse; table-layout: fixed; font-size: 8.5pt; }}
th, td {{ border: 1px solid #555; padding: 1px 3px; overflow-wrap: anywhere;
  vertical-align: top; }}
th {{ background: #eee; }}
thead {{ display: table-header-group; }}
tr {{ break-inside: avoid; }}
td.n {{ text-align: right; }}
.red h3 {{ color: #b00; }}
pre, code {{ font-family: "Noto Sans Mono CJK SC", monospace; font-size: 8pt;
  white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-all; }}
pre {{ border: 1px solid #999; padding: 2mm; margin: 1mm 0; }}
section.village {{ break-before: page; }}
h2, h3 {{ break-after: avoid; }}
.keep {{ break-inside: avoid; }}
.draft-mark {{ position: fixed; top: 42%; left: 0; right: 0; text-align: center;
  font-size: 44pt; font-weight: bold; color: rgba(176, 0, 0, 0.2);
  transform: rotate(-30deg); pointer-events: none; z-index: 10; }}
"""

#: On every printed page of a draft (``position: fixed`` repeats on each page).
_DRAFT_MARK = '<div class="draft-mark" aria-hidden="true">草稿　不得张贴</div>'

_DETAIL = (
    ("日期", 15),
    ("姓名", 11),
    ("账户", 13),
    ("账户类型", 8),
    ("类型", 7),
    ("规则名称", 22),
    ("分数", 8),
    ("累计分", 9),
    ("等级", 7),
    ("登记人", 18),
    ("序号", 8),
    ("涉及", 8),
    ("备注", 18),
)


def render(
    publicity: Publicity,
    *,
    bundle_name: str,
    log_key: str,
    decided: Mapping[str, str] | None = None,
) -> str:
    """The notice's HTML text. ``bundle_name`` is what the verify command names;
    ``decided``: by rule code, the meeting that voted the rule (shown for the month's
    rules, so residents see that the catalogue was voted and when)."""
    title = _heading(publicity)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width">',
        f"<title>{title if publicity.town else _e(publicity.origin) + ' ' + title}</title>",
        f"<style>{_STYLE}</style></head><body>",
        # Printed on every page (a fixed element repeats on each): no page of a draft
        # can be posted as if it were the publication.
        *(
            ['<div class="draft-mark" aria-hidden="true">草稿　不得张贴</div>']
            if publicity.draft
            else []
        ),
        f"<h1>{title}</h1>",
        *_header(publicity),
        *_totals(publicity),
        *_corrections(publicity),
    ]
    for village in publicity.villages:
        parts.extend(_village(publicity, village))
    parts.extend(_rules(publicity, decided or {}))
    parts.extend(_verification(publicity, bundle_name, log_key))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _heading(publicity: Publicity) -> str:
    """The notice's title, as HTML: the town (when named), the month, draft or not."""
    year, month = months.parse_month(publicity.month)
    title = f"{year}年{month}月 信用积分公示" + ("（草稿）" if publicity.draft else "")
    return f"{_e(publicity.town)} {title}" if publicity.town else title


def _rules(publicity: Publicity, decided: Mapping[str, str]) -> list[str]:
    """The rules this month's entries were made under, with the meeting that voted each."""
    used: dict[str, str] = {}
    for item in publicity.listed:
        if item.entry.rule and item.entry.rule not in used:
            used[item.entry.rule] = item.entry.title
    if not used:
        return []
    points = dict(publicity.rule_points)
    rows = "".join(
        f"<tr><td>{_e(code)}</td><td>{_e(title)}</td>"
        f'<td class="n">{_unit_points(points.get(code))}</td>'
        f"<td>{_e(decided.get(code, '—'))}</td></tr>"
        for code, title in sorted(used.items())
    )
    return [
        "<h2>本月所用积分规则</h2>",
        '<table class="rules"><colgroup><col style="width:20%"><col style="width:34%">'
        '<col style="width:12%"><col style="width:34%"></colgroup>'
        "<thead><tr><th>规则代码</th><th>规则名称</th><th>分值（每次）</th>"
        f"<th>表决（会议及日期）</th></tr></thead><tbody>{rows}</tbody></table>",
    ]


def _unit_points(points: int | None) -> str:
    """A rule's points a unit, signed (a deduction's are negative); — when unknown."""
    return "—" if points is None else f"{points:+d}"


def _covered(start: int, end: int, size: int) -> str:
    """Which entries of the log the notice lists, and the checkpoint that covers them."""
    if end == start:
        return f"<p>本月日志没有新的记录；日志此时共 {size} 条，由以下签名检查点覆盖：</p>"
    return (
        f"<p>本公示所列记录为日志第 {start} 至 {end - 1} 条（共 {end - start} 条），"
        f"由以下签名检查点覆盖（树大小 {size}）：</p>"
    )


def _header(publicity: Publicity) -> list[str]:
    config = publicity.config
    last = months.last_day(publicity.month)
    published = day_of(publicity.published_ms, log_zone(config.tz))
    if publicity.draft:
        return [
            f'<p class="meta">{_e(publicity.origin)}　·　本期记录：{last.year}年{last.month}月1日'
            f"至{_cn(published)}（{_e(config.tz)}）</p>",
            '<div class="notice">',
            "<p><strong>草稿：本月尚未结束，本页仅供核对，不是正式公示，不得张贴。</strong>"
            "公示期自月末后正式导出之日起计算。</p>",
            "<p>姓名按惯例隐去部分字符；未取得公示依据（本人同意或法律规定）的居民不予公示。</p>",
            "</div>",
        ]
    return [
        f'<p class="meta">{_e(publicity.origin)}　·　本期记录：{last.year}年{last.month}月1日至'
        f"{last.month}月{last.day}日（{_e(config.tz)}）</p>",
        '<div class="notice">',
        f"<p>公示期：{_cn(published)}至{_cn(publicity.deadline)}，共{config.publicity_days}天。</p>",
        f"<p>对公示内容有异议的，请于<strong>{_cn(publicity.deadline)}</strong>前向"
        f"<strong>{_e(publicity.objections_to)}</strong>提出，并说明所涉记录的序号。"
        "逾期提出的异议，由村民委员会按规定复核，更正结果在下月公示。</p>",
        "<p>姓名按惯例隐去部分字符；未取得公示依据（本人同意或法律规定）的居民不予公示。</p>",
        "</div>",
    ]


def _totals(publicity: Publicity) -> list[str]:
    entries = [item.entry for item in publicity.listed]
    awards = [e for e in entries if e.kind == AWARD]
    deductions = [e for e in entries if e.kind == DEDUCTION]
    objections = [e for e in entries if e.kind == OBJECTION]
    reversals = [e for e in entries if e.kind == REVERSAL]
    residents = len({e.account for e in entries})
    rows = [
        ("加分", f"{len(awards)} 条", f"{sum(e.points or 0 for e in awards):+d} 分"),
        ("扣分", f"{len(deductions)} 条", f"{sum(e.points or 0 for e in deductions):+d} 分"),
        ("异议", f"{len(objections)} 条", ""),
        ("撤销", f"{len(reversals)} 条", f"{sum(e.points or 0 for e in reversals):+d} 分"),
        ("公示居民", f"{residents} 人", ""),
        ("未公示居民", f"{publicity.left_out} 人", "无公示依据，不予公示"),
    ]
    return [
        "<h2>本月合计</h2>",
        *_table(("项目", "数量", "分数"), rows, widths=(30, 30, 40)),
    ]


def _corrections(publicity: Publicity) -> list[str]:
    corrections = late([item.entry for item in publicity.listed], publicity.found.start)
    if not corrections:
        return []
    shown = [item for item in publicity.listed if item.entry in corrections]
    return ["<h2>对以往公示的更正与异议</h2>", *_detail(shown)]


def _village(publicity: Publicity, village: VillageNotice) -> list[str]:
    # Each village's part starts a page, which may be posted on its own board: it says
    # whose notice it is, and until when and to whom residents object.
    parts = [
        '<section class="village">',
        f'<p class="meta">{_heading(publicity)}</p>',
        f"<h2>{_e(village.village)}</h2>",
    ]
    if publicity.draft:
        parts.append("<p><strong>草稿：仅供核对，不是正式公示，不得张贴。</strong></p>")
    else:
        parts.append(
            f"<p>对本页内容有异议的，请于<strong>{_cn(publicity.deadline)}</strong>前向"
            f"<strong>{_e(publicity.objections_to)}</strong>提出，并说明所涉记录的序号。</p>"
        )
    parts.append("<h3>等级分布（月末，已取得公示依据的居民与家庭）</h3>")
    parts.extend(
        _table(
            [grade for grade, _ in village.grades],
            [[str(count) for _, count in village.grades]],
        )
    )
    top = publicity.config.grades[0].name
    parts.append(f'<div class="red"><h3>红榜（{_e(top)}级）</h3></div>')
    if village.red:
        red = [(s.masked, s.account, str(s.score), s.grade) for s in village.red]
        parts.extend(_table(("姓名", "账户", "累计分", "等级"), red))
    else:
        parts.append("<p>本月无。</p>")
    parts.append("<h3>黑榜（本月扣分）</h3>")
    if village.black:
        objected = objections_by_target(item.entry for item in publicity.listed)
        black = [
            (
                i.masked,
                i.entry.account,
                i.entry.title,
                f"{i.entry.points or 0:+d}",
                str(i.entry.seq),
                objection_cell(objected.get(i.entry.seq)),
            )
            for i in village.black
        ]
        parts.extend(_table(BLACK_HEADERS, black))
        if any(i.entry.seq in objected for i in village.black):
            parts.append("<p>标明“已提出异议”的扣分，待评议会审核后在以后的公示中更正或维持。</p>")
    else:
        parts.append("<p>本月无。</p>")
    parts.append("<h3>组织（月末累计分与等级）</h3>")
    if village.organisations:
        organisations = [
            (s.masked, s.account, str(s.score), s.grade) for s in village.organisations
        ]
        parts.extend(_table(("名称", "账户", "累计分", "等级"), organisations))
    else:
        parts.append("<p>无。</p>")
    parts.append("<h3>本月明细</h3>")
    parts.extend(_detail(village.listed) if village.listed else ["<p>本月无记录。</p>"])
    parts.append("</section>")
    return parts


def _detail(listed: Sequence[Listed]) -> list[str]:
    rows = []
    for item in listed:
        cells = item.entry.cells()
        rows.append(
            (
                cells["日期"],
                item.masked,
                cells["账户"],
                KIND_LABELS[item.kind],
                cells["类型"],
                cells["规则名称"],
                cells["分数"],
                cells["累计分"],
                cells["等级"],
                cells["登记人"],
                cells["序号"],
                cells["涉及序号"],
                item.note,
            )
        )
    return _table([name for name, _ in _DETAIL], rows, widths=[width for _, width in _DETAIL])


def _verification(publicity: Publicity, bundle_name: str, log_key: str) -> list[str]:
    checkpoint = publicity.found.checkpoint
    command = (
        f"redlist-verify bundle {bundle_name} --log-key {log_key} --state 核验状态.json --publicity"
    )
    return [
        '<section class="verify">',
        "<h2>如何核验</h2>",
        _covered(publicity.found.start, publicity.found.end, checkpoint.size),
        f"<pre>{_e(checkpoint.note)}</pre>",
        "<p>任何人可取得本月数据包，用镇政府公布的日志公钥独立核验每条记录、每个累计分与等级"
        "（按月依次核验，使用同一状态文件）：</p>",
        f"<pre>{_e(command)}</pre>",
        f'<div class="keep"><p>日志公钥：</p><pre>{_e(log_key)}</pre></div>',
        "</section>",
    ]


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    widths: Sequence[int] | None = None,
) -> list[str]:
    parts = ["<table>"]
    if widths is not None:
        total = sum(widths)
        parts.append(
            "<colgroup>"
            + "".join(f'<col style="width:{100 * w / total:.1f}%">' for w in widths)
            + "</colgroup>"
        )
    parts.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(_cell(value) for value in row) + "</tr>")
    parts.append("</tbody></table>")
    return parts


def _cell(value: str) -> str:
    numeric = value.lstrip("+-").isdigit()
    return f'<td class="n">{_e(value)}</td>' if numeric else f"<td>{_e(value)}</td>"


def _cn(day: object) -> str:
    year, month, dom = (getattr(day, name) for name in ("year", "month", "day"))
    return f"{year}年{month}月{dom}日"


def _e(text: str) -> str:
    return escape(text, quote=True)


__all__ = ["FONT_STACK", "render"]
