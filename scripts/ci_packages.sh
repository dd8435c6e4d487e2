#!/usr/bin/env bash
# System packages the test suite needs beyond Python, installed only when absent.
#
#   fuse3   fusermount3 and libfuse3.so.3: tests/faults/powercut mounts a FUSE file
#           system (through mfusepy, a ctypes binding) to cut power under a real node.
#
# Run by .ci/run (as root, as CI runs). A developer runs it once with sudo; without it
# the FUSE suites skip outside CI and fail in CI (CI=true).
set -euo pipefail

missing=()
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so\.3 ' || missing+=(libfuse3-3)

if (( ${#missing[@]} == 0 )); then
	exit 0
fi
if (( EUID != 0 )); then
	echo "ci_packages: ${missing[*]} missing; run this script as root (apt-get install)" >&2
	exit 1
fi
echo "ci_packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
