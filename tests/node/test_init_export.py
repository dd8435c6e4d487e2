"""``redlist-node init`` and ``redlist-node export --full`` on real data directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builders import Town, create_log, leaf_at, town_config
from tests.rawstore import int_key, raw_tables

from redlist.ledger import bundle, keyfile
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import Envelope, Genesis, Grade, Leaf, decode_body
from redlist.ledger.errors import StoreError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.store import ENV_DIR_NAME
from redlist.node import export as export_module
from redlist.node.cli import main
from redlist.node.towncfg import DEFAULT_TOWN_CONFIG
from redlist.verifier import cli as verifier_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "dongguan.example/redlist"
#: 2026-10-01T00:00:00Z
GENESIS_AT = 1_790_812_800_000


@pytest.fixture
def admin_key(tmp_path: Path) -> Path:
    path = tmp_path / "admin.pem"
    keyfile.write_key_files(path, SigningKey.generate(), "Liu Jun (admin)")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def init(
    capsys: pytest.CaptureFixture[str], data: Path, admin_key: Path, *extra: str
) -> tuple[int, str, str]:
    return run(
        capsys,
        "init",
        "--data",
        str(data),
        "--origin",
        ORIGIN,
        "--admin-key",
        str(admin_key),
        *extra,
    )


def verify(out: Path, data: Path) -> int:
    return verifier_cli.main(["bundle", str(out), "--log-key", str(data / "log.pub")])


# -- init -------------------------------------------------------------------------


def test_init_prints_the_log_key_and_creates_a_log_of_one_entry(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code, output, error = init(capsys, data, admin_key, "--genesis-at", str(GENESIS_AT))
    assert (code, error) == (0, "")
    printed_key = output.splitlines()[-1]
    verifier_key = VerifierKey.parse(printed_key)
    assert verifier_key.name == ORIGIN
    assert (data / "log.pub").read_text().strip() == printed_key
    assert f"saved in {data / 'log.pub'}" in output
    with Log.open(data, readonly=True) as log:
        assert log.size == 1
        assert log.origin == ORIGIN
        assert log.verifier_key == verifier_key
        assert town_config(log) == DEFAULT_TOWN_CONFIG
        leaf = Leaf.from_bytes(leaf_at(log, 0))
    genesis = decode_body(Envelope.from_bytes(leaf.envelope).body)
    assert isinstance(genesis, Genesis)
    assert genesis.admin == keyfile.read_signing_key(admin_key).public
    assert genesis.at == leaf.time == GENESIS_AT


def test_init_in_chinese_lists_the_grades_with_chinese_commas(
    tmp_path: Path, admin_key: Path
) -> None:
    data = tmp_path / "data"
    argv = ["init", "--data", str(data), "--origin", ORIGIN, "--admin-key", str(admin_key)]
    done = subprocess.run(
        [Path(sys.executable).parent / "redlist-node", "--lang", "zh_CN", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = next(line for line in done.stdout.splitlines() if line.startswith("本镇配置："))
    assert "等级 AAA 自 1050 起，AA 自 1030 起，A 自 960 起，" in config
    assert ", " not in config


def test_init_without_genesis_at_uses_the_clock(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = time.time_ns() // 1_000_000
    assert init(capsys, tmp_path / "data", admin_key)[0] == 0
    after = time.time_ns() // 1_000_000
    with Log.open(tmp_path / "data", readonly=True) as log:
        leaf = Leaf.from_bytes(leaf_at(log, 0))
    assert before <= leaf.time <= after


def test_default_config_is_wendengs_scale() -> None:
    assert DEFAULT_TOWN_CONFIG.to_value() == {
        "base": 1000,
        "grades": [["AAA", 1050], ["AA", 1030], ["A", 960], ["B", 850], ["C", 600], ["D", None]],
        "quorum": 2,
        "publicity_days": 7,
        "tz": "Asia/Shanghai",
    }


def test_init_with_a_toml_config_overrides_the_defaults(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "town.toml"
    config.write_text(
        'quorum = 3\ntz = "Asia/Urumqi"\nbackdate_days = 31\n'
        '[[grades]]\nname = "Gold"\nmin = 1100\n'
        '[[grades]]\nname = "Standard"\n',
        encoding="utf-8",
    )
    code, output, _ = init(capsys, tmp_path / "data", admin_key, "--config", str(config))
    assert code == 0
    assert "council quorum 3" in output
    assert "deeds dated up to 31 days back" in output
    with Log.open(tmp_path / "data", readonly=True) as log:
        town = town_config(log)
    assert town.quorum == 3
    assert town.tz == "Asia/Urumqi"
    assert town.backdate_days == 31
    assert town.grades == (Grade("Gold", 1100), Grade("Standard", None))
    assert (town.base, town.publicity_days) == (1000, 7)  # kept from the default


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("quorum = ", "is not valid TOML"),
        ("quorum = 0", "'quorum' must be at least 1"),
        ("base = 1000.5", "'base' must be an integer"),
        ("bonus = 5", "unknown field(s) 'bonus'"),
        ('tz = "Mars/Olympus"', "not a known IANA time zone"),
        ("backdate_days = -1", "'backdate_days' must be at least 0"),
        ("backdate_days = 20000", "'backdate_days' must be at most 11000"),
        ('[[grades]]\nname = "A"\nmin = 900', "the last grade ('A') must have no 'min'"),
        ('[[grades]]\nname = "A"\n[[grades]]\nname = "B"', "grade 1 ('A') needs a 'min'"),
        ('[[grades]]\nname = "A"\nlevel = 2', "grade 1: unknown key(s) 'level'"),
    ],
)
def test_bad_config_is_refused_before_anything_is_created(
    tmp_path: Path,
    admin_key: Path,
    capsys: pytest.CaptureFixture[str],
    toml: str,
    message: str,
) -> None:
    config = tmp_path / "town.toml"
    config.write_text(toml + "\n", encoding="utf-8")
    code, output, error = init(capsys, tmp_path / "data", admin_key, "--config", str(config))
    assert code == 2
    assert output == ""
    assert error.startswith(f"error: town config {config}")
    assert message in error
    assert not (tmp_path / "data").exists()


def test_a_config_saved_by_notepad_with_a_byte_order_mark(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "town.toml"
    config.write_bytes(b"\xef\xbb\xbfquorum = 3\r\n")
    code, output, error = init(capsys, tmp_path / "data", admin_key, "--config", str(config))
    assert code == 0, error
    assert "council quorum 3" in output


def test_a_directory_as_config_is_named(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, error = init(capsys, tmp_path / "data", admin_key, "--config", str(tmp_path))
    assert code == 2
    assert error == f"error: town config {tmp_path} is a directory, not a file\n"


@pytest.mark.parametrize("origin", ["my town", "town+log", "", "line\nbreak"])
def test_unusable_origin_exits_2_and_leaves_no_data_dir(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str], origin: str
) -> None:
    data = tmp_path / "data"
    code, _, error = run(
        capsys, "init", "--data", str(data), "--origin", origin, "--admin-key", str(admin_key)
    )
    assert code == 2
    assert error.startswith(f"error: --origin {origin!r} cannot name a log")
    assert "town.example/redlist" in error
    assert not data.exists()


def test_missing_admin_key_exits_2_and_leaves_no_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code, _, error = init(capsys, data, tmp_path / "nobody.pem")
    assert code == 2
    assert error == f"error: private key file {tmp_path / 'nobody.pem'} does not exist\n"
    assert not data.exists()


def test_public_key_file_as_admin_key_exits_2_and_leaves_no_data_dir(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code, _, error = init(capsys, data, keyfile.public_path(admin_key))
    assert code == 2
    assert "admin.pem.pub holds a public key; signing needs the private key file" in error
    assert not data.exists()


def test_a_data_dir_that_cannot_be_created_is_named(
    tmp_path: Path,
    admin_key: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    data = tmp_path / "locked" / "data"
    code, output, error = init(capsys, data, admin_key)
    assert (code, output) == (2, "")
    assert error == f"error: cannot create the data directory {data}: Permission denied\n"


def test_init_refuses_a_used_data_dir_and_leaves_it_alone(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("keep me")
    code, _, error = init(capsys, data, admin_key)
    assert code == 2
    assert "not an empty directory" in error
    assert [path.name for path in data.iterdir()] == ["notes.txt"]


def test_init_twice_refuses_the_second_time(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert init(capsys, data, admin_key)[0] == 0
    key_before = (data / "log.key").read_bytes()
    assert init(capsys, data, admin_key)[0] == 2
    assert (data / "log.key").read_bytes() == key_before


def test_genesis_in_the_future_is_a_usage_error(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tomorrow = time.time_ns() // 1_000_000 + 24 * 3600 * 1000
    with pytest.raises(SystemExit) as exit_info:
        init(capsys, tmp_path / "data", admin_key, "--genesis-at", str(tomorrow))
    assert exit_info.value.code == 2
    assert "lies in the future" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# -- export -----------------------------------------------------------------------


@pytest.fixture
def town_data(tmp_path: Path) -> Path:
    """A data directory holding a small town: genesis, staff, rules, a few entries."""
    town = Town.from_seed(b"export tests")
    data = tmp_path / "data"
    with create_log(data, town, setup=True) as log:
        log.append(
            [
                town.award("resident-1", "clean-pond"),
                town.award("resident-2", "burn-straw"),
                town.award("resident-1", "epidemic-duty", 2),
                town.redeem("resident-1", 10),
            ],
            now_ms=town.now_ms,
        )
    return data


def test_export_writes_a_bundle_that_verifies(
    tmp_path: Path, town_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    code, output, error = run(
        capsys, "export", "--data", str(town_data), "--out", str(out), "--full"
    )
    assert (code, error) == (0, "")
    with Log.open(town_data, readonly=True) as log:
        size = log.size
        leaves = [leaf for _, leaf in log.leaves(0, size)]
        checkpoint = log.checkpoint()
        log_key = log.verifier_key
    assert sorted(path.name for path in out.iterdir()) == ["checkpoint", "leaves", "manifest.json"]
    manifest = bundle.decode_manifest((out / "manifest.json").read_bytes())
    assert manifest == bundle.Manifest(log_key.name, 0, size)
    assert json.loads((out / "manifest.json").read_text())["format"] == "redlist-bundle/1"
    assert (out / "checkpoint").read_bytes() == checkpoint.to_bytes()
    assert open_checkpoint((out / "checkpoint").read_bytes(), log_key).size == size
    assert bundle.decode_leaves((out / "leaves").read_bytes()) == leaves
    assert f"redlist-verify bundle {out} --log-key {log_key.encode()}" in output
    assert verify(out, town_data) == 0
    assert not list(tmp_path.glob(".bundle.*"))  # no staging directory left


def test_export_into_an_existing_empty_directory(
    tmp_path: Path, town_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    assert run(capsys, "export", "--data", str(town_data), "--out", str(out), "--full")[0] == 0
    assert verify(out, town_data) == 0


def test_export_creates_missing_parent_directories(
    tmp_path: Path, town_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exports" / "2026" / "full"
    assert run(capsys, "export", "--data", str(town_data), "--out", str(out), "--full")[0] == 0
    assert verify(out, town_data) == 0


def test_export_refuses_a_non_empty_out_and_leaves_it_alone(
    tmp_path: Path, town_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "report.docx").write_bytes(b"the town's own file")
    code, output, error = run(
        capsys, "export", "--data", str(town_data), "--out", str(out), "--full"
    )
    assert code == 2
    assert output == ""
    assert error == (
        f"error: {out} is not empty; a bundle is written only into a new or empty directory\n"
    )
    assert [path.name for path in out.iterdir()] == ["report.docx"]
    assert not list(tmp_path.glob(".bundle.*"))


def test_export_refuses_a_file_as_out(
    tmp_path: Path, town_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    out.write_text("x")
    code, _, error = run(capsys, "export", "--data", str(town_data), "--out", str(out), "--full")
    assert code == 2
    assert "is not a directory" in error


def test_export_of_a_directory_without_a_log_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, error = run(
        capsys, "export", "--data", str(tmp_path), "--out", str(tmp_path / "b"), "--full"
    )
    assert code == 2
    assert "is not a redlist data directory" in error
    assert not (tmp_path / "b").exists()


def test_export_needs_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, error = run(capsys, "export", "--data", str(tmp_path), "--out", str(tmp_path / "b"))
    assert code == 2
    assert error == (
        "error: say what to export: --full (the whole log, up to its latest checkpoint) or "
        "--month YYYY-MM (one month, with its publicity)\n"
    )
    assert not (tmp_path / "b").exists()


def test_export_of_a_file_or_a_missing_data_directory(
    tmp_path: Path, admin_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b"
    code, _, error = run(capsys, "export", "--data", str(admin_key), "--out", str(out), "--full")
    assert code == 2
    assert error == (
        f"error: {admin_key} is a file, not a data directory; --data names the directory "
        "'redlist-node init' created\n"
    )
    missing = tmp_path / "nowhere"
    code, _, error = run(capsys, "export", "--data", str(missing), "--out", str(out), "--full")
    assert code == 2
    assert error.startswith(f"error: the data directory {missing} does not exist")
    assert not out.exists()


def test_a_failed_export_leaves_no_bundle(tmp_path: Path, town_data: Path) -> None:
    out = tmp_path / "bundle"
    with Log.open(town_data, readonly=True) as log:
        real_leaves = log.leaves

        def leaves_then_fail(start: int, end: int) -> Iterator[tuple[int, bytes]]:
            for number, item in enumerate(real_leaves(start, end)):
                if number == 3:
                    raise StoreError("simulated read failure")
                yield item

        class Failing:
            """The log, but its leaves fail part of the way (a compiled ``Log`` takes no
            patched methods: docs/adr/0057)."""

            def __getattr__(self, name: str) -> object:
                return getattr(log, name)

            leaves = staticmethod(leaves_then_fail)

        with pytest.raises(StoreError, match="simulated read failure"):
            export_module.export_full(Failing(), out)  # type: ignore[arg-type]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [town_data]


def test_export_refuses_a_damaged_store_and_leaves_no_bundle(
    tmp_path: Path, town_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Damage the store behind the log's back: one byte of leaf 5 changes.
    with raw_tables(town_data / ENV_DIR_NAME) as tables:
        leaf = bytearray(tables.get("leaves", int_key(5)) or b"")
        leaf[-1] ^= 0x01
        tables.put("leaves", int_key(5), bytes(leaf))
    out = tmp_path / "bundle"
    code, output, error = run(
        capsys, "export", "--data", str(town_data), "--out", str(out), "--full"
    )
    assert code == 1
    assert output == ""
    assert "do not match its checkpoint" in error
    assert not out.exists()
    assert not list(tmp_path.glob(".bundle.*"))


WRITER = """
import os, sys
from pathlib import Path
from redlist.ledger.log import Log
from tests.builders import Town

