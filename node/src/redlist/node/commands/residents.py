"""``redlist-node residents``: the resident register beside the log (DESIGN 9.1)."""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import sys
import time
from pathlib import Path

from redlist.ledger.errors import FormatError, RegisterError, StoreError
from redlist.ledger.masking import mask_id_number, mask_name, mask_phone
from redlist.ledger.registerstore import (
    REGISTER_ENV_NAME,
    RegisterConflictError,
    RegisterStore,
)
from redlist.ledger.residents import (
    FIELDS,
    FieldError,
    Resident,
    check_account,
    latest_today,
    resident_from_cells,
)
from redlist.ledger.store import ENV_DIR_NAME
from redlist.ledger.tables import print_table
from redlist.node.commands.serve import check_data_dir
from redlist.node.residentfile import read_residents_csv

DESCRIPTION = f"""\
The resident register: who each account of the log is. Per account a resident's
name, ID number, phone, village, household and the legal basis for scoring and
publishing them (consent or statute, and its date). It lives in DIR/{REGISTER_ENV_NAME},
beside the log and never in it: the log holds account ids only.

  import   read a CSV file of residents (all or nothing)
  show     one resident, in full
  update   change fields of one resident
  erase    erase one resident's personal data for good
  list     residents, with ID and phone numbers masked

Safe while the node serves: the register is a separate database, and the
commands wait for each other (any number may read, one may change it).

Exit status: 0 done, 1 refused by the register (an account it does not hold, holds
already, or erased), 2 could not start (a bad file or value, a missing directory)."""

_WHEN = "%Y-%m-%d %H:%M UTC"
_UPDATE_OPTIONS = (
    ("name", "the resident's name"),
    ("id_number", "the 18-character ID number (empty to remove it)"),
    ("phone", "a mobile or landline number (empty to remove it)"),
    ("village", "the village"),
    ("household", "the household within the village (empty: none)"),
    ("basis", "consent, statute, or empty (no basis: left out of publicity)"),
    ("basis_date", "the date of the basis, YYYY-MM-DD"),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "residents",
        help="the resident register: import, show, update, erase, list",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    importing = _action(actions, "import", "import residents from a CSV file")
    importing.add_argument(
        "--csv",
        required=True,
        type=Path,
        metavar="FILE",
        help="columns account,name,id_number,phone,village,household,basis,basis_date "
        "(or 账户,姓名,身份证号,电话,村,户,依据,依据日期); UTF-8 or GB18030",
    )
    importing.add_argument(
        "--update",
        action="store_true",
        help="replace the records of accounts already registered (else they are refused)",
    )
    importing.set_defaults(run=run_import)

    showing = _action(actions, "show", "show one resident in full")
    showing.add_argument("account", metavar="ACCOUNT")
    showing.set_defaults(run=run_show)

    updating = _action(actions, "update", "change fields of one resident")
    updating.add_argument("account", metavar="ACCOUNT")
    for field, description in _UPDATE_OPTIONS:
        updating.add_argument(
            f"--{field.replace('_', '-')}", dest=field, metavar="VALUE", help=description
        )
    updating.set_defaults(run=run_update)

    erasing = _action(actions, "erase", "erase one resident's personal data for good")
    erasing.add_argument("account", metavar="ACCOUNT")
    erasing.add_argument(
        "--yes", action="store_true", help="erase without asking: it cannot be undone"
    )
    erasing.set_defaults(run=run_erase)

    listing = _action(actions, "list", "list residents (ID and phone numbers masked)")
    listing.add_argument("--village", metavar="VILLAGE", help="only the residents of VILLAGE")
    listing.add_argument(
        "--csv",
        action="store_true",
        help="write CSV (UTF-8 with a byte order mark, for Excel) instead of a table",
    )
    listing.set_defaults(run=run_list)


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    parser = actions.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}."
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help="the node's data directory"
    )
    return parser


