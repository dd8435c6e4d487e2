"""How many cores this process may use: the CPUs it may run on, and its cgroup's quota.

A container (Docker's ``--cpus``, a Kubernetes CPU limit, a CI runner) usually shows
every CPU of its host while its cgroup lets it use only a few: started with one
signature worker per CPU seen, an audit on a 64-CPU host limited to two would run 64
workers on two CPUs' worth of time. So the count is the smallest of the CPUs the
process may run on and its cgroup's CPU quota (rounded up), cgroup v2's ``cpu.max``
or v1's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``, on the process's own group
and every group above it. Where none can be read, the CPUs alone count.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


#: The most signature workers a command may be asked for, for each core it may use:
#: more only take turns on the same cores, each costing its memory and its start.
WORKERS_PER_CORE = 4


def most_workers() -> int:
    """The largest ``--workers`` a command takes on this machine (``WORKERS_PER_CORE``)."""
    return WORKERS_PER_CORE * available_cores()


def available_cores(proc_cgroup: Path = PROC_CGROUP, cgroup_root: Path = CGROUP_ROOT) -> int:
    """The cores this process may use (at least 1); see the module's docstring."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc_cgroup, cgroup_root)
    return max(1, cpus if quota is None else min(cpus, quota))


def cgroup_cpu_quota(
    proc_cgroup: Path = PROC_CGROUP, cgroup_root: Path = CGROUP_ROOT
) -> int | None:
    """The CPU quota of this process's cgroups in whole cores (rounded up, the
    smallest along the hierarchy), or None when there is none or it cannot be read."""
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    quotas: list[int] = []
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if not group.startswith("/"):
            continue
        if number == "0" and controllers == "":  # cgroup v2's unified hierarchy
            quotas += _along(cgroup_root, group, _v2_quota)
        elif "cpu" in controllers.split(","):  # cgroup v1's cpu controller
            for mount in (
                cgroup_root / controllers,
                cgroup_root / "cpu",
                cgroup_root / "cpu,cpuacct",
            ):
                if mount.is_dir():
                    quotas += _along(mount, group, _v1_quota)
                    break
    return min(quotas) if quotas else None


def _along(mount: Path, group: str, quota_of: Callable[[Path], int | None]) -> list[int]:
    """The quotas found at ``group`` under ``mount`` and at each group above it."""
    found: list[int] = []
    parts = [part for part in group.split("/") if part and part not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        quota = quota_of(mount.joinpath(*parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(directory: Path) -> int | None:
    """``cpu.max``: "QUOTA PERIOD" or "max PERIOD"."""
    fields = _read(directory / "cpu.max").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _cores(fields[0], fields[1])


def _v1_quota(directory: Path) -> int | None:
    """``cpu.cfs_quota_us`` (-1: no quota) over ``cpu.cfs_period_us``."""
    return _cores(_read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us"))


def _cores(quota: str, period: str) -> int | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.ceil(quota_us / period_us))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


__all__ = ["CGROUP_ROOT", "PROC_CGROUP", "available_cores", "cgroup_cpu_quota"]
