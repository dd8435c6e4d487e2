"""``redlist-verify``'s entry point starts a long bundle audit's workers first (ADR 0048)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redlist.ledger import bundle, sigschedule
from redlist.ledger.cores import most_workers
from redlist.verifier import launch

LONG = sigschedule.PROCESS_MIN_ENTRIES * launch.MIN_LEAF_BYTES


def test_the_launchers_names_are_the_librarys() -> None:
    from redlist.verifier import cli

    assert launch.LEAVES_FILE == bundle.LEAVES_FILE
    assert launch.PROCESS_MIN_ENTRIES == sigschedule.PROCESS_MIN_ENTRIES
    assert (launch.PROGRAM, launch.EXIT_INTERRUPTED) == (cli.PROGRAM, cli.EXIT_INTERRUPTED)


def _bundle(tmp_path: Path, size: int) -> Path:
    directory = tmp_path / f"bundle-{size}"
    directory.mkdir()
    with open(directory / launch.LEAVES_FILE, "wb") as leaves:
        leaves.truncate(size)  # sparse: only the size is read
    return directory


def test_a_long_bundle_starts_one_worker_per_core_or_those_asked(tmp_path: Path) -> None:
    long = str(_bundle(tmp_path, LONG))
    assert launch.early_workers(["bundle", long, "--log-key", "k.pub"]) == 0
    assert launch.early_workers(["bundle", "--json", long, "--workers", "3"]) == 3
    assert launch.early_workers(["bundle", long, "--workers=4"]) == 4
    assert launch.early_workers(["bundle", long, "--work", "3"]) == 3  # argparse's prefix
    assert launch.early_workers(["bundle", long, "--wo=5"]) == 5
    # The one option before the command: the language of the messages.
    assert launch.early_workers(["--lang", "en", "bundle", long]) == 0
    assert launch.early_workers(["--lang=zh_CN", "bundle", long, "--workers", "2"]) == 2


@pytest.mark.parametrize(
    "extra",
    [
        ["--structure-only"],
        ["--help"],
        ["-h"],
        ["--workers", "two"],
        ["--workers=-1"],
        # The command refuses these: nothing is started for a run that will not audit.
        ["--workers=0"],
        ["--workers", "0"],
        ["--workers=\N{SUPERSCRIPT TWO}"],  # a digit to str.isdigit, not to int()
        ["--workers", str(most_workers() + 1)],  # more than the machine can use
        ["--w", "2"],  # --workers or --witness: refused as ambiguous
        # argparse takes an unambiguous prefix of an option for the option.
        ["--hel"],
        ["--structure"],
        ["--str=x"],
    ],
)
def test_no_workers_start_early_where_the_audit_will_not_use_them(
    tmp_path: Path, extra: list[str]
) -> None:
    long = str(_bundle(tmp_path, LONG))
    assert launch.early_workers(["bundle", long, *extra]) is None


def test_a_short_bundle_or_another_command_starts_none(tmp_path: Path) -> None:
    short = str(_bundle(tmp_path, LONG - 1))
    long = str(_bundle(tmp_path, LONG))
    assert launch.early_workers(["bundle", short]) is None
    assert launch.early_workers(["bundle", str(tmp_path / "missing")]) is None
    assert launch.early_workers(["bundles", long]) is None
    assert launch.early_workers(["node", "127.0.0.1:1"]) is None
    assert launch.early_workers([]) is None
    assert launch.early_workers(["--lang", "bundle", long]) is None  # "bundle" is its value
    assert os.path.getsize(Path(long) / launch.LEAVES_FILE) == LONG


def test_deciding_never_opens_a_file(tmp_path: Path) -> None:
    # Only sizes are read: a leaves file that is a FIFO nobody writes must not block,
    # and a bundle path that is a file, or holds a NUL, is no bundle.
    fifo_bundle = tmp_path / "fifo"
    fifo_bundle.mkdir()
    os.mkfifo(fifo_bundle / launch.LEAVES_FILE)
    plain = tmp_path / "plain"
    plain.write_bytes(bytes(LONG))
    for path in (str(fifo_bundle), str(plain), "nul\0byte"):
        assert launch.early_workers(["bundle", path]) is None


def test_the_installed_command_enters_through_the_launcher() -> None:
    from importlib.metadata import entry_points

    (command,) = entry_points(group="console_scripts", name="redlist-verify")
    assert command.value == "redlist.verifier.launch:main"


_WRONG_GUESS = """
import sys
from redlist.ledger import sigworkers
from redlist.verifier.launch import main
status = main()
sys.stderr.write("\\nEARLY %s\\n" % (sigworkers._early is not None))
sys.exit(status)
"""


def _marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (a worker inherits its parent's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_wrong_guess_is_refused_as_before_and_leaves_no_worker_behind(tmp_path: Path) -> None:
    from tests.verifier.test_failure_reports import GOLDEN

    from redlist.ledger.cores import available_cores
    from redlist.verifier import cli

    # A leaves file long enough, and nothing else: the command refuses the bundle.
    long = _bundle(tmp_path, LONG)
    marker = f"early-{os.getpid()}-{tmp_path.name}"
    finished = subprocess.run(
        [
            sys.executable,
            "-c",
            _WRONG_GUESS,
            "bundle",
            str(long),
            "--log-key",
            str(GOLDEN / "log.pub"),
            "--json",
        ],
        env={**os.environ, "REDLIST_TEST_MARK": marker},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == cli.EXIT_CANNOT_START, finished.stderr
    assert "the bundle has no checkpoint file" in finished.stdout
    # The workers were started ahead, never taken, and stopped at exit.
    assert f"EARLY {available_cores() >= 2}" in finished.stderr
    deadline = time.monotonic() + 10
    while _marked_processes(marker):
        assert time.monotonic() < deadline, "a worker started early outlived the command"
        time.sleep(0.05)


def _launch(
    *arguments: str, stdout: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redlist.verifier.launch", *arguments],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_ends_with_its_status_and_its_whole_report(tmp_path: Path) -> None:
    # It ends without the interpreter's teardown: nothing it wrote may be lost.
    from tests.verifier.test_failure_reports import GOLDEN, golden_with_a_flipped_signature

    from redlist.verifier import cli

    key = str(GOLDEN / "log.pub")
    state = tmp_path / "town.state"
    verified = _launch(
        "bundle", str(GOLDEN / "full"), "--log-key", key, "--json", "--state", str(state)
    )
    assert verified.returncode == cli.EXIT_VERIFIED, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["accounts"]
    assert state.is_file() and Path(f"{state}.semantics").is_file()
    again = _launch("bundle", str(GOLDEN / "full"), "--state", str(state))  # the state is whole
    assert again.returncode == cli.EXIT_VERIFIED, again.stderr
    assert again.stdout.endswith("\n")

    damaged, _ = golden_with_a_flipped_signature(tmp_path / "damaged")
    failed = _launch("bundle", str(damaged), "--log-key", key, "--json")
    assert failed.returncode == cli.EXIT_FAILED
    assert json.loads(failed.stdout)["ok"] is False
    assert "verification failed" in failed.stderr

    missing = _launch("bundle", str(tmp_path / "nowhere"), "--log-key", key)
    assert missing.returncode == cli.EXIT_CANNOT_START
    assert "is not a directory" in missing.stderr


def test_a_command_started_with_its_output_closed_checks_nothing_and_says_so() -> None:
    from tests.verifier.test_failure_reports import GOLDEN

    from redlist.verifier import cli

    command = [str(Path(sys.executable).parent / "redlist-verify"), "bundle", str(GOLDEN / "full")]
    for extra in ([], ["--json"]):
        closed = subprocess.run(
            [
                "sh",
                "-c",
                'exec "$@" >&-',
                "sh",
                *command,
                "--log-key",
                str(GOLDEN / "log.pub"),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # Not "verification failed" (1): the golden bundle is sound, and nothing was checked.
        assert closed.returncode == cli.EXIT_CANNOT_START, closed.stderr
        assert closed.stderr.startswith("error: redlist-verify's standard output is closed")
        assert "Traceback" not in closed.stderr


#: Ctrl-C while the launcher loads the command: the import of ``cli`` is interrupted.
_INTERRUPTED_WHILE_LOADING = """
import sys

class Interrupting:
    def find_spec(self, name, path=None, target=None):
        if name == "redlist.verifier.cli":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["redlist-verify", *sys.argv[1:]]
from redlist.verifier import launch

sys.exit(launch.main())
"""


def test_ctrl_c_while_the_command_loads_ends_quietly_with_130(tmp_path: Path) -> None:
    long = str(_bundle(tmp_path, LONG))  # its workers start first, and must be stopped
    interrupted = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_WHILE_LOADING, "bundle", long, "--log-key", "k"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert interrupted.returncode == launch.EXIT_INTERRUPTED, interrupted.stderr
    assert interrupted.stderr == "\nredlist-verify: interrupted; nothing was verified\n"
    chinese = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_WHILE_LOADING, "--lang", "zh_CN", "bundle", long],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert chinese.returncode == launch.EXIT_INTERRUPTED, chinese.stderr
    assert chinese.stderr.startswith("\nredlist-verify") and "Traceback" not in chinese.stderr
    assert "interrupted" not in chinese.stderr  # the command's Chinese words