def run_import(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    path: Path = args.csv
    now_ms = _now_ms()
    contents = _read_file(path)
    read = read_residents_csv(contents, path.name, latest_today(now_ms), now_ms)
    print(f"Read {path} as {read.encoding}: {_residents(len(read.rows))}.")
    with RegisterStore.open(data, write=True) as store:
        try:
            result = store.add([row.resident for row in read.rows], update=args.update)
        except RegisterConflictError as error:
            lines = [
                f"row {read.rows[c.index].row}, column {read.columns['account']}: "
                f"{c.account} {c.message}"
                for c in error.conflicts
            ]
            count = f"{len(lines)} row" + ("s" if len(lines) != 1 else "")
            raise RegisterError(
                f"{path.name}: {count} conflict with the register; nothing was imported:\n  "
                + "\n  ".join(lines)
            ) from None
        left_out = store.left_out()
        total = len(store.residents())
    print(
        f"Registered {result.added:,} new, updated {result.updated:,}, "
        f"{result.unchanged:,} unchanged, in {data / REGISTER_ENV_NAME}."
    )
    print(f"The register holds {_residents(total)}; {_left_out(left_out)}.")
    return 0


def run_show(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    account = _account(args.account)
    with RegisterStore.open(data) as store:
        resident = store.get(account)
        if resident is None:
            tombstone = store.tombstone(account)
            if tombstone is None:
                raise RegisterError(f"the register in {data} holds no resident {account}")
            print(f"Resident {account}: personal data erased on {tombstone.erased_on}.")
            print("Its entries stay in the log; publicity leaves it out.")
            return 0
        household = store.household_of(account)
    members = (
        f" ({len(household.members)} members: {', '.join(household.members)})"
        if household is not None
        else ""
    )
    basis = (
        f"{resident.basis}, since {resident.basis_date}"
        if resident.basis
        else "none: publicity leaves this resident out"
    )
    print(f"Resident {account}")
    for label, value in (
        ("name", resident.name),
        ("ID number", resident.id_number or "-"),
        ("phone", resident.phone or "-"),
        ("village", resident.village),
        ("household", (resident.household + members) if resident.household else "-"),
        ("legal basis", basis),
        ("publicity shows", mask_name(resident.name)),
        ("last changed", _when(resident.changed_ms)),
    ):
        print(f"  {label + ':':<17}{value}")
    return 0


def run_update(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    account = _account(args.account)
    given = {field: getattr(args, field) for field, _ in _UPDATE_OPTIONS}
    given = {field: value for field, value in given.items() if value is not None}
    if not given:
        raise FormatError(
            "say what to change: "
            + ", ".join(f"--{field.replace('_', '-')}" for field, _ in _UPDATE_OPTIONS)
        )
    now_ms = _now_ms()
    with RegisterStore.open(data, write=True) as store:
        current = store.get(account)
        if current is None:
            tombstone = store.tombstone(account)
            if tombstone is not None:
                raise RegisterError(
                    f"the personal data of {account} was erased on {tombstone.erased_on}; "
                    "it is not taken back"
                )
            raise RegisterError(f"the register in {data} holds no resident {account}")
        cells = _cells(current)
        cells.update(given)
        if "basis" in given and not given["basis"].strip() and "basis_date" not in given:
            cells["basis_date"] = ""  # no basis, no date of it
        try:
            changed = resident_from_cells(cells, latest_today(now_ms), now_ms)
        except FieldError as error:
            option = f"--{error.field.replace('_', '-')}"
            raise FormatError(f"{option}: {error}") from None
        if changed.same_data(current):
            print(f"Nothing changed: {account} already holds these values.")
            return 0
        store.replace(changed)
    before, after = _cells(current), _cells(changed)
    names = [label for field, label in _LABELS.items() if before[field] != after[field]]
    print(f"Updated {account}: {', '.join(names)}.")
    return 0


def run_erase(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    account = _account(args.account)
    if not args.yes:
        raise FormatError(
            f"erasing {account} cannot be undone: its name, ID number, phone, village, "
            "household and legal basis are removed for good. Run again with --yes"
        )
    with RegisterStore.open(data, write=True) as store:
        tombstone = store.erase(account, _now_ms())
    print(
        f"Erased the personal data of {account} on {tombstone.erased_on}: name, ID number, "
        "phone, village, household and legal basis."
    )
    print(
        f"The register's files in {data / REGISTER_ENV_NAME} were rewritten without them; "
        "the account's entries stay in the log, and publicity leaves it out."
    )
    print("Copies of the data directory made before now (backups) still hold them.")
    return 0


def run_list(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    with RegisterStore.open(data) as store:
        residents = store.residents(args.village)
        erased = len(store.tombstones())
    rows = [
        [
            resident.account,
            resident.name,
            mask_id_number(resident.id_number),
            mask_phone(resident.phone),
            resident.village,
            resident.household,
            resident.basis,
            resident.basis_date,
        ]
        for resident in residents
    ]
    if args.csv:
        _write_csv(rows)
        return 0
    where = f" of {args.village}" if args.village else ""
    if not residents:
        print(f"The register in {data} holds no residents{where}.")
    else:
        headers = [
            "account",
            "name",
            "ID number",
            "phone",
            "village",
            "household",
            "basis",
            "since",
        ]
        print_table(sys.stdout, headers, rows)
        left_out = sum(1 for resident in residents if not resident.publishable)
        print(f"\n{_residents(len(residents))}{where}; {_left_out(left_out)}.")
    if erased:
        print(f"{erased} erased account(s) are not listed (their personal data is gone).")
    return 0


_LIST_HEADERS = ("account", "name", "ID number", "phone", "village", "household", "basis", "since")
_LABELS = {
    "name": "name",
    "id_number": "ID number",
    "phone": "phone",
    "village": "village",
    "household": "household",
    "basis": "legal basis",
    "basis_date": "basis date",
}


def _cells(resident: Resident) -> dict[str, str]:
    return {field: str(getattr(resident, field)) for field in FIELDS}


def _write_csv(rows: list[list[str]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(FIELDS)
    writer.writerows(rows)
    sys.stdout.flush()
    sys.stdout.buffer.write(b"\xef\xbb\xbf" + text.getvalue().encode("utf-8"))
    sys.stdout.buffer.flush()


def _data_dir(data: Path) -> Path:
    check_data_dir(data)
    if not (data / ENV_DIR_NAME).is_dir():
        raise StoreError(
            f"{data} holds no log ({ENV_DIR_NAME}); the register belongs in the data "
            "directory of a node, created with 'redlist-node init'"
        )
    return data


def _account(text: str) -> str:
    try:
        return check_account(text)
    except FormatError as error:
        raise FormatError(f"ACCOUNT {error}") from None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"the file {path} does not exist") from None
    except IsADirectoryError:
        raise FormatError(f"{path} is a directory, not a file") from None
    except OSError as error:
        raise FormatError(f"cannot read {path}: {error.strerror}") from None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime(_WHEN)


def _residents(count: int) -> str:
    return f"{count:,} resident" + ("s" if count != 1 else "")


def _left_out(count: int) -> str:
    if not count:
        return "every one has a legal basis for publicity"
    verb = "has" if count == 1 else "have"
    left = "is" if count == 1 else "are"
    return f"{count:,} {verb} no legal basis (consent or statute) and {left} left out of publicity"
