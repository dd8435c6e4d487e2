"""Catalogue and staff-list changes through the council's review queue, end to end:
``redlist rule set --propose``, ``rules load --propose``, ``key add --propose``, then
``review list`` and ``approve`` by two council members in separate commands, against a
``redlist-node serve`` subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from tests.staff.towns import Town, served_town

from redlist.ledger import keyfile
from redlist.ledger.crypto import SigningKey


def _item_number(output: str) -> int:
    assert output.startswith("Item "), output
    return int(output.split()[1].rstrip(":"))


def _approved_by_the_council(town: Town, number: int, shown: str) -> str:
    """Two council members approve item ``number`` in two commands, each shown ``shown``;
    the second command's output."""
    size = town.size()
    first = town.run("approve", str(number), signer="council1")
    assert first.code == 0, first.err
    assert shown in first.out
    assert "1 council member so far" in first.out
    assert town.size() == size  # one council member is not the quorum
    second = town.run("approve", str(number), signer="council2")
    assert second.code == 0, second.err
    assert shown in second.out
    assert f"Approved item {number}: recorded as entry {size}." in second.out
    assert town.size() == size + 1
    return second.out


def test_a_rule_proposed_by_the_admin_is_recorded_once_the_council_approved(
    tmp_path: Path,
) -> None:
    with served_town(tmp_path) as town:
        size = town.size()
        proposed = town.run(
            "rule", "set", "--code", "V09", "--title", "Swept the lanes", "--module",
            "environment", "--points", "3", "--propose", signer="admin",
        )  # fmt: skip
        assert proposed.code == 0, proposed.err
        assert "proposed rule V09" in proposed.out
        assert (
            "it needs 1 admin and 2 council members to sign in all (town governance); "
            "1 admin and 0 council members so far." in proposed.out
        )
        assert town.size() == size  # nothing recorded yet
        number = _item_number(proposed.out)
        shown = "set rule V09 “Swept the lanes” (environment): awards 3 points"
        listed = town.run("review", "list", signer=None)
        assert listed.code == 0, listed.err
        assert f"Item {number}: {shown}" in listed.out
        chinese = town.run("review", "list", "--lang", "zh_CN", signer=None)
        assert chinese.code == 0, chinese.err
        assert f"事项 {number}：设置规则 V09" in chinese.out
        assert "由 admin 于" in chinese.out and "提议" in chinese.out
        listed_json = town.run("review", "list", "--json", signer=None)
        [item] = json.loads(listed_json.out)
        assert (item["kind"], item["op"], item["rule"]) == ("rule", "set", "V09")
        before = town.run("rules", "list", signer=None)
        assert "V09" not in before.out
        _approved_by_the_council(town, number, shown)
        rules = town.run("rules", "list", "--json", signer=None)
        [rule] = [rule for rule in json.loads(rules.out)["rules"] if rule["code"] == "V09"]
        assert (rule["title"], rule["points"], rule["active"]) == ("Swept the lanes", 3, True)
        # Proposing the retirement goes the same way, and reads as a retirement.
        retire = town.run("rule", "retire", "--code", "V09", "--propose", signer="admin")
        assert retire.code == 0, retire.err
        assert "proposed the retirement of rule V09" in retire.out
        _approved_by_the_council(town, _item_number(retire.out), "retire rule V09")
        rules = town.run("rules", "list", "--json", signer=None)
        [rule] = [rule for rule in json.loads(rules.out)["rules"] if rule["code"] == "V09"]
        assert rule["active"] is False


def test_each_rule_of_a_file_is_one_proposal_and_never_proposed_twice(tmp_path: Path) -> None:
    with served_town(tmp_path) as town:
        catalogue = town.write(
            "more.csv",
            "code,title,module,points,council\n"
            "M01,Repaired the well,public-service,4,no\n"
            "M02,Fought in public,harmony,-10,no\n",
        )
        size = town.size()
        proposed = town.run("rules", "load", "--csv", str(catalogue), "--propose", signer="admin")
        assert proposed.code == 0, proposed.err
        lines = proposed.out.splitlines()
        assert len(lines) == 3
        assert "proposed rule M01" in lines[0] and "proposed rule M02" in lines[1]
        assert lines[2] == "Read more.csv as UTF-8."
        again = town.run("rules", "load", "--csv", str(catalogue), "--propose", signer="admin")
        assert again.code == 0, again.err
        assert again.out.count("Already proposed or recorded: rule M0") == 2
        assert town.size() == size
        shown = "set rule M02 “Fought in public” (harmony): deducts 10 points"
        _approved_by_the_council(town, _item_number(lines[1]), shown)
        rules = town.run("rules", "list", "--json", signer=None)
        codes = {rule["code"] for rule in json.loads(rules.out)["rules"]}
        assert "M02" in codes and "M01" not in codes  # each rule waits for its own quorum


def test_a_key_proposed_by_the_admin_is_registered_once_the_council_approved(
    tmp_path: Path,
) -> None:
    with served_town(tmp_path) as town:
        new = tmp_path / "zhao.pem"
        key = SigningKey.generate()
        keyfile.write_key_files(new, key, "zhao of Dongguan")
        size = town.size()
        proposed = town.run(
            "key", "add", "--pub", str(keyfile.public_path(new)), "--name", "Zhao Lei",
            "--roles", "grid,cashier", "--propose", signer="admin",
        )  # fmt: skip
        assert proposed.code == 0, proposed.err
        assert f"proposed the registration of key {key.key_id.hex()} of Zhao Lei" in proposed.out
        assert town.size() == size
        number = _item_number(proposed.out)
        shown = f"register key {key.key_id.hex()} of Zhao Lei with the roles grid, cashier"
        listed = town.run("review", "show", str(number), signer=None)
        assert f"Item {number}: {shown}" in listed.out
        _approved_by_the_council(town, number, shown)
        keys = town.run("keys", "list", signer=None)
        assert keys.code == 0, keys.err
        assert "Zhao Lei" in keys.out
