"""``redlist-node serve``: its settings (defaults, TOML file, flags) and its command line."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import re
import signal
import urllib.request
from pathlib import Path

import pytest
from tests.builders import Town, create_log

from redlist.ledger.errors import FormatError
from redlist.node.cli import main
from redlist.node.config import DEFAULT_MAX_GROUP, ServeSettings, parse_address
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.server import serve_until_signalled

FULL_FILE = """\
data = "town-data"
listen = "0.0.0.0:7420"
metrics = "127.0.0.1:9420"
max_batch = 500
max_group = 2000
commit_depth = 3
grace_seconds = 2
max_message_bytes = 1048576
log_level = "warning"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_config_file_sets_everything_and_paths_are_relative_to_it(tmp_path: Path) -> None:
    values = load_config_file(write(tmp_path / "serve.toml", FULL_FILE))
    settings = resolve_settings(values, {})
    assert settings == ServeSettings(
        data=tmp_path / "town-data",
        listen="0.0.0.0:7420",
        metrics="127.0.0.1:9420",
        max_batch=500,
        max_group=2000,
        commit_depth=3,
        grace_seconds=2.0,
        max_message_bytes=1 << 20,
        log_level="warning",
    )


def test_flags_override_the_file_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    values = load_config_file(write(tmp_path / "serve.toml", 'listen = "127.0.0.1:1"\n'))
    settings = resolve_settings(
        values, {"data": Path("/srv/d"), "listen": "127.0.0.1:0", "metrics": None}
    )
    assert settings == ServeSettings(data=Path("/srv/d"), listen="127.0.0.1:0")


def test_a_larger_batch_limit_widens_the_group(tmp_path: Path) -> None:
    settings = resolve_settings({}, {"data": tmp_path, "listen": "h:1", "max_batch": 50_000})
    assert (settings.max_batch, settings.max_group) == (50_000, 50_000)
    small = resolve_settings({}, {"data": tmp_path, "listen": "h:1", "max_batch": 10})
    assert small.max_group == DEFAULT_MAX_GROUP
    with pytest.raises(FormatError, match="max_group"):
        resolve_settings({"max_group": 10}, {"data": tmp_path, "listen": "h:1", "max_batch": 20})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen = ", "not valid TOML"),
        ('lissen = "h:1"\n', "unknown setting 'lissen'"),
        ('max_batch = "10"\n', "'max_batch' must be a whole number"),
        ("max_batch = true\n", "'max_batch' must be a whole number"),
        ("grace_seconds = 'soon'\n", "'grace_seconds' must be a whole number or a number"),
        ("metrics = 9420\n", "'metrics' must be text"),
    ],
)
def test_a_bad_config_file_is_refused_with_its_name(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "serve.toml", text)
    with pytest.raises(FormatError, match=message) as caught:
        load_config_file(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"listen": "h:1"}, "no data given"),
        ({"data": "d"}, "no listen given"),
        ({"data": "d", "listen": "7420"}, "not HOST:PORT"),
        ({"data": "d", "listen": "h:99999"}, "not HOST:PORT"),
        ({"data": "d", "listen": "h:1", "metrics": "h:"}, "metrics address"),
        ({"data": "d", "listen": "h:1", "commit_depth": 0}, "'commit_depth' must be at least 1"),
        ({"data": "d", "listen": "h:1", "grace_seconds": -1.0}, "must not be negative"),
        ({"data": "d", "listen": "h:1", "log_level": "loud"}, "'log_level' must be one of"),
        ({"data": "d", "listen": "h:1", "map_size_gib": 0}, "'map_size_gib' must be at least 1"),
    ],
)
def test_bad_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        resolve_settings(values, {})


def test_the_map_size_comes_from_the_file_or_the_flag() -> None:
    base = {"data": "d", "listen": "h:1"}
    assert resolve_settings(base, {}).map_size_gib is None
    assert resolve_settings({**base, "map_size_gib": 4}, {}).map_size_gib == 4
    assert resolve_settings({**base, "map_size_gib": 4}, {"map_size_gib": 8}).map_size_gib == 8


def test_addresses_parse_with_ipv6_brackets() -> None:
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address("[::1]:7420") == ("[::1]", 7420)
    assert parse_address("node.example:443") == ("node.example", 443)


def test_the_command_refuses_a_missing_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--data", str(tmp_path / "none"), "--listen", "127.0.0.1:0"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_command_refuses_a_file_as_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "notes.txt", "not a log\n")
    code = main(["serve", "--data", str(path), "--listen", "127.0.0.1:0"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {path} is a file, not a data directory; --data names the directory "
        "'redlist-node init' created\n"
    )


def test_the_help_shows_the_tls_example_on_two_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    shown = capsys.readouterr().out
    assert "--listen 0.0.0.0:7420 \\\n      --tls-cert tls/node.pem" in shown


def test_the_command_needs_a_listen_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--data", str(tmp_path)]) == 2
    assert "error: no listen given: pass --listen" in capsys.readouterr().err


def test_the_command_reports_a_bad_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "serve.toml", "max_batch = 0\n")
    code = main(["serve", "--config", str(path), "--data", str(tmp_path), "--listen", "h:1"])
    assert code == 2
    assert "'max_batch' must be at least 1" in capsys.readouterr().err


def test_serving_prints_the_bound_address_and_metrics_then_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    town = Town.generate()
    log = create_log(tmp_path / "data", town, setup=True)
    settings = ServeSettings(
        data=tmp_path / "data", listen="127.0.0.1:0", metrics="127.0.0.1:0", grace_seconds=1
    )
    out = _Writes()
    scraped: list[str] = []
    frozen: list[int] = []

    async def signal_when_serving() -> None:
        while "serving log" not in out.getvalue():
            await asyncio.sleep(0.01)
        frozen.append(gc.get_freeze_count())
        match = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", out.getvalue())
        assert match, out.getvalue()
        url = f"http://127.0.0.1:{match[1]}/metrics"
        scraped.append(
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        )
        os.kill(os.getpid(), signal.SIGTERM)

    async def scenario() -> None:
        signaller = asyncio.create_task(signal_when_serving())
        await asyncio.wait_for(serve_until_signalled(log, settings, out), 20)
        await signaller

    try:
        asyncio.run(scenario())
    finally:
        log.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("metrics on http://127.0.0.1:")
    assert lines[1].startswith(f"serving log {town.origin} (11 entries) on 127.0.0.1:")
    assert not lines[1].endswith(":0")
    # Written whole: a log record of another thread cannot split it (python -u).
    assert f"{lines[1]}\n" in out.writes
    assert "redlist_tree_size 11.0" in scraped[0]
    # Start-up's objects are out of the collector's way while serving, and back after.
    assert frozen[0] > 10_000
    assert gc.get_freeze_count() == 0


class _Writes(io.StringIO):
    """A text buffer that also keeps each write as it came."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)
