"""``redlist-verify bundle --publicity``: monthly bundles in sequence, and their publicity.csv.

Bundles exported by the node from real LMDB (``tests.node.publicitytown``), verified in
order with one state file; a month altered (a figure, a name left unmasked, a row held
back, a leaf) or skipped fails naming the entry, and erasing a resident keeps every
bundle verifiable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.node.publicitytown import PublicityTown, build

from redlist.ledger.publicity import decode_csv
from redlist.ledger.registerstore import RegisterStore
from redlist.node.cli import main as node
from redlist.verifier.cli import main as verify


@pytest.fixture(scope="module")
def months(tmp_path_factory: pytest.TempPathFactory) -> tuple[PublicityTown, Path]:
    root = tmp_path_factory.mktemp("months")
    town = build(root / "data")
    for month in ("2026-01", "2026-02", "2026-03"):
        export(town, root / month, month)
    assert node(["export", "--data", str(town.data), "--out", str(root / "full"), "--full"]) == 0
    return town, root


def export(town: PublicityTown, out: Path, month: str) -> None:
    assert node(["export", "--data", str(town.data), "--out", str(out), "--month", month]) == 0


def run(
    town: PublicityTown, directory: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    argv = ["bundle", str(directory), "--log-key", town.log_key, "--state", str(state)]
    status = verify([*argv, "--publicity", "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_consecutive_months_verify_in_sequence(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town, root = months
    state = tmp_path / "state.json"
    for month in ("2026-01", "2026-02", "2026-03"):
        status, report = run(town, root / month, state, capsys)
        assert status == 0, report
        publicity = report["publicity"]
        assert isinstance(publicity, dict) and publicity["month"] == month
    status, report = run(town, root / "2026-01", tmp_path / "new.json", capsys)
    assert report["publicity"] == {
        "month": "2026-01",
        "rows": 10,
        "residents_shown": 7,
        "residents_left_out": 2,
        "listed_entries": 12,
        "notes_checked": None,
        "notes_unchecked": 0,
        # the notice: 10 detail rows, 3 on the black and red lists, 5 of the totals
        "notice_rows_checked": 18,
        "texts_in_bundle": False,
        "draft": False,
    }


def test_a_skipped_month_fails(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town, root = months
    state = tmp_path / "state.json"
    assert run(town, root / "2026-01", state, capsys)[0] == 0
    status, report = run(town, root / "2026-03", state, capsys)
    assert status == 1
    error = report["error"]
    assert isinstance(error, dict)
    assert (error["seq"], error["check"], error["kind"]) == (None, "month", "misreported")
    assert "do not follow one another" in str(report["error"])


def test_a_bundle_of_more_than_one_month_fails(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town, root = months
    status, report = run(town, root / "full", tmp_path / "state.json", capsys)
    assert status == 1
    error = report["error"]
    assert isinstance(error, dict)
    assert (error["check"], error["seq"]) == ("month", town.february[0])
    assert "recorded in 2026-02" in error["message"]


def test_a_month_needs_the_months_before_it(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town, root = months
    capsys.readouterr()
    argv = ["bundle", str(root / "2026-02"), "--log-key", town.log_key, "--publicity"]
    assert verify(argv) == 2
    assert "--state FILE" in capsys.readouterr().err
    assert verify([*argv, "--structure-only"]) == 2


def _altered(root: Path, tmp_path: Path, month: str) -> Path:
    copy = tmp_path / month
    shutil.copytree(root / month, copy)
    return copy


@pytest.mark.parametrize(
    ("old", "new", "check"),
    [
        (",1075,AAA,", ",1076,AAA,", "累计分 is '1076'"),
        (",985,A,", ",985,AA,", "等级 is 'AA'"),
        (",-20,", ",-10,", "分数 is '-10'"),
        ("欧**娜", "欧阳娜娜", "姓名 '欧阳娜娜' is not masked"),
        ("李*光", "李四光*", "shows 3 characters"),
        # A note's text is not in the log (a salted commitment, DESIGN 9.2): what a
        # verifier checks is that only an award that commits to a note shows one.
        (",21,,,个人\r\n", ",21,,捏造的备注,个人\r\n", "备注 is given, but entry 21 has no note"),
        # DESIGN 3.7: publicity never shows an ID or phone number, even inside a note.
        (
            "清理了东边的池塘",
            "电话 139 1234 5678",
            "备注 shows a number that may be an ID or phone",
        ),
    ],
)
def test_an_altered_row_fails_naming_it(
    months: tuple[PublicityTown, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    check: str,
) -> None:
    town, root = months
    copy = _altered(root, tmp_path, "2026-01")
    path = copy / "publicity.csv"
    text = path.read_bytes().decode("utf-8")
    assert old in text
    path.write_bytes(text.replace(old, new, 1).encode("utf-8"))
    status, report = run(town, copy, tmp_path / "state.json", capsys)
    assert status == 1
    error = report["error"]
    assert isinstance(error, dict) and error["check"] == "publicity"
    assert check in error["message"] and "publicity.csv line" in error["message"]
    assert not (tmp_path / "state.json").exists()  # a failed month pins nothing


def test_a_row_held_back_fails(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town, root = months
    copy = _altered(root, tmp_path, "2026-01")
    path = copy / "publicity.csv"
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    deduction = next(line for line in lines if f",{town.deduction},," in line)
    path.write_bytes("\r\n".join(line for line in lines if line != deduction).encode("utf-8"))
    status, report = run(town, copy, tmp_path / "state.json", capsys)
    assert status == 1
    error = report["error"]
    assert isinstance(error, dict)
    assert (error["seq"], error["check"], error["kind"]) == (
        town.deduction,
        "publicity",
        "misreported",
    )
    assert "shown in full" in str(report["error"])
    # The report names the resident, masked as the bundle's publicity.csv shows them.
    entry = error["entry"]
    assert isinstance(entry, dict)
    assert entry["seq"] == town.deduction and entry["rule_title"]
    masked = entry["masked_name"]
    assert isinstance(masked, str) and "*" in masked
    assert f",{masked},{entry['account']}," in path.read_bytes().decode("utf-8")


def test_published_notes_are_checked_against_the_texts(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town, _ = months
    month = tmp_path / "2026-01"
    argv = ["export", "--data", str(town.data), "--out", str(month), "--month", "2026-01"]
    texts_file = tmp_path / "2026-01-texts.jsonl"
    assert node([*argv, "--texts", str(texts_file)]) == 0
    assert texts_file.exists() and not (month / "texts.jsonl").exists()
    capsys.readouterr()
    verify_argv = ["bundle", str(month), "--log-key", town.log_key, "--publicity"]
    texts = ["--texts", str(texts_file)]
    assert verify([*verify_argv, *texts, "--state", str(tmp_path / "a.json"), "--json"]) == 0
    publicity = json.loads(capsys.readouterr().out)["publicity"]
    shown = decode_csv((month / "publicity.csv").read_bytes())
    with_notes = sum(1 for row in shown if row.cells["备注"])
    assert with_notes > 0
    assert (publicity["notes_checked"], publicity["notes_unchecked"]) == (with_notes, 0)

    # The same note changed on the list and on the notice alike: only the texts show it.
    for name in ("publicity.csv", "publicity.html"):
        path = month / name
        text = path.read_bytes().decode("utf-8")
        assert "清理了东边的池塘" in text
        path.write_bytes(text.replace("清理了东边的池塘", "清理了西边的池塘", 1).encode("utf-8"))
    # Without the texts the words cannot be checked; with them the changed note is caught.
    assert verify([*verify_argv, "--state", str(tmp_path / "b.json"), "--json"]) == 0
    capsys.readouterr()
    status = verify([*verify_argv, *texts, "--state", str(tmp_path / "c.json"), "--json"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert (status, error["check"], error["kind"]) == (1, "publicity", "misreported")
    assert "清理了东边的池塘" in error["message"] and "committed to" in error["message"]


def test_an_altered_leaf_fails_before_the_csv_is_read(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town, root = months
    state = tmp_path / "state.json"
    assert run(town, root / "2026-01", state, capsys)[0] == 0
    copy = _altered(root, tmp_path, "2026-02")
    leaves = bytearray((copy / "leaves").read_bytes())
    leaves[-40] ^= 1
    (copy / "leaves").write_bytes(bytes(leaves))
    status, report = run(town, copy, state, capsys)
    assert status == 1
    assert isinstance(report["error"], dict) and report["error"]["seq"] is not None


def test_erasing_a_resident_keeps_every_bundle_verifiable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = build(tmp_path / "data")
    export(town, tmp_path / "jan", "2026-01")
    with RegisterStore.open(town.data, write=True) as register:
        register.erase("dgc-0002", town.town.now_ms)
    export(town, tmp_path / "feb", "2026-02")
    export(town, tmp_path / "jan-again", "2026-01")
    state = tmp_path / "state.json"
    for month in ("jan", "feb"):
        status, report = run(town, tmp_path / month, state, capsys)
        assert status == 0, report
    status, report = run(town, tmp_path / "jan-again", tmp_path / "other.json", capsys)
    assert status == 0, report
    feb = (tmp_path / "feb" / "publicity.csv").read_text(encoding="utf-8-sig")
    assert "dgc-0002" not in feb and "dgc-0002" in (tmp_path / "jan" / "publicity.csv").read_text()
    assert "dgc-0002" not in (tmp_path / "jan-again" / "publicity.csv").read_text()


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ('<td class="n">+5</td>', '<td class="n">+50</td>', "分数 is '+50'"),  # a detail row
        ('<td class="n">1075</td>', '<td class="n">1275</td>', "score"),  # a red-list score
        ("<td>9 条</td>", "<td>10 条</td>", "totals"),  # the totals
    ],
)
def test_a_notice_changed_after_export_fails(
    months: tuple[PublicityTown, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    said: str,
) -> None:
    # The notice is what goes on the board: it must show what publicity.csv shows.
    town, root = months
    month = _altered(root, tmp_path, "2026-01")
    path = month / "publicity.html"
    html = path.read_text(encoding="utf-8")
    assert old in html
    path.write_text(html.replace(old, new, 1), encoding="utf-8")
    status, report = run(town, month, tmp_path / "state.json", capsys)
    error = report["error"]
    assert isinstance(error, dict)
    assert (status, error["check"]) == (1, "publicity")
    assert said in str(error["message"]) and "publicity.html" in str(error["message"])


def test_the_black_list_says_which_deductions_are_objected_to(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deduction the resident objected to in the month is marked on the black list, so
    the board does not show it as settled; the verifier holds the mark to the CSV's
    objections, both ways."""
    town, root = months
    html = (root / "2026-03" / "publicity.html").read_text(encoding="utf-8")
    black = html[html.index("<h3>黑榜（本月扣分）</h3>") :]
    black = black[: black.index("</table>")]
    assert "<th>异议</th>" in black
    objection = town.march_objection
    assert f"<td>已提出异议（第 {objection} 条）</td>" in black
    assert "待评议会审核" in html
    january = (root / "2026-01" / "publicity.html").read_text(encoding="utf-8")
    assert "已提出异议" not in january  # its deduction's objection came in February
    for old, new in (
        (f"<td>已提出异议（第 {objection} 条）</td>", "<td></td>"),
        ("<td>已提出异议", "<td>已撤回异议"),
    ):
        state = tmp_path / f"state-{len(old)}.json"
        for month in ("2026-01", "2026-02"):
            assert run(town, root / month, state, capsys)[0] == 0
        copy = tmp_path / f"march-{len(old)}"
        shutil.copytree(root / "2026-03", copy)
        notice = copy / "publicity.html"
        notice.write_text(html.replace(old, new, 1), encoding="utf-8")
        status, report = run(town, copy, state, capsys)
        error = report["error"]
        assert isinstance(error, dict) and (status, error["check"]) == (1, "publicity")
        assert "异议" in str(error["message"])


