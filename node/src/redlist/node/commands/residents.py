"""``redlist-node residents``: the resident register beside the log (DESIGN 9.1)."""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import sys
import time
import unicodedata
from pathlib import Path

from redlist.ledger.deeddate import day_of, known_zone
from redlist.ledger.errors import FormatError, RedlistError, RegisterError, StoreError
from redlist.ledger.i18n import N_, _, in_words, ngettext, pgettext
from redlist.ledger.log import Log
from redlist.ledger.masking import mask_id_number, mask_name, mask_phone
from redlist.ledger.registerstore import (
    REGISTER_ENV_NAME,
    RegisterConflictError,
    RegisterStore,
)
from redlist.ledger.residents import (
    CONSENT,
    FIELDS,
    HOUSEHOLD,
    ORGANISATION,
    PERSON,
    STATUTE,
    Household,
    Resident,
    RowError,
    Tombstone,
    check_account,
    latest_today,
    resident_from_cells,
)
from redlist.ledger.store import ENV_DIR_NAME
from redlist.ledger.tables import print_table
from redlist.node.commands.serve import check_data_dir
from redlist.node.residentfile import ResidentFile, read_residents_csv, refuse

DESCRIPTION = N_("""\
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
already, or erased), 2 could not start (a bad file or value, a missing directory).""")

