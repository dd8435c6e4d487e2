"""Council review over days, end to end: ``redlist propose``, ``review``, ``approve`` and
``reject`` against ``redlist-node serve`` subprocesses, restarted on the same data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.node.serving import serve_in_subprocess
from tests.staff.towns import TWO_DAYS_AGO, Town, served_town

from redlist.ledger import keyfile
from redlist.ledger.entry import Envelope, Leaf


def _item_number(output: str) -> int:
    assert output.startswith("Item "), output
    return int(output.split()[1].rstrip(":"))


def _envelope(town: Town, seq: int) -> Envelope:
    with town.client() as client:
        leaf = dict(client.get_leaves(seq, seq + 1))[seq]
    return Envelope.from_bytes(Leaf.from_bytes(leaf).envelope)


def test_a_council_award_is_approved_over_two_days_with_a_restart(tmp_path: Path) -> None:
    with served_town(tmp_path) as town:
        proposed = town.run(
            "propose", "--account", "rev-1", "--rule", "H01", "--date", TWO_DAYS_AGO
        )
        assert proposed.code == 0, proposed.err
        assert "it needs 2 more council signatures (2 needed, 0 so far)" in proposed.out
        number = _item_number(proposed.out)
        first = town.run("approve", str(number), signer="council1")
        assert first.code == 0, first.err
        assert "award to rev-1 under rule H01" in first.out
        assert f"deed of {TWO_DAYS_AGO}" in first.out
        assert "+20 points" in first.out
        assert "it still needs: 1 more council signature (2 needed, 1 so far)" in first.out
        size = town.size()
    # The next day: the node was stopped and starts again on the same data.
    with serve_in_subprocess(tmp_path / "data", output=tmp_path) as address:
        town = Town(address, tmp_path, town.keys)
        listed = town.run("review", "list", "--json", signer=None)
        assert listed.code == 0, listed.err
        [item] = json.loads(listed.out)
        assert item["id"] == number and item["state"] == "pending"
        assert [signer["name"] for signer in item["signers"]] == sorted(
            ["grid", "council1"], key=lambda name: _key_order(town, name)
        )
        again = town.run("approve", str(number), signer="council1")  # the same member twice
        assert "(2 needed, 1 so far)" in again.out
        assert town.size() == size
        second = town.run("approve", str(number), signer="council2")
        assert second.code == 0, second.err
        assert "recorded as entry" in second.out
        seq = int(second.out.rsplit("entry ", 1)[1].rstrip(".\n"))
        assert town.size() == size + 1
        signers = {signature.key_id for signature in _envelope(town, seq).signatures}
        assert len(signers) == 3  # the proposer and both council members
        shown = town.run("review", "show", str(number), signer=None)
        assert f"recorded as entry {seq}" in shown.out
        # Times in the town's time zone (Asia/Shanghai), as a statement shows them.
        proposed_at = datetime.fromtimestamp(item["proposed_ms"] / 1000, ZoneInfo("Asia/Shanghai"))
        assert f"on {proposed_at:%Y-%m-%d %H:%M}\n" in shown.out, shown.out
        assert "UTC" not in shown.out
        late = town.run("approve", str(number), signer="council2")
        assert "no longer waiting" in late.out
        assert town.size() == size + 1
        assert town.account("rev-1")["score"] == 1020


def _key_order(town: Town, name: str) -> bytes:
    return keyfile.read_signing_key(town.keys[name]).key_id


def test_a_rejection_tells_the_proposer_why(tmp_path: Path) -> None:
    with served_town(tmp_path) as town:
        proposed = town.run("propose", "--account", "rev-2", "--rule", "H01")
        number = _item_number(proposed.out)
        size = town.size()
        refused = town.run("reject", str(number), "--reason", "not this month", signer="grid")
        assert refused.code == 1
        assert "only an active council key" in refused.err
        rejected = town.run("reject", str(number), "--reason", "not this month", signer="council2")
        assert rejected.code == 0, rejected.err
        shown = town.run("review", "show", str(number), signer=None)
        assert "rejected by council2" in shown.out and "not this month" in shown.out
        approve = town.run("approve", str(number), signer="council1")
        assert "no longer waiting" in approve.out
        assert town.size() == size
        assert town.run("review", "list", signer=None).out.startswith("No proposal waits")


def test_a_declaration_is_reviewed_and_shows_in_the_statement(tmp_path: Path) -> None:
    with served_town(tmp_path) as town:
        proposed = town.run(
            "propose", "--account", "rev-3", "--rule", "V01", "--declared-by-resident",
            "--note", "swept the lane",
        )  # fmt: skip
        assert proposed.code == 0, proposed.err
        assert "it needs 2 more council signatures" in proposed.out
        number = _item_number(proposed.out)
        shown = town.run("approve", str(number), signer="council1")
        assert "declared by the resident" in shown.out
        done = town.run("approve", str(number), signer="council2")
        assert "recorded as entry" in done.out, done.out + done.err
        statement = town.run("account", "rev-3", signer=None)
        assert "declared" in statement.out
        [entry] = town.account("rev-3")["entries"]
        assert entry["declared"] is True


def test_a_flood_of_proposals_is_refused_at_the_bound(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("review_max_per_proposer = 2\nreview_max_pending = 3\n")
    with served_town(tmp_path, "--config", config) as town:
        for account in ("fl-1", "fl-2"):
            assert town.run("propose", "--account", account, "--rule", "H01").code == 0
        flood = town.run("propose", "--account", "fl-3", "--rule", "H01")
        assert flood.code == 1
        assert "2 proposals waiting for review" in flood.err
        assert "review-proposer-full" in flood.err
        assert (
            town.run("propose", "--account", "fl-4", "--rule", "H01", signer="council1").code == 0
        )
        full = town.run("propose", "--account", "fl-5", "--rule", "H01", signer="council2")
        assert full.code == 1 and "review-queue-full" in full.err
        listed = json.loads(town.run("review", "list", "--json", signer=None).out)
        assert [item["account"] for item in listed] == ["fl-1", "fl-2", "fl-4"]


def test_a_sheet_is_proposed_row_by_row_and_never_twice(tmp_path: Path) -> None:
    with served_town(tmp_path) as town:
        sheet = town.write(
            "declarations.csv",
            f"account,rule,qty,date,note\nsh-1,V01,1,{TWO_DAYS_AGO},swept the lane\n"
            f"sh-2,H01,,{TWO_DAYS_AGO},\n",
        )
        first = town.run("propose", "--csv", str(sheet), "--declared-by-resident")
        assert first.code == 0, first.err
        assert first.out.count("Item ") == 2
        again = town.run("propose", "--csv", str(sheet), "--declared-by-resident")
        assert again.code == 0, again.err
        assert again.out.count("Already proposed or recorded") == 2
        listed = json.loads(town.run("review", "list", "--json", signer=None).out)
        assert [(item["account"], item["declared"]) for item in listed] == [
            ("sh-1", True),
            ("sh-2", True),
        ]
        both = town.run("propose", "--csv", str(sheet), "--account", "x", "--rule", "V01")
        assert both.code == 2 and "either --account and --rule, or --csv" in both.err
