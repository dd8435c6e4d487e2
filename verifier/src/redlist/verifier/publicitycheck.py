"""``redlist-verify bundle DIR --publicity``: a monthly bundle's month and its publicity.csv.

Two checks, both failing with a ``VerificationError`` that names the entry:

* ``month``: a monthly bundle holds the entries the town recorded in one calendar month
  of its time zone (leaf ``time``, the genesis ``tz``: docs/adr/0027), and that month
  comes after the month of the last entry verified before (the state file's). So a
  month whose last entries were held back shows up in the next bundle, as entries of
  an earlier month; a bundle that does not start where the state file ends is refused
  before any entry is read (``source.audit``).
* ``publicity``: every row of ``publicity.csv`` is the entry its 序号 names, as
  re-derived from the leaves by the same code the node uses
  (``redlist.ledger.publicity``): date, account, kind, rule code and title, points,
  running score, grade, signers and target. A note is shown only for an award that commits
  to one (its words are not in the log: DESIGN 9.2); given the texts file (``--texts``),
  every published note's words must be the text its entry committed to.
  The masked name has a mask's shape (at most two characters shown, at least one
  hidden), so a name left unmasked is caught; each account has one name and one
  village throughout. A resident shown is shown in full: every listed entry of an
  account that appears is in the file. Accounts never named are the residents left out
  (no legal basis for publication); the verifier counts them but cannot know why.

A folder that also holds a texts file (``texts.jsonl``, every note unmasked) is
reported with a warning: the data verify, but the folder must not be published.

Names and villages come from the file itself: the verifier has no register.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redlist.ledger import bundle, months
from redlist.ledger.deeddate import log_zone
from redlist.ledger.errors import FormatError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.masking import hides_only, shows_number
from redlist.ledger.points import Effect
from redlist.ledger.publicity import (
    DERIVED,
    NAME,
    NOTE,
    VILLAGE,
    PublicEntry,
    PublicityRecorder,
    decode_csv,
    mask_problem,
    objections_by_target,
)
from redlist.ledger.state import LedgerState
from redlist.ledger.tables import wrap_text
from redlist.ledger.textcommit import TEXTS_FILE, BundleText
from redlist.ledger.validator import Reading
from redlist.verifier.files import read_publicity_file

#: publicity.csv of a month: a town's month is thousands of rows, far below this.
CSV_LIMIT = 64 << 20


class MonthWatch:
    """Sees each accepted entry (as the ``Auditor``'s observer) and checks the month.

    ``previous_time`` is the node time of the last entry verified before (the resumed
    state's), or None when the bundle starts the log.
    """

    def __init__(self, previous_time: int | None) -> None:
        self._previous_time = previous_time
        self.month: str | None = None
        self.recorder = PublicityRecorder()

    def __call__(
        self, seq: int, reading: Reading, effect: Effect | None, state: LedgerState
    ) -> None:
        config = state.config()
        if reading.leaf is None or config is None:
            return
        zone = log_zone(config.tz)
        month = months.month_of_time(reading.leaf.time, zone)
        if self.month is None:
            if self._previous_time is not None and seq > 0:
                before = months.month_of_time(self._previous_time, zone)
                if month <= before:
                    raise VerificationError(
                        "month",
                        f"entry {seq} was recorded in {month}, but the entries verified "
                        f"before this bundle already reached {before}: a monthly bundle "
                        "starts with the first entry of a later month (was the previous "
                        "month cut short?)",
                        seq=seq,
                    )
            self.month = month
        elif month != self.month:
            raise VerificationError(
                "month",
                f"entry {seq} was recorded in {month}, but the bundle's first entry in "
                f"{self.month}: a monthly bundle holds one month",
                seq=seq,
            )
        self.recorder.observe(reading.leaf.time, reading.body, effect, state)


@dataclass(frozen=True)
class PublicityReport:
    """What the check of publicity.csv found (all of it held)."""

    month: str | None
    rows: int
    residents_shown: int
    residents_left_out: int
    listed_entries: int
    #: Published notes whose words matched their commitments (None: no texts given),
    #: and published notes the texts file does not hold.
    notes_checked: int | None = None
    notes_unchecked: int = 0
    #: Rows of publicity.html held to publicity.csv and the audit (None: not checked).
    notice_rows_checked: int | None = None
    #: The bundle's folder holds a texts file (``texts.jsonl``, as exports before
    #: ``--texts FILE`` wrote it): every note unmasked, which must never be published.
    texts_in_bundle: bool = False
    #: The notice is marked as a draft (``export --draft``): a preview, not the month's
    #: publication, whose bundle will start where this one does and end later.
    draft: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "rows": self.rows,
            "residents_shown": self.residents_shown,
            "residents_left_out": self.residents_left_out,
            "listed_entries": self.listed_entries,
            "notes_checked": self.notes_checked,
            "notes_unchecked": self.notes_unchecked,
            "notice_rows_checked": self.notice_rows_checked,
            "texts_in_bundle": self.texts_in_bundle,
            "draft": self.draft,
        }

    def summary(self) -> str:
        month = self.month or _("a month without entries")
        text = _(
            "publicity.csv agrees with the entries: {rows} row(s) of {shown} resident(s) "
            "re-derived (points, running scores, grades); {left_out} resident(s) with entries "
            "this month are not listed (left out: no legal basis for publication)."
        ).format(rows=self.rows, shown=self.residents_shown, left_out=self.residents_left_out)
        if self.notes_checked is not None:
            text += " " + _(
                "Published notes: {checked} match the texts their entries committed to; "
                "{unchecked} could not be checked (their text is not in the texts file)."
            ).format(checked=self.notes_checked, unchecked=self.notes_unchecked)
        else:
            text += " " + _("The words of published notes were not checked (no --texts).")
        if self.notice_rows_checked is not None:
            text += " " + _(
                "The printed notice (publicity.html) agrees with it: {rows} row(s) of its "
                "tables checked."
            ).format(rows=self.notice_rows_checked)
        if self.draft:
            text += " " + _(
                "This is a draft (草稿), a preview, not the month's publication: the state "
                "file, if given, was left as it was, so that the publication verifies after "
                "it when the month is over."
            )
        if self.texts_in_bundle:
            text += " " + _(
                "WARNING: this folder also holds {file}, every note unmasked with its salt "
                "(personal data). It must never be published: if the folder is on a website "
                "or a board, tell the town to take that file down."
            ).format(file=TEXTS_FILE)
        lines = wrap_text(text, 88, initial_indent="  ", subsequent_indent="    ")
        heading = _("Publicity of {month}:").format(month=month)
        return "\n" + heading + "\n" + "\n".join(lines) + "\n"


def check_csv(
    directory: Path,
    month: str | None,
    entries: Sequence[PublicEntry],
    texts: Sequence[BundleText] | None = None,
    standings: Mapping[str, tuple[int, str]] | None = None,
) -> PublicityReport:
    """Compare the bundle's publicity.csv with ``entries`` (re-derived from its leaves).

    ``texts`` (a texts file already checked against the commitments, ``--texts``) also
    checks the words of every published note: a note shown must be the text its entry
    committed to. A note whose text the file does not hold (erased since, or not
    exported) is counted as not checked."""
    notes = {text.seq: text.text.text for text in texts or () if text.field == "note"}
    notes_checked = notes_unchecked = 0
    data = read_publicity_file(directory, bundle.PUBLICITY_CSV_FILE, CSV_LIMIT)
    try:
        rows = decode_csv(data)
    except FormatError as exc:
        raise VerificationError("publicity", exc.diagnostics()) from None
    derived = {entry.seq: entry for entry in entries}
    people: dict[str, tuple[str, str]] = {}
    for row in rows:
        entry = derived.get(row.seq)
        where = f"publicity.csv line {row.line} (entry {row.seq})"
        if entry is None:
            raise VerificationError(
                "publicity",
                f"{where}: the bundle holds no award, objection or reversal {row.seq} to list",
                seq=row.seq,
            )
        expected = entry.cells()
        for column in DERIVED:
            if row.cells[column] != expected[column]:
                raise VerificationError(
                    "publicity",
                    f"{where}: {column} is {row.cells[column]!r}, the entries say "
                    f"{expected[column]!r}",
                    seq=row.seq,
                )
        # The log holds a salted commitment to a note, not its text (DESIGN 9.2): a note
        # shown for an entry that commits to none is made up; a shown note's words can be
        # checked only with its salt (redlist-verify bundle --texts).
        if row.cells[NOTE] and not entry.has_note:
            raise VerificationError(
                "publicity", f"{where}: 备注 is given, but entry {row.seq} has no note", seq=row.seq
            )
        if shows_number(row.cells[NOTE]):  # DESIGN 3.7: never an ID or phone number
            raise VerificationError(
                "publicity",
                f"{where}: 备注 shows a number that may be an ID or phone number",
                seq=row.seq,
            )
        if row.cells[NOTE] and texts is not None:
            committed = notes.get(row.seq)
            if committed is None:
                notes_unchecked += 1
            elif not hides_only(row.cells[NOTE], committed):  # names and numbers masked
                raise VerificationError(
                    "publicity",
                    f"{where}: 备注 is “{row.cells[NOTE]}”, but the note entry {row.seq} "
                    f"committed to when it was signed is “{committed}”",
                    seq=row.seq,
                )
            else:
                notes_checked += 1
        problem = mask_problem(row.cells[NAME])
        if problem is not None:
            raise VerificationError("publicity", f"{where}: 姓名 {problem}", seq=row.seq)
        person = (row.cells[NAME], row.cells[VILLAGE])
        if people.setdefault(entry.account, person) != person:
            raise VerificationError(
                "publicity",
                f"{where}: account {entry.account} is listed with another name or village "
                "than on its earlier rows",
                seq=row.seq,
            )
    listed = {row.seq for row in rows}
    for entry in entries:
        if entry.account in people and entry.seq not in listed:
            raise VerificationError(
                "publicity",
                f"publicity.csv lists account {entry.account} but leaves out its entry "
                f"{entry.seq} ({entry.kind} {entry.cells()['分数']}): a resident shown is "
                "shown in full",
                seq=entry.seq,
            )
    accounts = {entry.account for entry in entries}
    notice = None
    if standings is not None:  # the notice, once the list it shows holds
        from redlist.verifier.noticecheck import check_notice

        objections = objections_by_target(derived[row.seq] for row in rows)
        notice = check_notice(directory, rows, standings, objections)
    return PublicityReport(
        month=month,
        notice_rows_checked=None if notice is None else notice.rows,
        draft=notice is not None and notice.draft,
        rows=len(rows),
        residents_shown=len(people),
        residents_left_out=len(accounts - set(people)),
        listed_entries=len(entries),
        notes_checked=notes_checked if texts is not None else None,
        notes_unchecked=notes_unchecked,
        texts_in_bundle=(directory / TEXTS_FILE).exists(),
    )


__all__ = ["CSV_LIMIT", "MonthWatch", "PublicityReport", "check_csv"]
