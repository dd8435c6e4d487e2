"""``redlist-node residents``, run as a clerk runs it: real subprocesses, real LMDB.

Files as Excel saves them (UTF-8 with a byte order mark and CRLF, or GB18030; English,
Chinese or mixed headers); a 20,000-row file with one bad ID number is refused whole,
naming its row; erasure leaves no byte of the resident in the data directory; and
imports run while the node serves.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
from tests.builders import Town, create_log
from tests.node.serving import BIN, serve_in_subprocess

from redlist.ledger.residents import id_check_character
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

CHINESE = "账户,姓名,身份证号,电话,村,户,依据,依据日期"
ENGLISH = "account,name,id_number,phone,village,household,basis,basis_date"
MIXED = "账户,name,身份证号,phone,村,household,依据,basis_date"
ROWS = [
    "DGC-0001,张三,11010519491231002x,138 1234 5678,东村,12,同意,2024/3/5",
    "dgc-0002,欧阳娜娜,,0631-5201234,东村,12,,",
    "dgc-0003,阿依古丽·买买提,,,西村,,statute,2020-01-01",
]


def name_of(serial: int) -> str:
    """A distinct Chinese name for each serial number below 8,000."""
    surnames, given = "王李张刘陈杨赵黄", "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"
    return surnames[serial % 8] + given[serial // 8 % 20] + given[serial // 160 % 20]


def id_number(serial: int) -> str:
    born = datetime.date(1950, 1, 1) + datetime.timedelta(days=serial // 1000)
    first17 = f"110105{born:%Y%m%d}{serial % 1000:03d}"
    return first17 + id_check_character(first17)


def excel_utf8(header: str, rows: list[str]) -> bytes:
    """As Excel's "CSV UTF-8" writes a sheet: a byte order mark and CRLF line ends."""
    return b"\xef\xbb\xbf" + "\r\n".join([header, *rows, ""]).encode("utf-8")


def excel_gb18030(header: str, rows: list[str]) -> bytes:
    """As Excel's "CSV (comma delimited)" writes a sheet on a Chinese Windows."""
    return "\r\n".join([header, *rows, ""]).encode("gb18030")


