#!/usr/bin/env bash
# Fail when the committed generated code differs from a fresh regeneration.
#
# Usage: scripts/check_proto_fresh.sh [COMMITTED_DIR]
#
# COMMITTED_DIR defaults to proto/src/redlist/v1. The proto files are regenerated into a
# temporary directory with scripts/gen_proto.sh and compared byte for byte, file
# by file (compiled __pycache__ directories aside). Extra or missing files count as
# differences too.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
committed=$(realpath -m "${1:-$repo_root/proto/src/redlist/v1}")
cd "$repo_root"

fresh_root=$(mktemp -d)
trap 'rm -rf "$fresh_root"' EXIT

if ! generator_output=$(scripts/gen_proto.sh "$fresh_root" 2>&1); then
    echo "$generator_output" >&2
    echo "could not regenerate the code to compare with" >&2
    exit 2
fi

if [[ ! -d "$committed" ]]; then
    echo "$committed does not exist" >&2
    echo "generated code is stale: run make proto" >&2
    exit 1
fi

if ! diff --recursive --brief --exclude=__pycache__ "$fresh_root/redlist/v1" "$committed" >&2; then
    echo "generated code is stale: run make proto" >&2
    exit 1
fi
echo "generated code is fresh"
