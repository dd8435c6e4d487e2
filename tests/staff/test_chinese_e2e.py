"""A township office that works in Chinese, against a real node: ``redlist`` run as a
subprocess with ``LANG=zh_CN.UTF-8`` speaks Chinese, takes sheets with Chinese headers
(saved by Excel as UTF-8 with a byte order mark, or as GB18030), Chinese role names and a reversal
list headed 序号,原因; ``--lang en`` brings English back (docs/adr/0034).

The town is ``redlist-node serve`` in a subprocess on 127.0.0.1:0 (``tests.staff.towns``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.staff.towns import TWO_DAYS_AGO, Town, served_town

from redlist.ledger import i18n, keyfile
from redlist.ledger.crypto import SigningKey

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    with served_town(tmp_path_factory.mktemp("chinese")) as served:
        yield served


def redlist(
    town: Town,
    *argv: str,
    signer: str | None = "grid",
    cosigners: tuple[str, ...] = (),
    lang: str = "zh_CN.UTF-8",
) -> subprocess.CompletedProcess[str]:
    """``redlist argv... --node ADDR --log-key FILE [--signer KEY]`` with ``LANG=lang``."""
    extra = ["--node", town.address, "--log-key", str(town.log_pub)]
    if signer is not None:
        extra += ["--signer", str(town.keys[signer])]
    for cosigner in cosigners:
        extra += ["--cosigner", str(town.keys[cosigner])]
    environ = {key: value for key, value in os.environ.items() if key not in i18n.LOCALE_VARIABLES}
    return subprocess.run(
        [str(BIN / "redlist"), *argv, *extra],
        env={**environ, "LANG": lang},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_a_sheet_with_chinese_headers_saved_by_excel_goes_in_and_is_reported_in_chinese(
    town: Town,
) -> None:
    text = (
        "账户,规则,数量,日期,备注\r\n"
        f"ZH-0001,V01,1,{TWO_DAYS_AGO},东村村塘\r\n"
        f"zh-0001,V02,2,{TWO_DAYS_AGO.replace('-', '/')},\r\n"
        "zh-0002,D01,,,北渠边焚烧秸秆\r\n"
    )
    sheet = town.root / "五月.csv"
    sheet.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    before = town.size()
    first = redlist(town, "submit", "--csv", str(sheet))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("已提交 五月.csv 中 3 行的 3 行：本次记录 3 行；第 ")
    # A date in a sentence is written as a Chinese office writes it.
    assert re.search(r"其中 1 行没有日期，按今天 \d{4}年\d{1,2}月\d{1,2}日 记录。", first.stdout)
    assert "没有日期的行按发送当天识别" in first.stdout
    assert town.size() == before + 3
    again = redlist(town, "submit", "--csv", str(sheet))
    assert again.returncode == 0, again.stderr
    assert "本次记录 0 行，3 行此前已记录" in again.stdout
    assert town.size() == before + 3


def test_a_statement_in_chinese_shows_deed_dates_rule_titles_and_notes(town: Town) -> None:
    shown = redlist(town, "account", "zh-0001", signer=None)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("账户 zh-0001，日志 dongguan.example/redlist，截至第 ")
    assert lines[1].split()[:2] == ["积分：", "1025"]
    header = next(line for line in lines if line.lstrip().startswith("序号"))
    assert header.split() == [
        "序号",
        "记录时间（Asia/Shanghai）",
        "事迹日期",
        "类别",
        "规则/物品",
        "规则名称",
        "分值",
        "已撤销",
        "备注",
    ]
    pond = next(line for line in lines if " V01 " in line)
    assert TWO_DAYS_AGO in pond and "Cleaned the village pond" in pond and "+5" in pond
    assert pond.split()[-1] == "（不予显示）"  # no --signer: the note is for staff only
    assert "备注和兑换物品不予显示" in lines[-1]
    staff = redlist(town, "account", "zh-0001", signer="grid")
    assert staff.returncode == 0, staff.stderr
    pond = next(line for line in staff.stdout.splitlines() if " V01 " in line)
    assert pond.split()[-1] == "东村村塘"
    duty = next(line for line in staff.stdout.splitlines() if " V02 ×2 " in line)
    assert "Epidemic prevention duty" in duty and "+20" in duty


def test_english_with_lang_en_in_a_chinese_locale(town: Town) -> None:
    shown = redlist(town, "--lang", "en", "account", "zh-0001")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Account zh-0001 in log dongguan.example/redlist")
    assert re.search(r"^\s*entry\s+recorded \(Asia/Shanghai\)\s+deed date", shown.stdout, re.M)
    refused = redlist(town, "award", "--account", "zh-0001", "--lang", "en")
    assert refused.returncode == 2
    assert refused.stderr.startswith("usage: redlist award")
    assert "error: the following arguments are required: --rule" in refused.stderr
    chinese = redlist(town, "award", "--account", "zh-0001")
    assert chinese.stderr.startswith("用法：redlist award")
    assert "错误：缺少以下必需参数：--rule" in chinese.stderr


def test_a_gb18030_sheet_goes_in_and_saved_again_as_utf8_counts_once(town: Town) -> None:
    """Excel's plain "CSV" on a Chinese Windows writes GB18030 (GBK): the sheet goes in,
    the summary says how it was read, and the same sheet saved again as "CSV UTF-8" is
    recognised row for row (ids come from the text, docs/adr/0040): nothing new."""
    text = (
        "账户,规则,数量,日期,备注\r\n"
        f"zh-0101,V01,1,{TWO_DAYS_AGO},王秀英 清理东村村塘\r\n"
        f"zh-0102,V02,2,{TWO_DAYS_AGO},李建国 防疫值守（北门）\r\n"
        f"zh-0103,D01,1,{TWO_DAYS_AGO},张伟 北渠边焚烧秸秆\r\n"
    )
    gbk = town.root / "六月.csv"
    gbk.write_bytes(text.encode("gb18030"))
    before = town.size()
    dry = redlist(town, "submit", "--csv", str(gbk), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "六月.csv 的 3 行中，3 行将在本次记录" in dry.stdout
    assert "已按 GB18030（中文 Windows 编码）读取 六月.csv。" in dry.stdout.splitlines()
    assert town.size() == before
    first = redlist(town, "submit", "--csv", str(gbk))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("已提交 六月.csv 中 3 行的 3 行：本次记录 3 行；第 ")
    assert "已按 GB18030（中文 Windows 编码）读取 六月.csv。" in first.stdout.splitlines()
    assert town.size() == before + 3
    staff = redlist(town, "account", "zh-0102", signer="grid")
    assert "李建国 防疫值守（北门）" in staff.stdout

    utf8 = town.root / "六月-utf8.csv"
    utf8.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    again = redlist(town, "submit", "--csv", str(utf8))
    assert again.returncode == 0, again.stderr
    assert "本次记录 0 行，3 行此前已记录" in again.stdout
    assert "已按 UTF-8（带 Excel 写入的字节顺序标记）读取 六月-utf8.csv。" in again.stdout
    plain = town.root / "六月-plain.csv"
    plain.write_bytes(text.encode("utf-8"))
    assert "本次记录 0 行，3 行此前已记录" in redlist(town, "submit", "--csv", str(plain)).stdout
    assert town.size() == before + 3


def test_propose_and_reverse_read_a_gb18030_sheet_as_its_utf8_twin(town: Town) -> None:
    """The sheet's rows, recorded from its UTF-8 copy, are the rows of its GB18030 copy:
    proposing them again is refused as already recorded, and reversing the sheet finds
    them all."""
    text = (
        "账户,规则,数量,日期,备注\r\n"
        f"zh-0111,V01,1,{TWO_DAYS_AGO},赵丽 打扫祠堂\r\n"
        f"zh-0112,V01,2,{TWO_DAYS_AGO},孙强 修补村道\r\n"
    )
    utf8, gbk = town.root / "七月.csv", town.root / "七月-gbk.csv"
    utf8.write_bytes(text.encode("utf-8"))
    gbk.write_bytes(text.encode("gb18030"))
    english = "en_US.UTF-8"
    assert "2 recorded now" in redlist(town, "submit", "--csv", str(utf8), lang=english).stdout
    before = town.size()
    proposed = redlist(town, "propose", "--csv", str(gbk), lang=english)
    assert proposed.returncode == 0, proposed.stderr
    assert proposed.stdout.count("Already proposed or recorded") == 2
    assert proposed.stdout.endswith(f"Read {gbk} as GB18030 (the Chinese Windows encoding).\n")
    reversed_ = redlist(town, "reverse", "--sheet", str(gbk), "--reason", "重复提交", "--yes",
                        signer="council1", cosigners=("council2",), lang=english)  # fmt: skip
    assert reversed_.returncode == 0, reversed_.stderr
    assert reversed_.stdout.startswith(
        "七月-gbk.csv: 2 entries to reverse.\n"
        "Read 七月-gbk.csv as GB18030 (the Chinese Windows encoding).\n"
    )
    assert town.size() == before + 2


def test_a_file_that_is_no_text_is_refused_in_chinese_naming_the_row(town: Town) -> None:
    sheet = town.root / "坏.csv"
    sheet.write_bytes(b"account,rule\r\nzh-0104,V01\r\nzh-0105,V\xff01\r\n")
    unicode_text = town.root / "unicode.csv"
    unicode_text.write_bytes("账户,规则\r\nzh-0104,V01\r\n".encode("utf-16"))
    before = town.size()
    refused = redlist(town, "submit", "--csv", str(sheet))
    assert refused.returncode == 2
    assert refused.stderr.startswith("错误：坏.csv 既不是 UTF-8 也不是 GB18030（中文 Windows）")
    assert "首次出现在第 3 行" in refused.stderr and "另存为" in refused.stderr
    refused = redlist(town, "submit", "--csv", str(unicode_text), "--dry-run")
    assert refused.returncode == 2
    assert "unicode.csv 保存成了“Unicode 文本”（UTF-16）" in refused.stderr
    assert town.size() == before


def test_bad_rows_are_listed_in_chinese_and_nothing_is_sent(town: Town) -> None:
    sheet = town.root / "bad.csv"
    sheet.write_bytes(
        b"\xef\xbb\xbf"
        + f"账户,规则,数量,日期\nzh-0004,X99,1,{TWO_DAYS_AGO}\nzh-0005,V01,1,2099-01-01\n".encode()
    )
    before = town.size()
    refused = redlist(town, "submit", "--csv", str(sheet))
    assert refused.returncode == 2, refused.stdout
    assert "2 行不能使用；未提交任何内容" in refused.stderr
    # Each row and column as the clerk's sheet names them, in Chinese throughout.
    assert "\n  第 2 行“规则”列：规则 X99 不在本镇规则目录中\n" in refused.stderr
    assert "\n  第 3 行“日期”列：" in refused.stderr and "晚于今天" in refused.stderr
    assert town.size() == before


def test_unreadable_cells_are_named_by_their_chinese_column(town: Town) -> None:
    sheet = town.root / "cells.csv"
    sheet.write_bytes(
        "\ufeff账户,规则,数量,日期,备注\r\n".encode()
        + f"zh-0006,V01,1,2026-13-01,\r\nzh-0007,V01,二,{TWO_DAYS_AGO},\r\n".encode()
    )
    before = town.size()
    refused = redlist(town, "submit", "--csv", str(sheet))
    assert refused.returncode == 2, refused.stdout
    assert "\n  第 2 行“日期”列：日期 '2026-13-01' 不是日历上的日期\n" in refused.stderr
    assert "\n  第 3 行“数量”列：数量" in refused.stderr
    assert not re.search(r"\b(rule|date|qty)\b", refused.stderr), refused.stderr
    assert town.size() == before


def test_a_full_width_space_in_row_15001_of_a_long_sheet_is_named_and_nothing_is_sent(
    town: Town,
) -> None:
    rows = [f"fw-{n:05d},V01,1,{TWO_DAYS_AGO},第{n}行\r\n" for n in range(20_000)]
    rows[14_999] = f"fw\u300014999,V01,1,{TWO_DAYS_AGO},\r\n"  # sheet row 15001
    sheet = town.root / "长表.csv"
    sheet.write_bytes(("\ufeff账户,规则,数量,日期,备注\r\n" + "".join(rows)).encode())
    before = town.size()
    refused = redlist(town, "submit", "--csv", str(sheet))
    assert refused.returncode == 2, refused.stdout
    assert "1 行不能使用；未提交任何内容" in refused.stderr
    assert "\n  第 15001 行“账户”列：账户号 " in refused.stderr
    assert "无效（第 3 个字符是空格，U+3000）：" in refused.stderr
    assert town.size() == before


def test_a_refusal_of_the_node_is_framed_in_chinese_around_its_english_reason(
    town: Town,
) -> None:
    before = town.size()
    refused = redlist(town, "redeem", "--account", "zh-0001", "--points", "1", "--item", "肥皂")
    assert refused.returncode == 1, refused.stdout
    assert "\n错误：节点拒绝了这次兑换：" in "\n" + refused.stderr  # the Chinese colon
    assert "may not sign redemptions" in refused.stderr  # the node's reason, as it gave it
    assert "，检查 signer-role]" in refused.stderr
    assert town.size() == before


def test_chinese_role_names_and_catalogue_headers(town: Town) -> None:
    key = town.root / "zhou.pem"
    keyfile.write_key_files(key, SigningKey.generate(), "周敏（网格员）")
    added = redlist(town, "key", "add", "--pub", str(keyfile.public_path(key)),
                    "--name", "周敏", "--roles", "网格员，评议员",
                    signer="admin", cosigners=("council1", "council2"))  # fmt: skip
    assert added.returncode == 0, added.stderr
    registered = r"已登记 周敏 的密钥 [0-9a-f]{16}，角色为 网格员，评议员（第 \d+ 条记录）。\n"
    assert re.fullmatch(registered, added.stdout)
    catalogue = town.root / "规则.csv"
    catalogue.write_bytes(
        "\ufeff代码,名称,模块,分值,需评议,单次上限\nZ01,清扫村道,环境,3,否,2\n".encode()
    )
    loaded = redlist(town, "rules", "load", "--csv", str(catalogue), signer="admin",
                     cosigners=("council1", "council2"))  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert re.fullmatch(
        r"已从 规则.csv 导入 1 条规则（第 \d+ 至 \d+ 条记录）。\n"
        r"已按 UTF-8（带 Excel 写入的字节顺序标记）读取 规则.csv。\n",
        loaded.stdout,
    )
    award = redlist(town, "award", "--account", "zh-0006", "--rule", "Z01", "--qty", "2",
                    "--date", TWO_DAYS_AGO)  # fmt: skip
    assert award.returncode == 0, award.stderr
    assert award.stdout.startswith("已按规则 Z01 ×2 给 zh-0006 加 6 分（事迹日期 ")


def test_a_reversal_list_headed_in_chinese(town: Town) -> None:
    shown = redlist(town, "--lang", "en", "account", "zh-0002", "--json")
    assert shown.returncode == 0, shown.stderr
    seq = re.search(r'"seq": (\d+)', shown.stdout)
    assert seq is not None
    listing = town.root / "撤销.csv"
    listing.write_bytes(f"\ufeff序号,原因\n{seq.group(1)},评议会认定异议成立\n".encode())
    reversed_ = redlist(town, "reverse", "--csv", str(listing), "--yes",
                        signer="council1", cosigners=("council2",))  # fmt: skip
    assert reversed_.returncode == 0, reversed_.stderr
    assert reversed_.stdout.startswith("撤销.csv：待撤销 1 条记录。\n")
    assert (
        reversed_.stdout.splitlines()[1]
        == "已按 UTF-8（带 Excel 写入的字节顺序标记）读取 撤销.csv。"
    )
    table = reversed_.stdout.splitlines()[2:4]
    assert table[0].split() == ["序号", "账户", "规则/物品", "分值", "事迹日期"]
    assert table[1].split()[:2] == [seq.group(1), "zh-0002"]
    assert re.search(r"^已撤销 1 条记录（第 \d+ 条）：其积分不再计入。$", reversed_.stdout, re.M)


_ENGLISH_WORD = re.compile(r"[A-Za-z]{2,}")


def test_the_rules_and_keys_tables_are_chinese_and_their_json_stays_english(town: Town) -> None:
    rules = redlist(town, "rules", "list", signer=None)
    assert rules.returncode == 0, rules.stderr
    lines = rules.stdout.splitlines()
    assert lines[1].split() == [
        "代码", "规则名称", "分值", "模块", "需评议", "单次上限", "每月上限", "决定", "状态",
    ]  # fmt: skip
    h01 = next(line for line in lines if line.startswith("H01"))
    v01 = next(line for line in lines if line.startswith("V01"))
    assert h01.split()[-2:] == ["是", "在用"] and v01.split()[-2:] == ["否", "在用"]
    assert not _ENGLISH_WORD.search(lines[1]), lines[1]
    as_json = redlist(town, "rules", "list", "--json", signer=None)
    assert '"council": true' in as_json.stdout and '"active": true' in as_json.stdout

    keys = redlist(town, "keys", "list", signer=None)
    assert keys.returncode == 0, keys.stderr
    lines = keys.stdout.splitlines()
    assert lines[1].split() == ["密钥", "ID", "姓名", "角色", "登记序号", "吊销序号"]
    admin_id = keyfile.read_signing_key(town.keys["admin"]).key_id.hex()
    assert next(line for line in lines if line.startswith(admin_id)).split() == [
        admin_id, "admin", "管理员", "0",
    ]  # fmt: skip
    council1 = next(line for line in lines if " council1 " in line)
    assert "评议员，网格员" in council1
    as_json = redlist(town, "keys", "list", "--json", signer=None)
    assert '"roles": ["admin"]' in as_json.stdout and '"revoked": null' in as_json.stdout


def test_the_review_queue_says_in_chinese_what_a_proposal_still_needs(town: Town) -> None:
    proposed = redlist(town, "propose", "--account", "zh-0010", "--rule", "H01",
                       "--date", TWO_DAYS_AGO)  # fmt: skip
    assert proposed.returncode == 0, proposed.stderr
    assert "尚需：2 名评议员的签名（共需 2 名，已有 0 名）。" in proposed.stdout
    number = re.match(r"事项 (\d+)：", proposed.stdout)
    assert number is not None, proposed.stdout
    shown = redlist(town, "review", "show", number.group(1), signer=None)
    assert "  尚需：2 名评议员的签名（共需 2 名，已有 0 名）\n" in shown.stdout
    assert re.search(r"按规则 H01“[^”]+”给 zh-0010 加分", shown.stdout), shown.stdout
    approved = redlist(town, "approve", number.group(1), signer="council1")
    assert approved.returncode == 0, approved.stderr
    assert f"已批准事项 {number.group(1)}；尚需：1 名评议员的签名（共需 2 名，已有 1 名）。" in (
        approved.stdout
    )
    for english in ("needs", "council signature", "it has"):
        assert english not in proposed.stdout + shown.stdout + approved.stdout
    # For programs: the node's English words, and the same as data.
    listed = redlist(town, "review", "list", "--json", signer=None)
    [item] = [item for item in json.loads(listed.stdout) if item["id"] == int(number.group(1))]
    assert "needs 2 council signatures, it has 1" in item["needs"]
    assert item["still_needs"] == {
        "quorum": "council",
        "alternatives": [{"admin": 0, "council": 2}],
        "admins": 0,
        "councils": 1,
    }
    # A catalogue change waits for the town's governance: an admin and two council members.
    rule = redlist(town, "rule", "set", "--code", "Z09", "--title", "扫雪", "--module", "环境",
                   "--points", "2", "--propose", signer="admin")  # fmt: skip
    assert rule.returncode == 0, rule.stderr
    assert (
        "尚需：共须 1 名管理员和 2 名评议员签名（本镇治理规则）；目前已有 1 名管理员、0 名评议员。"
        in rule.stdout
    )
