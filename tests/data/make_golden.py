"""Regenerate the golden bundles in tests/data/golden/ (deterministic: fixed keys, ids, times).

Run from the repository root:  .venv/bin/python -m tests.data.make_golden
Ed25519 signatures are deterministic, so the same code writes the same bytes; the test
`tests/test_golden.py` regenerates into a temporary directory and compares byte for byte.
A difference means format v1 changed: that needs a version bump, not a new golden file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.builders import RuleSpec
from tests.verifier.bundles import LogBuilder, standard_log

GOLDEN = Path(__file__).resolve().parent / "golden"
SEED = b"redlist golden bundle v1"
#: A rule with both caps, for the entries that show deed dates and caps.
NIGHT_PATROL = RuleSpec(
    "night-patrol",
    "Night patrol (per shift)",
    "public-safety",
    4,
    max_qty=3,
    max_per_month=6,
    decided="村民代表大会, 2025-12-20",
)


def golden_log() -> LogBuilder:
    """``standard_log`` and then a capped rule and awards dated before their entry's day:
    one the full 92 days back (the oldest a deed may be), two under the capped rule in
    two months of deed dates. The capped rule says which meeting decided it, and one
    award has a note: free texts, as commitments (their texts in ``full-texts.jsonl``)."""
    log = standard_log(SEED)
    town = log.town
    log.append(town.set_rule(NIGHT_PATROL))
    log.append(town.award("res-001", "night-patrol", 3, date=town.day(days_before=10)))
    log.append(town.award("res-001", "night-patrol", 3, note="east lane, with 王奶奶"))
    log.append(town.award("res-003", "clean-pond", date=town.day(days_before=92)))
    return log


def write(root: Path) -> None:
    """Write the golden set into ``root``: a full bundle, a bundle of the later half, the key."""
    log = golden_log()
    root.mkdir(parents=True, exist_ok=True)
    log.write_bundle(root / "full")
    log.write_texts(root, name="full-texts.jsonl")  # beside the bundle: never inside it
    half = len(log.leaves) // 2 + 1  # odd: the first prev link is checkable from `left`
    log.write_bundle(root / "tail", start=half, previous=half)
    (root / "log.pub").write_text(log.town.log_signer.verifier().encode() + "\n")
    seeds = {
        "admin": log.town.admin.seed.hex(),
        "grid": log.town.grid.seed.hex(),
        "council-1": log.town.council[0].seed.hex(),
        "council-2": log.town.council[1].seed.hex(),
        "cashier": log.town.cashier.seed.hex(),
        "log": log.town.log_signer.key.seed.hex(),
    }
    (root / "test-keys.json").write_text(json.dumps(seeds, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN)
