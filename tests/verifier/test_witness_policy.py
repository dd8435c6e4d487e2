"""``redlist-verify bundle|node`` with a witness policy (DESIGN 5, 8.4): ``--policy FILE``
or ``--witness VKEY ... --min-witnesses K``; the final checkpoint must meet it."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.builders import Town, create_log
from tests.node.serving import Running
from tests.verifier.bundles import LogBuilder, standard_log
from tests.verifier.test_node import add_activity, verify, with_proxy

from redlist.ledger.log import Log
from redlist.ledger.note.cosignature import cosign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.verifier import nodewitnesses
from redlist.verifier.cli import main
from redlist.verifier.statefile import load_state

TIME = 1_767_225_600  # 2026-01-01 00:00 UTC
WITNESSES = [NoteSigner.generate(f"witness.example/town{index}") for index in range(3)]


def wkey(index: int) -> str:
    return WITNESSES[index].cosignature_verifier().encode()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def log() -> LogBuilder:
    return standard_log()


def bundle(log: LogBuilder, directory: Path, *cosigners: int) -> list[str]:
    """The bundle with ``cosigners``' cosignatures; the start of its command line."""
    pairs = [(WITNESSES[index], TIME + index) for index in cosigners]
    log.write_bundle(directory, cosigners=pairs)
    return ["bundle", str(directory), "--log-key", log.town.log_signer.verifier().encode()]


POLICY = """\
# Rongcheng's checkpoints are vouched for by its two neighbours, or by the county.
witness rushan {w0}
witness juxian {w1}
witness county {w2}
group neighbours all rushan juxian
group enough any neighbours county
quorum enough
"""


def policy_file(tmp_path: Path, text: str = POLICY, name: str = "witnesses.policy") -> str:
    path = tmp_path / name
    path.write_text(text.format(w0=wkey(0), w1=wkey(1), w2=wkey(2)))
    return str(path)


