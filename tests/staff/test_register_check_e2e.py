"""Accounts checked against the town's resident register before anything is sent.

``redlist submit`` and ``redlist award`` ask the node (``CheckAccounts``) which of their
accounts the register (``redlist-node residents import``) does not hold, and refuse the
sheet with those rows among its bad rows. The call is the staff's alone: an unsigned
request, a stale signature, a signature by a key the log does not hold or over other
accounts are refused, and so is a request over the bound. A node without a register
answers so, and the sheet goes in with a note that its accounts were not checked; where
there is a register, the summary says how many accounts it was asked about and holds.

The towns are ``redlist-node serve`` in subprocesses (``tests.staff.towns``); the
register is imported with ``redlist-node residents import`` while the node serves.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import grpc
import pytest
from tests.staff.towns import BIN, TODAY_AT_START, Town, served_town

from redlist.ledger import keyfile
from redlist.ledger.crypto import SigningKey
from redlist.proto import contract
from redlist.proto.client import read_signature
from redlist.staff import sheet
from redlist.staff.commands import submit
from redlist.staff.problems import PROBLEM_COLUMNS
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

#: Residents of the registered town: reg-0000 ... reg-1199, and one erased.
REGISTERED = 1200
ROWS = 1000
#: The row (as a spreadsheet numbers it, the header being row 1) with the unknown account.
BAD_ROW = 801


def residents(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "redlist-node", "residents", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def name_of(serial: int) -> str:
    surnames, given = "王李张刘陈杨赵黄", "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"
    return surnames[serial % 8] + given[serial // 8 % 20] + given[serial // 160 % 20]


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    """A town whose node keeps a register of ``REGISTERED`` residents and one erased."""
    with served_town(tmp_path_factory.mktemp("registered")) as served:
        lines = ["account,name,id_number,phone,village,household,basis,basis_date"]
        lines += [f"reg-{n:04d},{name_of(n)},,,东村,,," for n in range(REGISTERED)]
        lines.append("gone-1,李四,,,东村,,,")
        register = served.write("residents.csv", "\n".join(lines) + "\n")
        data = served.root / "data"
        imported = residents("import", "--data", data, "--csv", register)
        assert imported.returncode == 0, imported.stderr
        erased = residents("erase", "gone-1", "--data", data, "--yes")
        assert erased.returncode == 0, erased.stderr
        yield served


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    """A town whose node keeps no register."""
    with served_town(tmp_path_factory.mktemp("bare")) as served:
        yield served


def day(days_ago: int) -> str:
    return (date.fromisoformat(TODAY_AT_START) - timedelta(days=days_ago)).isoformat()


def write_sheet(town: Town, name: str, rows: list[str]) -> Path:
    return town.write(name, "\n".join(["account,rule,qty,date,note", *rows]) + "\n")


def rows_of_a_month() -> list[str]:
    return [f"reg-{n % REGISTERED:04d},V01,1,{day(2)},row {n}" for n in range(ROWS)]


# ---------------------------------------------------------------------------
# redlist submit


def test_an_unknown_account_refuses_the_sheet_naming_its_row(town: Town, tmp_path: Path) -> None:
    rows = rows_of_a_month()
    rows[BAD_ROW - 2] = f"nobody-1,V01,1,{day(2)},"
    rows[99] = f"reg-0001,V99,1,{day(2)},"  # another mistake, listed with it
    errors = tmp_path / "errors.csv"
    before = town.size()
    result = town.run(
        "submit", "--csv", str(write_sheet(town, "month.csv", rows)), "--errors", str(errors)
    )
    assert result.code == 2, result.err
    assert "2 rows cannot be used; nothing was submitted" in result.err
    assert (
        f"row {BAD_ROW}, column account: account nobody-1 is not in the town's resident "
        "register: check the account number for a typing mistake; a new resident must "
        "first be registered with 'redlist-node residents import'"
    ) in result.err
    assert "row 101, column rule: rule V99 is not in the town's catalogue" in result.err
    assert result.err.index("row 101,") < result.err.index(f"row {BAD_ROW},")
    written = errors.read_bytes().decode("utf-8-sig").splitlines()
    assert written[0] == ",".join(PROBLEM_COLUMNS)
    assert written[2].startswith(f"{BAD_ROW},account,account nobody-1 is not in")
    assert town.size() == before

    dry = town.run("submit", "--csv", str(write_sheet(town, "month.csv", rows)), "--dry-run")
    assert dry.code == 2
    assert f"row {BAD_ROW}, column account" in dry.err


def test_the_same_sheet_without_the_row_goes_in(town: Town) -> None:
    rows = rows_of_a_month()
    before = town.size()
    checked = (
        f"Accounts checked against the town's resident register: {ROWS} accounts, all registered."
    )
    dry = town.run("submit", "--csv", str(write_sheet(town, "good.csv", rows)), "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[-1] == checked
    out = town.run("submit", "--csv", str(write_sheet(town, "good.csv", rows)))
    assert out.code == 0, out.err
    assert out.out.startswith(f"Submitted {ROWS} of {ROWS} rows of good.csv: {ROWS} recorded now;")
    assert out.out.splitlines()[-1] == checked
    assert submit.UNCHECKED_NOTE not in out.out
    assert town.size() == before + ROWS
    # Submitted again, no row is left to record and no account is asked about.
    again = town.run("submit", "--csv", str(write_sheet(town, "good.csv", rows)))
    assert again.code == 0, again.err
    assert again.out == (
        f"Submitted {ROWS} of {ROWS} rows of good.csv: 0 recorded now, {ROWS} already "
        f"recorded; entries {before} to {before + ROWS - 1}.\nRead good.csv as UTF-8.\n"
    )


def test_one_registered_account_is_said_in_the_singular(town: Town) -> None:
    rows = [f"reg-1100,V01,1,{day(3)},", f"reg-1100,V01,1,{day(4)},"]
    out = town.run("submit", "--csv", str(write_sheet(town, "one.csv", rows)))
    assert out.code == 0, out.err
    assert out.out.splitlines()[-1] == (
        "Accounts checked against the town's resident register: 1 account, registered."
    )


def test_an_erased_resident_is_not_in_the_register(town: Town) -> None:
    path = write_sheet(town, "gone.csv", [f"gone-1,V01,,{day(1)},"])
    result = town.run("submit", "--csv", str(path))
    assert result.code == 2
    assert "row 2, column account: account gone-1 is not in" in result.err


def test_a_node_without_a_register_takes_the_sheet_with_a_note(bare: Town) -> None:
    rows = [f"anyone-{n},V01,1,{day(1)}," for n in range(3)]
    dry = bare.run("submit", "--csv", str(write_sheet(bare, "b.csv", rows)), "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[-1] == submit.UNCHECKED_NOTE
    result = bare.run("submit", "--csv", str(write_sheet(bare, "b.csv", rows)))
    assert result.code == 0, result.err
    assert result.out.startswith("Submitted 3 of 3 rows of b.csv: 3 recorded now;")
    assert result.out.count(submit.UNCHECKED_NOTE) == 1


# ---------------------------------------------------------------------------
# redlist award


def test_award_refuses_an_unknown_account_and_takes_a_registered_one(town: Town) -> None:
    before = town.size()
    refused = town.run("award", "--account", "NOBODY-2", "--rule", "V01")
    assert refused.code == 2
    assert refused.err == (f"error: {sheet.unknown_account('nobody-2')}; nothing was sent\n")
    assert town.size() == before
    done = town.run("award", "--account", "REG-0007", "--rule", "V01")
    assert done.code == 0, done.err
    assert town.size() == before + 1


def test_award_on_a_node_without_a_register(bare: Town) -> None:
    done = bare.run("award", "--account", "anyone-9", "--rule", "V01")
    assert done.code == 0, done.err


# ---------------------------------------------------------------------------
# CheckAccounts: staff only, bounded, about the accounts asked only


def check(
    town: Town,
    accounts: list[str],
    key: SigningKey | None,
    *,
    at: int | None = None,
    subject: str | None = None,
) -> pb.CheckAccountsResponse:
    request = pb.CheckAccountsRequest(accounts=accounts)
    if key is not None:
        signed = read_signature(
            key, contract.CHECK_ACCOUNTS_METHOD, subject or contract.accounts_subject(accounts)
        )
        if at is not None:
            signed = read_signature_at(key, accounts, at)
        request.read_signature.CopyFrom(signed)
    with grpc.insecure_channel(town.address) as channel:
        response: pb.CheckAccountsResponse = ledger_pb2_grpc.LedgerStub(channel).CheckAccounts(
            request, timeout=30
        )
        return response


def read_signature_at(key: SigningKey, accounts: list[str], at: int) -> pb.ReadSignature:
    message = contract.read_message(
        contract.CHECK_ACCOUNTS_METHOD, contract.accounts_subject(accounts), at
    )
    return pb.ReadSignature(key_id=key.key_id, time=at, signature=key.sign(message))


def staff_key(town: Town, name: str = "grid") -> SigningKey:
    return keyfile.read_signing_key(town.keys[name])


def test_a_staff_key_learns_which_accounts_are_unknown(town: Town) -> None:
    answer = check(town, ["reg-0001", "nobody-3", "gone-1", "reg-0002"], staff_key(town))
    assert answer.register is True
    assert list(answer.unknown) == ["nobody-3", "gone-1"]
    cashier = check(town, ["nobody-4"], staff_key(town, "cashier"))  # any role may ask
    assert list(cashier.unknown) == ["nobody-4"]


def test_a_node_without_a_register_says_so(bare: Town) -> None:
    answer = check(bare, ["anyone-1"], staff_key(bare))
    assert answer.register is False
    assert list(answer.unknown) == []


@pytest.mark.parametrize("how", ["unsigned", "stale", "unregistered", "other-accounts"])
def test_a_request_not_signed_by_the_towns_staff_is_refused(town: Town, how: str) -> None:
    accounts = ["reg-0001", "nobody-5"]
    with pytest.raises(grpc.RpcError) as refused:
        if how == "unsigned":
            check(town, accounts, None)
        elif how == "stale":
            check(town, accounts, staff_key(town), at=int(time.time()) - 600)
        elif how == "unregistered":
            check(town, accounts, SigningKey.generate())
        else:  # a signature over another question does not answer this one
            check(town, accounts, staff_key(town), subject=contract.accounts_subject(["x"]))
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    details = refused.value.details() or ""
    assert "nobody-5" not in details and "reg-0001" not in details
    metadata = dict(refused.value.trailing_metadata() or ())
    assert metadata[contract.CHECK_KEY] == contract.READ_SIGNATURE_CHECK


def test_a_request_over_the_bound_or_malformed_is_refused(town: Town) -> None:
    too_many = [f"reg-{n:05d}" for n in range(contract.MAX_CHECK_ACCOUNTS + 1)]
    with pytest.raises(grpc.RpcError) as refused:
        check(town, too_many, staff_key(town))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {contract.MAX_CHECK_ACCOUNTS} are taken" in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError) as malformed:
        check(town, ["REG-0001"], staff_key(town))
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_the_client_asks_in_chunks(town: Town) -> None:
    accounts = [f"reg-{n:04d}" for n in range(REGISTERED)] + ["nobody-6"]
    with town.client() as client:
        answer = client.check_accounts(accounts * 9, staff_key(town))  # over the bound
    assert answer.register is True
    assert answer.unknown == frozenset({"nobody-6"})


def test_a_signer_the_node_does_not_know_stops_the_sheet(town: Town) -> None:
    stranger = town.root / "stranger.pem"
    keyfile.write_key_files(stranger, SigningKey.generate(), "not of this town")
    town.keys["stranger"] = stranger
    before = town.size()
    path = write_sheet(town, "stranger.csv", [f"reg-0001,V01,1,{day(1)},"])
    result = town.run("submit", "--csv", str(path), signer="stranger")
    assert result.code == 1
    assert "the account check" in result.err
    assert "is not registered in this log" in result.err
    assert "[PERMISSION_DENIED, check read-signature]" in result.err, result.err
    # What the clerk can do about it, in the clerk's words around the node's reason.
    assert "Sign with your own staff key (--signer)" in result.err
    chinese = town.run("--lang", "zh_CN", "submit", "--csv", str(path), signer="stranger")
    assert chinese.code == 1
    assert "is not registered in this log" in chinese.err  # the node's own reason
    assert "--signer" in chinese.err and "Sign with" not in chinese.err
    assert town.size() == before