def test_a_folder_holding_the_texts_is_verified_with_a_warning(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export made before --texts took a file left texts.jsonl in the folder: the data
    verify, and the report warns that the folder must not be published."""
    town, root = months
    copy = _altered(root, tmp_path, "2026-01")
    (copy / "texts.jsonl").write_text("")
    status, report = run(town, copy, tmp_path / "state.json", capsys)
    publicity = report["publicity"]
    assert status == 0 and isinstance(publicity, dict) and publicity["texts_in_bundle"] is True
    argv = ["bundle", str(copy), "--log-key", town.log_key, "--publicity"]
    assert verify([*argv, "--state", str(tmp_path / "human.json")]) == 0
    out = capsys.readouterr().out
    assert "WARNING: this folder also holds texts.jsonl" in out


def test_a_draft_verifies_and_leaves_the_state_for_the_publication(
    months: tuple[PublicityTown, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A draft is a preview: it verifies, and the auditor's state stays where the month's
    publication will start, so that the publication verifies after it."""
    town, root = months
    state = tmp_path / "state.json"
    for month in ("2026-01", "2026-02"):
        assert run(town, root / month, state, capsys)[0] == 0
    before = state.read_bytes()
    draft = tmp_path / "draft"
    argv = ["export", "--data", str(town.data), "--out", str(draft), "--month", "2026-03"]
    assert node([*argv, "--draft"]) == 0
    status, report = run(town, draft, state, capsys)
    publicity = report["publicity"]
    assert status == 0 and isinstance(publicity, dict) and publicity["draft"] is True
    assert state.read_bytes() == before
    human = ["bundle", str(draft), "--log-key", town.log_key, "--publicity", "--state", str(state)]
    assert verify(human) == 0
    assert "This is a draft (草稿)" in capsys.readouterr().out
    status, report = run(town, root / "2026-03", state, capsys)
    publicity = report["publicity"]
    assert status == 0 and isinstance(publicity, dict) and publicity["draft"] is False
    assert state.read_bytes() != before