def test_a_bundle_cosigned_as_the_policy_asks_verifies_and_names_the_witnesses(
    log: LogBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = bundle(log, tmp_path / "b", 0, 1)
    status, out, _ = run(capsys, *argv, "--policy", policy_file(tmp_path), "--json")
    assert status == 0, out
    value = json.loads(out)
    assert value["ok"] is True
    assert value["witnesses"] == {"rushan": TIME, "juxian": TIME + 1}
    status, out, _ = run(capsys, *argv, "--policy", policy_file(tmp_path))
    assert status == 0
    assert "meets the witness policy; vouched for by rushan (2026-01-01 00:00 UTC), juxian" in (
        " ".join(out.split())
    )


def test_a_bundle_short_of_the_quorum_fails_and_says_what_is_missing(
    log: LogBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = bundle(log, tmp_path / "b", 1)
    state = tmp_path / "state"
    status, out, _ = run(capsys, *argv, "--policy", policy_file(tmp_path), "--state", str(state))
    assert status == 1
    assert "check: witness-policy" in out
    assert "cosigned by juxian" in out
    assert "group enough has 0 of the 1 needed (missing: neighbours, county)" in " ".join(
        out.split()
    )
    assert "group neighbours has 1 of the 2 needed (missing: rushan)" in " ".join(out.split())
    assert not state.exists()  # a log not vouched for is not pinned
    status, out, _ = run(capsys, *argv, "--policy", policy_file(tmp_path), "--json")
    assert status == 1
    error = json.loads(out)["error"]
    assert error["check"] == "witness-policy" and error["seq"] is None


def test_the_short_form_needs_all_witnesses_unless_told(
    log: LogBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = bundle(log, tmp_path / "b", 0, 2)
    witnesses = ["--witness", wkey(0), "--witness", wkey(1), "--witness", wkey(2)]
    status, out, _ = run(capsys, *argv, *witnesses)
    assert status == 1
    assert "witness.example/town1" in out and "witness-policy" in out
    # Said without the policy's internal group name: how many, and who is missing.
    said = " ".join(out.split())
    assert "2 of the 3 witnesses needed have cosigned (missing: witness.example/town1)" in said
    assert "min-witnesses" not in out.replace("--min-witnesses", "")
    status, out, _ = run(capsys, *argv, *witnesses, "--min-witnesses", "2", "--json")
    assert status == 0, out
    assert json.loads(out)["witnesses"] == {
        "witness.example/town0": TIME,
        "witness.example/town2": TIME + 2,
    }
    state = tmp_path / "state"
    assert run(capsys, *argv, "--witness", wkey(2), "--state", str(state))[0] == 0
    assert load_state(state).checkpoint.size == len(log.leaves)


def test_a_bundle_without_cosignatures_fails_a_policy_that_needs_one(
    log: LogBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = bundle(log, tmp_path / "b")
    status, out, _ = run(capsys, *argv, "--witness", wkey(0))
    assert status == 1
    assert "cosigned by none of the policy's witnesses" in " ".join(out.split())
    # Without a policy the same bundle verifies, and "quorum none" asks for nothing.
    assert run(capsys, *argv)[0] == 0
    status, out, _ = run(capsys, *argv, "--policy", policy_file(tmp_path, "quorum none\n"))
    assert status == 0
    assert "asks for no cosignature" in out


def test_a_bad_cosignature_from_a_listed_witness_fails_the_checkpoint(
    log: LogBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "b"
    argv = bundle(log, directory, 1)
    # Witness 0's cosignature of another checkpoint of this log, pasted in.
    stolen = cosign_checkpoint(log.checkpoint(3), WITNESSES[0], TIME).note.splitlines()[-1]
    path = directory / "checkpoint"
    path.write_text(path.read_text() + stolen + "\n")
    status, out, _ = run(capsys, *argv, "--witness", wkey(0), "--witness", wkey(1), "--json")
    assert status == 1
    error = json.loads(out)["error"]
    assert error["check"] == "witness-policy"
    assert "bad cosignature" in error["message"] and "does not verify" in error["message"]
    # A policy that does not list witness 0 ignores its line.
    assert run(capsys, *argv, "--witness", wkey(1))[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--witness", "not-a-key"], "--witness 'not-a-key'"),
        (["--min-witnesses", "1"], "--min-witnesses needs the witnesses' keys"),
        (["--witness", "W0", "--min-witnesses", "2"], "between 1 and 1"),
        (["--witness", "W0", "--min-witnesses", "0"], "between 1 and 1"),
        (["--witness", "LOG"], "not a cosigning key"),
        (["--policy", "POLICY", "--witness", "W0"], "either --policy or --witness"),
        (["--policy", "MISSING"], "MISSING"),
        (["--policy", "BAD"], "policy line 2: unknown keyword 'witnes'"),
        (["--policy", "OTHER"], "the policy is for other logs"),
    ],
)
def test_a_policy_that_cannot_be_used_stops_the_check(
    log: LogBuilder,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    argv = bundle(log, tmp_path / "b", 0)
    other = NoteSigner.generate("town.example/other").verifier().encode()
    files = {
        "POLICY": policy_file(tmp_path),
        "MISSING": str(tmp_path / "missing.policy"),
        "BAD": policy_file(tmp_path, "# typo\nwitnes a {w0}\nquorum a\n", "bad.policy"),
        "OTHER": policy_file(tmp_path, f"log {other}\nquorum none\n", "other.policy"),
        "W0": wkey(0),
        "LOG": log.town.log_signer.verifier().encode(),
    }
    status, out, err = run(capsys, *argv, *(files.get(arg, arg) for arg in args))
    assert status == 2, out + err
    assert files.get(message, message) in err
    status, out, _ = run(capsys, *argv, "--json", *(files.get(arg, arg) for arg in args))
    assert status == 2
    assert json.loads(out)["ok"] is False


# -- a node -----------------------------------------------------------------------------


def node_with_activity(tmp_path: Path) -> tuple[Log, str]:
    """A town's log with some activity (open: the caller closes it) and its log key."""
    town = Town.generate()
    node_log = create_log(tmp_path / "data", town, setup=True)
    add_activity(node_log, town)
    return node_log, town.log_signer.verifier().encode()


def test_a_node_checkpoint_is_held_to_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodewitnesses, "TRIES", 2)
    monkeypatch.setattr(nodewitnesses, "PAUSE_S", 0.05)
    node_log, key = node_with_activity(tmp_path)

    async def body(running: Running, proxy: Any, address: str) -> None:
        status, value = await verify(capsys, address, "--log-key", key, "--witness", wkey(0))
        assert status == 1
        assert value["error"]["check"] == "witness-policy"
        # Not cosigned yet: the log itself was audited, and the advice is to wait.
        assert value["error"]["kind"] == "unconfirmed"
        assert value["checked"]["entries"] == node_log.size
        assert "check again in a few minutes" in value["error"]["advice"]
        # The checkpoint as a primary serves it once its witnesses have cosigned.
        signed = node_log.checkpoint()
        assert signed is not None
        proxy.checkpoint = cosign_checkpoint(signed, WITNESSES[0], TIME).note
        status, value = await verify(capsys, address, "--log-key", key, "--witness", wkey(0))
        assert status == 0, value
        assert value["witnesses"] == {"witness.example/town0": TIME}
        assert value["node"]["leaves_fetched"] == node_log.size

    try:
        with_proxy(node_log, body)
    finally:
        node_log.close()


def test_a_node_checkpoint_cosigned_while_the_auditor_waits_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The audit reaches the newest checkpoint before the node's witnesses have cosigned
    # it: the node is asked again, and the same checkpoint comes back cosigned.
    monkeypatch.setattr(nodewitnesses, "PAUSE_S", 0.2)
    node_log, key = node_with_activity(tmp_path)

    async def body(running: Running, proxy: Any, address: str) -> None:
        signed = node_log.checkpoint()

        async def cosigned_soon() -> None:
            await asyncio.sleep(0.5)  # while the auditor waits
            proxy.checkpoint = cosign_checkpoint(signed, WITNESSES[0], TIME).note

        cosigning = asyncio.create_task(cosigned_soon())
        status = await asyncio.to_thread(
            main, ["node", address, "--json", "--log-key", key, "--witness", wkey(0)]
        )
        await cosigning
        out, err = capsys.readouterr()
        assert status == 0, out + err
        assert json.loads(out)["witnesses"] == {"witness.example/town0": TIME}
        assert f"the checkpoint of size {node_log.size} is not yet confirmed" in err

    try:
        with_proxy(node_log, body)
    finally:
        node_log.close()


def test_a_policy_that_cannot_be_used_is_explained_in_chinese(
    log: LogBuilder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The policy's own words come translated, nested ones too (the line, the group, the
    kind of name), with nothing English left but the keywords of the file."""
    argv = bundle(log, tmp_path / "b", 0)
    cases = {
        "group g1 any nobody\nquorum g1\n": (
            "策略第 1 行：组 g1：“nobody”不是前面行中定义的见证方或组"
        ),
        "group none any x\n": "策略第 1 行：none 是保留字，不能用作组名称",
        f"witness w0 {wkey(0)}\n": "策略第 2 行：文件结束了却没有 quorum 行",
        # A key string pasted with a character changed, and one cut short.
        f"witness w0 {wkey(0)[:-2]}AA\nquorum w0\n": (
            "策略第 1 行：验证公钥有误：密钥 witness.example/town0："
            "密钥哈希与名称和公钥不符；密钥字符串已损坏"
        ),
        f"witness w0 {wkey(0)[:-3]}\nquorum w0\n": (
            "策略第 1 行：验证公钥有误：密钥 witness.example/town0："
            "密钥部分不是密钥字符串应有的 base64"
        ),
    }
    for text, said in cases.items():
        path = policy_file(tmp_path, text, f"p{len(text)}.policy")
        status, out, err = run(capsys, "--lang", "zh_CN", *argv, "--policy", path)
        assert status == 2, out + err
        assert said in err, err
        assert not re.search(r"\b(is|are|the|must)\b", err), err