def residents(*argv: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "redlist-node", "residents", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def every_byte(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    directory = tmp_path / "town"
    with create_log(directory, Town.generate()):
        pass
    return directory


def write(tmp_path: Path, name: str, contents: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(contents)
    return path


def test_an_excel_utf8_file_with_chinese_headers(tmp_path: Path, data: Path) -> None:
    csv_file = write(tmp_path, "居民.csv", excel_utf8(CHINESE, ROWS))
    done = residents("import", "--data", data, "--csv", csv_file)
    assert done.returncode == 0, done.stderr
    assert "as UTF-8 (with the byte order mark Excel writes): 3 residents" in done.stdout
    assert "Registered 3 new" in done.stdout
    assert "1 has no legal basis" in done.stdout

    shown = residents("show", "DGC-0001", "--data", data)
    assert shown.returncode == 0, shown.stderr
    for value in ("张三", "11010519491231002X", "13812345678", "东村", "consent, since 2024-03-05"):
        assert value in shown.stdout
    assert "2 members: dgc-0001, dgc-0002" in shown.stdout
    assert "publicity shows: 张*" in shown.stdout

    listed = residents("list", "--data", data)
    assert listed.returncode == 0, listed.stderr
    assert "110************02X" in listed.stdout and "11010519491231002X" not in listed.stdout
    assert "138****5678" in listed.stdout and "0631-***1234" in listed.stdout
    assert "3 residents; 1 has no legal basis" in listed.stdout
    only = residents("list", "--data", data, "--village", "西村")
    assert "阿依古丽·买买提" in only.stdout and "张三" not in only.stdout


def test_a_gb18030_file_with_mixed_headers(tmp_path: Path, data: Path) -> None:
    csv_file = write(tmp_path, "residents.csv", excel_gb18030(MIXED, ROWS))
    done = residents("import", "--data", data, "--csv", csv_file)
    assert done.returncode == 0, done.stderr
    assert "as GB18030 (the Chinese Windows encoding): 3 residents" in done.stdout
    shown = residents("show", "dgc-0003", "--data", data)
    assert "阿依古丽·买买提" in shown.stdout
    assert "publicity shows: 阿***·**提" in shown.stdout


def test_list_csv_opens_in_excel_and_masks(tmp_path: Path, data: Path) -> None:
    residents(
        "import", "--data", data, "--csv", write(tmp_path, "r.csv", excel_utf8(ENGLISH, ROWS))
    )
    listed = subprocess.run(
        [BIN / "redlist-node", "residents", "list", "--data", data, "--csv"],
        capture_output=True,
        check=True,
    )
    assert listed.stdout.startswith(b"\xef\xbb\xbf" + ENGLISH.encode() + b",kind\r\n")
    text = listed.stdout.decode("utf-8-sig")
    assert "dgc-0001,张三,110************02X,138****5678,东村,12,consent,2024-03-05" in text


def test_one_bad_id_number_in_row_15000_of_20000_imports_nothing(
    tmp_path: Path, data: Path
) -> None:
    rows = [
        f"dgc-{n:05},{name_of(n)},{id_number(n)},{13800000000 + n},东村,{n // 4},consent,2024-01-01"
        for n in range(20_000)
    ]
    bad = rows[15_000 - 2].split(",")  # row 1 is the header
    bad[2] = bad[2][:17] + ("0" if bad[2][17] != "0" else "1")
    rows[15_000 - 2] = ",".join(bad)
    refused = residents(
        "import",
        "--data",
        data,
        "--csv",
        write(tmp_path, "big.csv", excel_utf8(ENGLISH, rows)),
        timeout=120,
    )
    assert refused.returncode == 2
    assert "1 row cannot be used; nothing was imported" in refused.stderr
    assert "row 15000, column id_number: has the check character" in refused.stderr
    assert residents("list", "--data", data).stdout.startswith("The register in")

    bad[2] = id_number(15_000 - 2)
    rows[15_000 - 2] = ",".join(bad)
    fixed = residents(
        "import",
        "--data",
        data,
        "--csv",
        write(tmp_path, "big.csv", excel_utf8(ENGLISH, rows)),
        timeout=120,
    )
    assert fixed.returncode == 0, fixed.stderr
    assert "Registered 20,000 new" in fixed.stdout


def test_every_bad_row_is_listed_by_row_and_column(tmp_path: Path, data: Path) -> None:
    rows = [
        *ROWS,
        "dgc-0004,,,,东村,,,",
        "dgc-0005,王五,110105490101001,,东村,,,",
        "dgc-0006,赵六,,12345,东村,,,",
        "dgc-0007,孙七,,,东村,,maybe,",
        "dgc-0008,周八,,,东村,,consent,",
        "dgc-0009,吴九,,,东村,,consent,2999-01-01",
        "dgc-0001,郑十,,,东村,,,",
        "Dgc 10,钱,,,东村,,,",
    ]
    refused = residents(
        "import", "--data", data, "--csv", write(tmp_path, "r.csv", excel_utf8(CHINESE, rows))
    )
    assert refused.returncode == 2
    expected = [
        "r.csv (read as UTF-8 (with the byte order mark Excel writes)): 8 rows cannot be used",
        "row 5, column 姓名: is empty",
        "row 6, column 身份证号: is an old 15-digit ID number",
        "row 7, column 电话: '12345' is not a phone number",
        "row 8, column 依据: 'maybe' is not a legal basis",
        "row 9, column 依据日期: is empty; a basis (consent) needs the date",
        "row 10, column 依据日期: 2999-01-01 lies in the future",
        "row 11, column 账户: dgc-0001 already appears in row 2",
        "row 12, column 账户: 'dgc 10' is not an account id",
    ]
    for line in expected:
        assert line in refused.stderr
    assert not (data / "register.lmdb").exists()


def test_accounts_already_registered_need_update(tmp_path: Path, data: Path) -> None:
    first = write(tmp_path, "r.csv", excel_utf8(ENGLISH, ROWS))
    assert residents("import", "--data", data, "--csv", first).returncode == 0
    changed = [ROWS[0].replace("138 1234 5678", "13900000000"), "dgc-0004,李四,,,东村,,,"]
    second = write(tmp_path, "r2.csv", excel_utf8(ENGLISH, changed))
    refused = residents("import", "--data", data, "--csv", second)
    assert refused.returncode == 1
    assert "row 2, column account: dgc-0001 is already in the register" in refused.stderr
    assert "nothing was imported" in refused.stderr
    assert "dgc-0004" not in residents("list", "--data", data).stdout
    updated = residents("import", "--data", data, "--csv", second, "--update")
    assert updated.returncode == 0, updated.stderr
    assert "Registered 1 new, updated 1, 0 unchanged" in updated.stdout
    assert "13900000000" in residents("show", "dgc-0001", "--data", data).stdout


def test_update_and_erase(tmp_path: Path, data: Path) -> None:
    rows = [*ROWS, "dgc-0004,马小红,,,东村,12,,"]
    csv_file = write(tmp_path, "r.csv", excel_utf8(ENGLISH, rows))
    assert residents("import", "--data", data, "--csv", csv_file).returncode == 0

    done = residents(
        "update", "dgc-0002", "--data", data, "--basis", "consent", "--basis-date", "2025-06-01"
    )
    assert done.returncode == 0, done.stderr
    assert "Updated dgc-0002: legal basis, basis date." in done.stdout
    cleared = residents("update", "dgc-0002", "--data", data, "--basis", "")
    assert "none: publicity leaves" in residents("show", "dgc-0002", "--data", data).stdout
    assert cleared.returncode == 0, cleared.stderr
    bad = residents("update", "dgc-0002", "--data", data, "--phone", "555")
    assert bad.returncode == 2 and "--phone:" in bad.stderr
    assert residents("update", "dgc-0099", "--data", data, "--name", "王").returncode == 1

    secrets = ["张三", "11010519491231002X", "13812345678"]
    before = every_byte(data)
    assert all(secret.encode() in before for secret in secrets)
    unsure = residents("erase", "dgc-0001", "--data", data)
    assert unsure.returncode == 2 and "--yes" in unsure.stderr
    erased = residents("erase", "dgc-0001", "--data", data, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "Erased the personal data of dgc-0001" in erased.stdout
    after = every_byte(data)
    for secret in secrets:
        assert secret.encode() not in after, secret
    assert "马小红".encode() in after  # the others stay

    shown = residents("show", "dgc-0001", "--data", data)
    assert shown.returncode == 0 and "personal data erased on" in shown.stdout
    again = residents("import", "--data", data, "--csv", csv_file, "--update")
    assert again.returncode == 1 and "dgc-0001 its personal data was erased" in again.stderr
    assert residents("erase", "dgc-0001", "--data", data, "--yes").returncode == 1
    assert "1 erased account(s) are not listed" in residents("list", "--data", data).stdout


def test_a_directory_without_a_log_is_refused(tmp_path: Path) -> None:
    refused = residents("list", "--data", tmp_path)
    assert refused.returncode == 2
    assert "holds no log" in refused.stderr


def test_imports_while_the_node_serves(tmp_path: Path, data: Path) -> None:
    files = [
        write(
            tmp_path,
            f"part{part}.csv",
            excel_utf8(
                ENGLISH,
                [
                    f"v{part}-{n:04},{name_of(n)},,,村{part},,consent,2024-01-01"
                    for n in range(2000)
                ],
            ),
        )
        for part in range(3)
    ]
    with serve_in_subprocess(data, "--log-level", "warning", output=tmp_path) as address:
        results: list[subprocess.CompletedProcess[str]] = []

        def run(path: Path) -> None:
            results.append(residents("import", "--data", data, "--csv", path, timeout=120))

        threads = [threading.Thread(target=run, args=(path,)) for path in files]
        for thread in threads:
            thread.start()
        listed = residents("list", "--data", data, "--csv", timeout=120)
        for thread in threads:
            thread.join()
        assert [result.returncode for result in results] == [0, 0, 0], [
            result.stderr for result in results
        ]
        assert listed.returncode == 0, listed.stderr
        with grpc.insecure_channel(address) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            note = stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=10).checkpoint
        assert note.splitlines()[1] == "1"
    final = residents("list", "--data", data)
    assert "6,000 residents" in final.stdout


def test_the_kind_column_marks_households_and_organisations(tmp_path: Path, data: Path) -> None:
    rows = [row + "," + kind for row, kind in zip(ROWS, ("", "家庭", "组织"), strict=True)]
    csv_file = write(tmp_path, "r.csv", excel_utf8(CHINESE + ",类型", rows))
    done = residents("import", "--data", data, "--csv", csv_file)
    assert done.returncode == 0, done.stderr
    assert "kind:            organisation" in residents("show", "dgc-0003", "--data", data).stdout
    assert "kind:            person" in residents("show", "dgc-0001", "--data", data).stdout
    listed = residents("list", "--data", data, "--csv").stdout
    assert listed.splitlines()[0].endswith(",basis_date,kind")
    assert [line.rsplit(",", 1)[1] for line in listed.splitlines()[1:]] == [
        "person",
        "household",
        "organisation",
    ]
    updated = residents("update", "dgc-0002", "--data", data, "--kind", "person")
    assert updated.returncode == 0, updated.stderr
    assert "kind:            person" in residents("show", "dgc-0002", "--data", data).stdout
    bad = write(tmp_path, "bad.csv", excel_utf8(ENGLISH + ",kind", [ROWS[0] + ",company"]))
    refused = residents("import", "--data", data, "--csv", bad)
    assert refused.returncode != 0
    assert "is not a kind of account" in refused.stderr


def test_show_gives_a_households_points_beside_its_members(tmp_path: Path) -> None:
    """The family file: a member's points, and the household's beside each member's."""
    town = Town.generate()
    data = tmp_path / "town"
    with create_log(data, town, setup=True) as log:
        log.append(
            [
                town.award("dgc-0001", "clean-pond", 2),
                town.award("dgc-0002", "epidemic-duty"),
                town.award("dgc-0002", "litter"),
                town.award("dgc-0003", "clean-pond"),
            ],
            now_ms=town.now_ms,
        )
    csv_file = write(tmp_path, "居民.csv", excel_utf8(CHINESE, ROWS))
    assert residents("import", "--data", data, "--csv", csv_file).returncode == 0
    shown = residents("show", "dgc-0002", "--data", data)
    assert shown.returncode == 0, shown.stderr
    assert "score 1005 (" in shown.stdout and "earned +5" in shown.stdout
    assert "+15 earned together (dgc-0001 +10, dgc-0002 +5)" in shown.stdout
    alone = residents("show", "dgc-0003", "--data", data)
    assert "earned +5" in alone.stdout and "together" not in alone.stdout


def test_show_speaks_chinese_with_every_label(tmp_path: Path, data: Path) -> None:
    """Every label and every word the register keeps in English (kind, legal basis) is
    Chinese, the labels' values line up, and no English word is left but the values'."""
    csv_file = write(tmp_path, "居民.csv", excel_utf8(CHINESE, ROWS))
    assert residents("import", "--data", data, "--csv", csv_file).returncode == 0
    shown = residents("--lang", "zh_CN", "show", "dgc-0001", "--data", data)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "居民 dgc-0001"
    labels = [line.split("：", 1)[0].strip() for line in lines[1:]]
    assert labels == [
        "姓名", "类别", "身份证号", "电话", "村", "户", "合法依据", "公示显示", "最后修改", "积分",
        "家庭积分",
    ]  # fmt: skip
    assert "  类别：           个人\n" in shown.stdout
    assert "  合法依据：       同意，自 2024-03-05 起\n" in shown.stdout
    assert "  姓名：           张三\n" in shown.stdout  # a wide label still lines up
    changed = next(line for line in lines if line.lstrip().startswith("最后修改"))
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d \(Asia/Shanghai\)$", changed), changed
    household = next(line for line in lines if line.lstrip().startswith("家庭积分"))
    assert "，" in household and ", " not in household, household  # Chinese commas
    for line in lines[1:]:
        label, value = line.split("：", 1)
        assert not re.search(r"[A-Za-z]{2,}", label), line
        assert not re.search(r"\b(person|consent|statute|score|earned|members)\b", value), line
    english = residents("--lang", "en", "show", "dgc-0001", "--data", data)
    assert "  kind:            person\n" in english.stdout
    assert "  legal basis:     consent, since 2024-03-05\n" in english.stdout


def test_list_speaks_chinese_and_its_csv_stays_english(tmp_path: Path, data: Path) -> None:
    csv_file = write(tmp_path, "居民.csv", excel_utf8(CHINESE, ROWS))
    assert residents("import", "--data", data, "--csv", csv_file).returncode == 0
    listed = residents("--lang", "zh_CN", "list", "--data", data)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("dgc-0003"))
    assert row.split()[-3:] == ["法定", "2020-01-01", "个人"]
    assert "statute" not in listed.stdout and "person" not in listed.stdout
    assert listed.stdout.rstrip().endswith("。")
    as_csv = residents("--lang", "zh_CN", "list", "--data", data, "--csv")
    assert "statute,2020-01-01,person" in as_csv.stdout


def test_a_sheet_of_awards_imported_by_mistake_is_refused_in_chinese(
    tmp_path: Path, data: Path
) -> None:
    sheet = "账户,规则,数量,日期,备注\r\ndgc-0001,V01,1,2026-11-24,\r\n".encode()
    csv_file = write(tmp_path, "五月.csv", b"\xef\xbb\xbf" + sheet)
    before = every_byte(data)
    refused = residents("--lang", "zh_CN", "import", "--data", data, "--csv", csv_file)
    assert refused.returncode == 2, refused.stdout
    assert "'规则', '数量', '日期', '备注' 不在其中" in refused.stderr
    assert not re.search(r"\b(is|are)\b", refused.stderr), refused.stderr
    assert every_byte(data) == before


def test_a_clerk_reads_every_bad_cell_of_a_row_in_chinese(tmp_path: Path, data: Path) -> None:
    """A GB18030 sheet (Excel's plain CSV) with several mistakes in one row: every bad
    cell is named, row and column, each in Chinese with nothing left in English, and
    the rows are counted once each."""
    rows = [
        *ROWS,
        "dgc-0004,,110105194912310021,1234,东村,12,同意,2999-01-01",
        "DGC 0005,王五1,1.10105E+17,,,3,可以,",
    ]
    csv_file = write(tmp_path, "居民.csv", excel_gb18030(CHINESE, rows))
    refused = residents("--lang", "zh_CN", "import", "--data", data, "--csv", csv_file)
    assert refused.returncode == 2, refused.stdout
    expected = [
        "居民.csv（按 GB18030（中文 Windows 编码）读取）：2 行不能使用",
        "第 5 行“姓名”列：为空；每位居民都要有姓名",
        "第 5 行“身份证号”列：校验码是 1，但前 17 位数字对应的校验码应为 X",
        "第 5 行“电话”列：“1234”不是中国大陆的电话号码",
        "第 5 行“依据日期”列：2999-01-01 是将来的日期",
        "第 6 行“账户”列：“dgc 0005”不是账户号",
        "第 6 行“姓名”列：只能包含文字、单个空格和分隔符 · ・ • - . '，不能有“1”",
        "第 6 行“身份证号”列：被电子表格变成了数值",
        "第 6 行“村”列：为空",
        "第 6 行“依据”列：“可以”不是法律依据",
    ]
    for line in expected:
        assert line in refused.stderr, refused.stderr
    assert not re.search(
        r"[A-Za-z]{3,}",
        refused.stderr.replace("GB18030", "")
        .replace("Windows", "")
        .replace("csv", "")
        .replace("dgc", "")
        .replace("Unicode", ""),
    ), refused.stderr
    assert not (data / "register.lmdb").exists()


def test_update_names_every_bad_value_in_chinese(tmp_path: Path, data: Path) -> None:
    csv_file = write(tmp_path, "r.csv", excel_utf8(CHINESE, ROWS))
    assert residents("import", "--data", data, "--csv", csv_file).returncode == 0
    refused = residents(
        "--lang", "zh_CN", "update", "dgc-0001", "--data", data,
        "--phone", "123", "--basis-date", "2999-01-01",
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout
    assert "--phone: “123”不是中国大陆的电话号码" in refused.stderr
    assert "；--basis-date: 2999-01-01 是将来的日期" in refused.stderr


def test_a_listed_register_imported_back_never_loses_a_number(tmp_path: Path, data: Path) -> None:
    """'residents list --csv' masks ID and phone numbers. Imported back, a masked number
    is refused in words that say what it is; a column blanked to get past that is refused
    too: an import never erases a number the register holds."""
    first = write(tmp_path, "r.csv", excel_utf8(CHINESE, ROWS))
    assert residents("import", "--data", data, "--csv", first).returncode == 0
    listed = residents("list", "--data", data, "--csv")
    assert listed.returncode == 0, listed.stderr
    masked = write(tmp_path, "listed.csv", listed.stdout.encode("utf-8"))
    refused = residents("--lang", "zh_CN", "import", "--update", "--data", data, "--csv", masked)
    assert refused.returncode == 2
    assert "是打码后的号码（“residents list”显示的那种）：请填写完整号码" in refused.stderr
    before = (data / "register.lmdb" / "data.mdb").read_bytes()
    blanked = [
        "dgc-0001,张三,,,东村,12,consent,2024-03-05",
        "dgc-0002,欧阳娜娜,,,东村,12,,",
    ]
    path = write(tmp_path, "blanked.csv", excel_utf8(ENGLISH, blanked))
    refused = residents("import", "--update", "--data", data, "--csv", path)
    assert refused.returncode == 2, refused.stdout
    for line in (
        "2 rows cannot be used",
        "row 2, column id_number: empty, but the register holds dgc-0001's number",
        "row 2, column phone: empty, but the register holds dgc-0001's number",
        'redlist-node residents update dgc-0001 --phone ""',
        "row 3, column phone: empty, but the register holds dgc-0002's number",
    ):
        assert line in refused.stderr, refused.stderr
    assert (data / "register.lmdb" / "data.mdb").read_bytes() == before
    shown = residents("show", "dgc-0001", "--data", data)
    assert "11010519491231002X" in shown.stdout and "13812345678" in shown.stdout


def test_a_row_repeating_an_account_says_so_beside_its_other_problems(
    tmp_path: Path, data: Path
) -> None:
    rows = [*ROWS, "DGC-0001,,,,东村,,,", "dgc-0004,孙七,11010519491231002x,12,东村,,,"]
    path = write(tmp_path, "r.csv", excel_utf8(CHINESE, rows))
    refused = residents("import", "--data", data, "--csv", path)
    assert refused.returncode == 2
    for line in (
        "2 rows cannot be used",
        "row 5, column 姓名: is empty",
        "row 5, column 账户: dgc-0001 already appears in row 2",
        "row 6, column 电话: '12' is not a phone number",
        "row 6, column 身份证号: the same ID number is already given in row 2",
    ):
        assert line in refused.stderr, refused.stderr