town = Town.from_seed(b"export tests")
stop = Path(sys.argv[2])
appended = 0
with Log.open(Path(sys.argv[1])) as log:
    print("open", flush=True)
    while not stop.exists():
        award = town.award(f"resident-{appended % 40}", "clean-pond", entry_id=os.urandom(16))
        log.append([award], now_ms=town.now_ms)
        appended += 1
print(appended, flush=True)
"""


def test_export_while_another_process_appends(
    tmp_path: Path, town_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Log.open(town_data, readonly=True) as log:
        initial = log.size
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(town_data), str(stop)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "open\n"
        deadline = time.monotonic() + 30
        with Log.open(town_data, readonly=True) as log:
            while log.size < initial + 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert log.size >= initial + 20, "the writer did not append"
        out = tmp_path / "bundle"
        code, _, error = run(
            capsys, "export", "--data", str(town_data), "--out", str(out), "--full"
        )
        assert (code, error) == (0, "")
    finally:
        stop.touch()
        stdout, stderr = writer.communicate(timeout=60)
    assert writer.returncode == 0, stderr
    appended = int(stdout)
    manifest = bundle.decode_manifest((out / "manifest.json").read_bytes())
    assert initial + 20 <= manifest.end <= initial + appended
    assert verify(out, town_data) == 0