_WHEN = "%Y-%m-%d %H:%M"
_UPDATE_OPTIONS = (
    ("name", N_("the resident's name")),
    ("id_number", N_("the 18-character ID number (empty to remove it)")),
    ("phone", N_("a mobile or landline number (empty to remove it)")),
    ("village", N_("the village")),
    ("household", N_("the household within the village (empty: none)")),
    ("basis", N_("consent, statute, or empty (no basis: left out of publicity)")),
    ("basis_date", N_("the date of the basis, YYYY-MM-DD")),
    ("kind", N_("person, household or organisation (个人, 家庭, 组织)")),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "residents",
        help=_("the resident register: import, show, update, erase, list"),
        description=_(DESCRIPTION).format(REGISTER_ENV_NAME=REGISTER_ENV_NAME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title=_("actions"), metavar="ACTION", required=True)

    importing = _action(actions, "import", _("import residents from a CSV file"))
    importing.add_argument(
        "--csv",
        required=True,
        type=Path,
        metavar="FILE",
        help=_(
            "columns account,name,id_number,phone,village,household,basis,basis_date and "
            "optionally kind (or 账户,姓名,身份证号,电话,村,户,依据,依据日期,类型); UTF-8 or "
            "GB18030"
        ),
    )
    importing.add_argument(
        "--update",
        action="store_true",
        help=_("replace the records of accounts already registered (else they are refused)"),
    )
    importing.set_defaults(run=run_import)

    showing = _action(actions, "show", _("show one resident in full"))
    showing.add_argument("account", metavar="ACCOUNT")
    showing.set_defaults(run=run_show)

    updating = _action(actions, "update", _("change fields of one resident"))
    updating.add_argument("account", metavar="ACCOUNT")
    for field, description in _UPDATE_OPTIONS:
        updating.add_argument(
            f"--{field.replace('_', '-')}", dest=field, metavar="VALUE", help=_(description)
        )
    updating.set_defaults(run=run_update)

    erasing = _action(actions, "erase", _("erase one resident's personal data for good"))
    erasing.add_argument("account", metavar="ACCOUNT")
    erasing.add_argument(
        "--yes", action="store_true", help=_("erase without asking: it cannot be undone")
    )
    erasing.set_defaults(run=run_erase)

    listing = _action(actions, "list", _("list residents (ID and phone numbers masked)"))
    listing.add_argument("--village", metavar="VILLAGE", help=_("only the residents of VILLAGE"))
    listing.add_argument(
        "--csv",
        action="store_true",
        help=_("write CSV (UTF-8 with a byte order mark, for Excel) instead of a table"),
    )
    listing.set_defaults(run=run_list)


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    parser = actions.add_parser(
        name, help=_(summary), description=f"{summary[0].upper()}{summary[1:]}."
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    return parser


def run_import(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    path: Path = args.csv
    now_ms = _now_ms()
    contents = _read_file(path)
    read = read_residents_csv(contents, path.name, latest_today(now_ms), now_ms)
    print(
        _("Read {path} as {encoding}: {residents}.").format(
            path=path, encoding=_(read.encoding), residents=_residents(len(read.rows))
        )
    )
    with RegisterStore.open(data, write=True) as store:
        if args.update:
            _refuse_erasing(store, read, path.name)
        try:
            result = store.add([row.resident for row in read.rows], update=args.update)
        except RegisterConflictError as error:
            lines = [
                _("row {row}, column {columns}: {account} {message}").format(
                    row=read.rows[c.index].row,
                    columns=read.columns["account"],
                    account=c.account,
                    message=c.message,
                )
                for c in error.conflicts
            ]
            count = ngettext("{lines_count} row", "{lines_count} rows", len(lines)).format(
                lines_count=len(lines)
            )
            raise RegisterError(
                _("{name}: {count} conflict with the register; nothing was imported:\n  ").format(
                    name=path.name, count=count
                )
                + "\n  ".join(lines)
            ) from None
        left_out = store.left_out()
        total = len(store.residents())
    print(
        _(
            "Registered {added:,} new, updated {updated:,}, {unchanged:,} unchanged, in {value}."
        ).format(
            added=result.added,
            updated=result.updated,
            unchanged=result.unchanged,
            value=data / REGISTER_ENV_NAME,
        )
    )
    print(
        _("The register holds {residents}; {left_out}.").format(
            residents=_residents(total), left_out=_left_out(left_out)
        )
    )
    return 0


#: The fields an import never empties (their numbers are not kept anywhere else), and
#: the option of 'residents update' that does.
_KEPT_FIELDS = {"id_number": "--id-number", "phone": "--phone"}


def _refuse_erasing(store: RegisterStore, read: ResidentFile, name: str) -> None:
    """Refuse an ``--update`` that would empty an ID or phone number the register holds:
    a sheet exported with 'residents list' has them masked, and a clerk who blanks the
    column to import it would erase them for good."""
    problems: list[str] = []
    rows: set[int] = set()
    for row in read.rows:
        stored = store.get(row.resident.account)
        if stored is None:
            continue
        for field, option in _KEPT_FIELDS.items():
            if getattr(stored, field) and not getattr(row.resident, field):
                rows.add(row.row)
                problems.append(
                    _(
                        "row {row}, column {column}: empty, but the register holds {account}'s "
                        "number; an import never erases one (to remove it: redlist-node "
                        'residents update {account} {option} "")'
                    ).format(
                        row=row.row,
                        column=read.columns[field],
                        account=row.resident.account,
                        option=option,
                    )
                )
    if problems:
        refuse(name, problems, len(rows))


def run_show(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    account = _account(args.account)
    with RegisterStore.open(data) as store:
        resident = store.get(account)
        if resident is None:
            tombstone = store.tombstone(account)
            if tombstone is None:
                raise RegisterError(
                    _("the register in {data} holds no resident {account}").format(
                        data=data, account=account
                    )
                )
            print(
                _("Resident {account}: personal data erased on {erased_on}.").format(
                    account=account, erased_on=_erased_on(tombstone, data)
                )
            )
            print(_("Its entries stay in the log; publicity leaves it out."))
            return 0
        household = store.household_of(account)
    members = (
        _(" ({members_count} members: {join})").format(
            members_count=len(household.members), join=_(", ").join(household.members)
        )
        if household is not None
        else ""
    )
    basis = (
        _("{basis}, since {basis_date}").format(
            basis=basis_word(resident.basis), basis_date=resident.basis_date
        )
        if resident.basis
        else _("none: publicity leaves this resident out")
    )
    print(_("Resident {account}").format(account=account))
    for label, value in (
        (_("name"), resident.name),
        (_("kind"), kind_word(resident.kind)),
        (_("ID number"), resident.id_number or "-"),
        (_("phone"), resident.phone or "-"),
        (_("village"), resident.village),
        (_("household"), (resident.household + members) if resident.household else "-"),
        (_("legal basis"), basis),
        (_("publicity shows"), mask_name(resident.name)),
        (_("last changed"), _when(resident.changed_ms, data)),
        *_points_lines(data, account, household),
    ):
        shown = _("{label}:").format(label=label)
        print(f"  {shown}{' ' * max(1, _LABEL_COLUMNS - _width(shown))}{value}")
    return 0


#: The columns a label of ``residents show`` takes with its colon, so values line up.
_LABEL_COLUMNS = 17


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def kind_word(kind: str) -> str:
    """A register's kind of account (``person``, ``household``, ``organisation``) in the
    reader's language; the register and its CSV keep the English word."""
    words = {
        PERSON: pgettext("account kind", "person"),
        HOUSEHOLD: pgettext("account kind", "household"),
        ORGANISATION: pgettext("account kind", "organisation"),
    }
    return words.get(kind, kind)


def basis_word(basis: str) -> str:
    """A legal basis (``consent``, ``statute``) in the reader's language; empty stays empty."""
    words = {
        CONSENT: pgettext("legal basis", "consent"),
        STATUTE: pgettext("legal basis", "statute"),
    }
    return words.get(basis, basis)


def _points_lines(data: Path, account: str, household: Household | None) -> list[tuple[str, str]]:
    """The resident's points and, for a household, every member's beside the household's
    total (the family file): read from the log in ``data``, as of its latest entry. None
    when ``data`` holds no log (a register kept on its own)."""
    if not (data / ENV_DIR_NAME).is_dir():
        return []
    with Log.open(data, readonly=True) as log:
        members = household.members if household is not None else (account,)
        statements = {member: log.account(member, page_size=1) for member in members}
    own = statements[account]
    lines = [
        (
            # A resident's points (积分), not a rule's (分值).
            pgettext("resident", "points"),
            _("score {score} ({grade}), earned {earned:+d}, spendable {spendable}").format(
                score=own.score, grade=own.grade, earned=own.earned, spendable=own.spendable
            ),
        )
    ]
    if household is not None and len(members) > 1:
        each = _(", ").join(
            _("{account} {earned:+d}").format(account=member, earned=statements[member].earned)
            for member in members
        )
        total = sum(statement.earned for statement in statements.values())
        lines.append(
            (
                _("household points"),
                _("{total:+d} earned together ({each})").format(total=total, each=each),
            )
        )
    return lines


def run_update(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    account = _account(args.account)
    given = {field: getattr(args, field) for field, _ in _UPDATE_OPTIONS}
    given = {field: value for field, value in given.items() if value is not None}
    if not given:
        raise FormatError(
            _("say what to change: ")
            + ", ".join(f"--{field.replace('_', '-')}" for field, _ in _UPDATE_OPTIONS)
        )
    now_ms = _now_ms()
    with RegisterStore.open(data, write=True) as store:
        current = store.get(account)
        if current is None:
            tombstone = store.tombstone(account)
            if tombstone is not None:
                raise RegisterError(
                    _(
                        "the personal data of {account} was erased on {erased_on}; it is not "
                        "taken back"
                    ).format(account=account, erased_on=_erased_on(tombstone, data))
                )
            raise RegisterError(
                _("the register in {data} holds no resident {account}").format(
                    data=data, account=account
                )
            )
        cells = _cells(current)
        cells.update(given)
        if "basis" in given and not given["basis"].strip() and "basis_date" not in given:
            cells["basis_date"] = ""  # no basis, no date of it
        try:
            changed = resident_from_cells(cells, latest_today(now_ms), now_ms)
        except RowError as error:
            raise FormatError(
                _("; ").join(
                    "--{option}: {error}".format(
                        option=problem.field.replace("_", "-"), error=in_words(problem.error)
                    )
                    for problem in error.problems
                )
            ) from None
        if changed.same_data(current):
            print(
                _("Nothing changed: {account} already holds these values.").format(account=account)
            )
            return 0
        store.replace(changed)
    before, after = _cells(current), _cells(changed)
    names = [_(label) for field, label in _LABELS.items() if before[field] != after[field]]
    print(_("Updated {account}: {join}.").format(account=account, join=_(", ").join(names)))
    return 0


def run_erase(args: argparse.Namespace) -> int:
    data = _data_dir(args.data)
    account = _account(args.account)
    if not args.yes:
        raise FormatError(
            _(
                "erasing {account} cannot be undone: its name, ID number, phone, village, "
                "household and legal basis are removed for good. Run again with --yes"
            ).format(account=account)
        )
    with RegisterStore.open(data, write=True) as store:
        tombstone = store.erase(account, _now_ms())
    print(
        _(
            "Erased the personal data of {account} on {erased_on}: name, ID number, phone, "
            "village, household and legal basis."
        ).format(account=account, erased_on=_erased_on(tombstone, data))
    )
    print(
        _(
            "The register's files in {value} were rewritten without them; the account's "
            "entries stay in the log, and publicity leaves it out."
        ).format(value=data / REGISTER_ENV_NAME)
    )
    print(_("Copies of the data directory made before now (backups) still hold them."))
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
            resident.kind,
        ]
        for resident in residents
    ]
    if args.csv:
        _write_csv(rows)  # for programs: the register's own English words
        return 0
    for row in rows:
        row[6], row[8] = basis_word(row[6]), kind_word(row[8])
    where = _(" of {village}").format(village=args.village) if args.village else ""
    if not residents:
        print(_("The register in {data} holds no residents{where}.").format(data=data, where=where))
    else:
        headers = [_(header) for header in _LIST_HEADERS]
        print_table(sys.stdout, headers, rows)
        left_out = sum(1 for resident in residents if not resident.publishable)
        print()
        print(
            _("{residents}{where}; {left_out}.").format(
                residents=_residents(len(residents)), where=where, left_out=_left_out(left_out)
            )
        )
    if erased:
        print(
            _("{erased} erased account(s) are not listed (their personal data is gone).").format(
                erased=erased
            )
        )
    return 0


_LIST_HEADERS = (
    N_("account"),
    N_("name"),
    N_("ID number"),
    N_("phone"),
    N_("village"),
    N_("household"),
    N_("basis"),
    N_("since"),
    N_("kind"),
)
_LABELS = {
    "name": N_("name"),
    "id_number": N_("ID number"),
    "phone": N_("phone"),
    "village": N_("village"),
    "household": N_("household"),
    "basis": N_("legal basis"),
    "basis_date": N_("basis date"),
    "kind": N_("kind"),
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
            _(
                "{data} holds no log ({ENV_DIR_NAME}); the register belongs in the data "
                "directory of a node, created with 'redlist-node init'"
            ).format(data=data, ENV_DIR_NAME=ENV_DIR_NAME)
        )
    return data


def _account(text: str) -> str:
    try:
        return check_account(text)
    except FormatError as error:
        raise FormatError(_("ACCOUNT {error}").format(error=in_words(error))) from None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(_("the file {path} does not exist").format(path=path)) from None
    except IsADirectoryError:
        raise FormatError(_("{path} is a directory, not a file").format(path=path)) from None
    except OSError as error:
        raise FormatError(
            _("cannot read {path}: {strerror}").format(path=path, strerror=error.strerror)
        ) from None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _when(ms: int, data: Path) -> str:
    """``ms`` as the town reads it: in its time zone (the log's genesis), named."""
    zone, name = _town_zone(data)
    return datetime.datetime.fromtimestamp(ms / 1000, zone).strftime(_WHEN) + f" ({name})"


def _erased_on(tombstone: Tombstone, data: Path) -> str:
    """The day of an erasure in the town's time zone (``YYYY-MM-DD``)."""
    return day_of(tombstone.erased_ms, _town_zone(data)[0]).isoformat()


def _town_zone(data: Path) -> tuple[datetime.tzinfo, str]:
    """The town's time zone and its name; UTC where the log or the zone is unknown here."""
    try:
        with Log.open(data, readonly=True) as log:
            name = log.config().tz
    except RedlistError:
        return datetime.UTC, "UTC"
    zone = known_zone(name)
    return (zone, name) if zone is not None else (datetime.UTC, "UTC")


def _residents(count: int) -> str:
    return ngettext("{count:,} resident", "{count:,} residents", count).format(count=count)


def _left_out(count: int) -> str:
    if not count:
        return _("every one has a legal basis for publicity")
    verb = "has" if count == 1 else "have"
    left = "is" if count == 1 else "are"
    return _(
        "{count:,} {verb} no legal basis (consent or statute) and {left} left out of publicity"
    ).format(count=count, verb=verb, left=left)
