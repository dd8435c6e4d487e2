"""``redlist-verify bundles``: many towns at once, on local processes or a Dask cluster.

Twenty small towns' bundles are built once; every way of auditing them together must
give, log for log, the JSON object a single ``redlist-verify bundle --json`` prints.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.verifier.bundles import standard_log

from redlist.ledger import bundle
from redlist.ledger.entry import Leaf
from redlist.verifier.cli import main

TOWNS = 20


def origin_of(number: int) -> str:
    return f"town{number:02d}.example/redlist"


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A directory of twenty towns' bundles, and a file of their log keys."""
    root = tmp_path_factory.mktemp("province")
    towns = root / "towns"
    keys = [f"# the log keys of the county's {TOWNS} towns"]
    for number in range(TOWNS):
        log = standard_log(b"town %d" % number, origin_of(number))
        for extra in range(number % 4):  # logs of different lengths
            log.append(log.town.award(f"res-{extra:03d}", "clean-pond"))
        log.write_bundle(towns / f"town-{number:02d}")
        keys.append(log.town.log_signer.verifier().encode())
    keys_file = root / "log-keys.txt"
    keys_file.write_text("\n".join(keys) + "\n", encoding="utf-8")
    return towns, keys_file


def run(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(list(argv))
    return status, stdout.getvalue(), stderr.getvalue()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def single_run(directory: Path, keys_file: Path) -> tuple[int, dict[str, Any]]:
    """What ``redlist-verify bundle DIR --log-key VKEY --json`` prints for the town."""
    keys = {line.split("+")[0]: line for line in keys_file.read_text().splitlines()[1:]}
    checkpoint = (directory / bundle.CHECKPOINT_FILE).read_text(encoding="utf-8")
    key = keys[checkpoint.split("\n", 1)[0]]
    status, out, _ = run("bundle", str(directory), "--log-key", key, "--json")
    (value,) = json_lines(out)
    return status, value


def without_place(value: dict[str, Any]) -> dict[str, Any]:
    """A ``bundles`` object less what it adds to the single run's: the path, the origin."""
    value = dict(value)
    value.pop("bundle")
    origin = value.pop("origin")
    if value.get("ok"):
        value["origin"] = origin  # a verified single run names its origin itself
    return value


def test_twenty_towns_agree_with_twenty_single_runs(province: tuple[Path, Path]) -> None:
    towns, keys_file = province
    status, out, _ = run("bundles", str(towns), "--log-keys", str(keys_file), "--json")
    assert status == 0
    lines = json_lines(out)
    directories = sorted(towns.iterdir())
    assert [line["bundle"] for line in lines] == [str(path) for path in directories]
    for line, directory in zip(lines, directories, strict=True):
        single_status, single = single_run(directory, keys_file)
        assert single_status == 0
        assert without_place(line) == single
    assert {line["origin"] for line in lines} == {origin_of(n) for n in range(TOWNS)}


def tamper(directory: Path, seq: int) -> None:
    """Move leaf ``seq``'s node time on by 1 ms: its bytes, and so its leaf hash, differ."""
    path = directory / bundle.LEAVES_FILE
    leaves = list(bundle.LeafStreamDecoder(0).feed(path.read_bytes()))
    leaf = Leaf.from_bytes(leaves[seq])
    leaves[seq] = Leaf(leaf.seq, leaf.time + 1, leaf.prev, leaf.envelope).to_bytes()
    path.write_bytes(bundle.encode_leaves(leaves))


def test_a_tampered_bundle_among_them_fails_and_is_named(
    province: tuple[Path, Path], tmp_path: Path
) -> None:
    towns, keys_file = province
    copy = tmp_path / "towns"
    shutil.copytree(towns, copy)
    tamper(copy / "town-07", 5)
    status, out, _ = run("bundles", str(copy), "--log-keys", str(keys_file), "--jobs", "1")
    assert status == 1
    rows = [line for line in out.splitlines() if ".example/redlist" in line]
    assert len(rows) == TOWNS  # one table, a row per log, in the order of the bundles
    assert [row.split()[0] for row in rows] == [origin_of(n) for n in range(TOWNS)]
    assert sum(row.split()[-1] == "verified" for row in rows) == TOWNS - 1
    (row,) = [line for line in rows if "FAILED" in line]
    assert origin_of(7) in row
    assert "FAILED at entry 6 (chain; tampered)" in row  # the next entry's prev no longer matches
    assert f"{TOWNS} logs: {TOWNS - 1} verified, 1 failed, 0 not checked." in out
    status, out, _ = run("bundles", str(copy), "--log-keys", str(keys_file), "--json")
    assert status == 1
    (failed,) = [line for line in json_lines(out) if not line["ok"]]
    assert failed["bundle"] == str(copy / "town-07")
    assert failed["origin"] == origin_of(7)
    assert without_place(failed) == single_run(copy / "town-07", keys_file)[1]


def test_a_log_without_a_key_is_not_checked_and_the_others_are(
    province: tuple[Path, Path], tmp_path: Path
) -> None:
    towns, keys_file = province
    keys = keys_file.read_text().splitlines()
    given = [arg for key in keys[1:4] for arg in ("--log-key", key)]  # towns 0 to 2
    bundles = [str(towns / f"town-{n:02d}") for n in range(4)]
    status, out, _ = run("bundles", *bundles, *given, "--json")
    assert status == 2
    lines = json_lines(out)
    assert [line["ok"] for line in lines] == [True, True, True, False]
    assert "no log key was given for log 'town03.example/redlist'" in lines[3]["error"]["message"]


def test_a_key_inside_the_bundle_is_never_used(province: tuple[Path, Path]) -> None:
    towns, _ = province
    status, out, _ = run("bundles", str(towns), "--json")
    assert status == 2
    (line,) = json_lines(out)
    assert "no log keys" in line["error"]["message"]


def test_two_keys_for_one_log_are_refused(province: tuple[Path, Path], tmp_path: Path) -> None:
    towns, keys_file = province
    other = standard_log(b"impostor", origin_of(0)).town.log_signer.verifier().encode()
    status, _, err = run("bundles", str(towns), "--log-keys", str(keys_file), "--log-key", other)
    assert status == 2
    assert "two different keys were given for log town00.example/redlist" in err


def test_a_directory_without_bundles_cannot_start(tmp_path: Path) -> None:
    status, _, err = run("bundles", str(tmp_path), "--log-key", "x.example+00000000+AQ==")
    assert status == 2
    assert "cannot verify" in err


def test_a_dask_cluster_gives_the_same_results(province: tuple[Path, Path], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    towns, keys_file = province
    copy = tmp_path / "towns"
    shutil.copytree(towns, copy)
    tamper(copy / "town-11", 3)
    status_here, here, _ = run("bundles", str(copy), "--log-keys", str(keys_file), "--json")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        status, there, _ = run(
            "bundles", str(copy), "--log-keys", str(keys_file), "--json", "--scheduler", address
        )
    assert status == status_here == 1
    assert json_lines(there) == json_lines(here)


def test_a_scheduler_that_does_not_answer_cannot_start(
    province: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    from redlist.verifier import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)  # nothing listens on port 1
    towns, keys_file = province
    status, out, err = run(
        "bundles", str(towns), "--log-keys", str(keys_file), "--scheduler", "tcp://127.0.0.1:1"
    )
    assert status == 2
    assert out == ""
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err
