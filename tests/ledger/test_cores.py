"""The cores a process may use: its CPUs, and its cgroup's CPU quota (a container's)."""

from __future__ import annotations

import os
from pathlib import Path

from redlist.ledger.cores import available_cores, cgroup_cpu_quota

CPUS = len(os.sched_getaffinity(0))


def _tree(root: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A /proc/self/cgroup file and a cgroup file system under ``root``."""
    (root / "fs").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="ascii")
    (root / "cgroup").write_text(proc, encoding="ascii")
    return root / "cgroup", root / "fs"


def test_a_cgroup_v2_quota_counts_in_whole_cores_rounded_up(tmp_path: Path) -> None:
    proc, fs = _tree(tmp_path, "0::/job\n", {"job/cpu.max": "150000 100000\n"})
    assert cgroup_cpu_quota(proc, fs) == 2
    assert available_cores(proc, fs) == min(CPUS, 2)


def test_the_smallest_quota_along_the_hierarchy_counts(tmp_path: Path) -> None:
    proc, fs = _tree(
        tmp_path,
        "0::/a/b\n",
        {"cpu.max": "max 100000\n", "a/cpu.max": "50000 100000\n", "a/b/cpu.max": "max 100000"},
    )
    assert cgroup_cpu_quota(proc, fs) == 1
    assert available_cores(proc, fs) == 1


def test_a_cgroup_v1_cpu_controller_quota(tmp_path: Path) -> None:
    proc, fs = _tree(
        tmp_path,
        "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n",
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_quota(proc, fs) == 3


def test_no_quota_or_nothing_readable_leaves_the_cpus(tmp_path: Path) -> None:
    unlimited, fs = _tree(tmp_path / "max", "0::/\n", {"cpu.max": "max 100000\n"})
    assert cgroup_cpu_quota(unlimited, fs) is None
    assert available_cores(unlimited, fs) == CPUS
    v1, fs1 = _tree(
        tmp_path / "v1",
        "1:cpu:/\n",
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
    )
    assert cgroup_cpu_quota(v1, fs1) is None
    for damaged in ("garbage 100000", "0 100000", "100000 0", "", "\xff"):
        odd, fs2 = _tree(tmp_path / f"odd{len(damaged)}{ord(damaged[:1] or 'e')}", "0::/\n", {})
        (fs2 / "cpu.max").write_bytes(damaged.encode("latin-1"))
        assert cgroup_cpu_quota(odd, fs2) is None
    assert cgroup_cpu_quota(tmp_path / "no-such-file", tmp_path) is None
    # A group path cannot climb out of the cgroup file system.
    climbing, fs3 = _tree(tmp_path / "climb", "0::/../../etc\n", {})
    (tmp_path / "climb" / "cpu.max").write_text("100000 100000\n", encoding="ascii")
    assert cgroup_cpu_quota(climbing, fs3) is None


def test_this_machine_answers_at_least_one_core() -> None:
    assert 1 <= available_cores() <= CPUS
