"""Which rows of a sheet the log already holds: asked by entry id, proved, and read back.

The node is asked for the seqs of the rows' ids (``FindEntries``); each answer is then
proved as any recorded entry is (``LedgerClient.proved_leaves``: the leaf at that seq,
with an inclusion proof to a checkpoint signed by the town's log key) and read: the
entry there must carry the row's id and say what the row says (``sheet.same_deed``).
One that does not is a conflict, reported, never counted as recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from redlist.ledger.entry import AnyBody, Envelope, Leaf, decode_body
from redlist.ledger.errors import ConflictError, FormatError
from redlist.ledger.i18n import _
from redlist.proto.errors import WireError
from redlist.staff.client import LedgerClient
from redlist.staff.sheet import SheetRow, same_deed


@dataclass
class Recorded:
    """Rows found in the log: ``present`` (index into the rows → seq) say what the row
    says; ``conflicting`` (index → the entry found) do not."""

    present: dict[int, int] = field(default_factory=dict)
    conflicting: dict[int, tuple[int, AnyBody | None]] = field(default_factory=dict)


def find_recorded(
    client: LedgerClient, rows: Sequence[SheetRow], indexes: Sequence[int] | None = None
) -> Recorded:
    """The rows (all, or those at ``indexes``) whose ids the log holds, proved and read."""
    wanted = list(range(len(rows))) if indexes is None else list(indexes)
    by_id = {rows[index].entry_id: index for index in wanted}
    found = client.find_entries(list(by_id))
    result = Recorded()
    if not found:
        return result
    checkpoint = client.latest()
    beyond = [seq for seq in found.values() if seq >= checkpoint.size]
    if beyond:
        raise WireError(
            _(
                "the node says entry {beyond} holds a row of the sheet, but its log has {size} "
                "entries"
            ).format(beyond=beyond[0], size=checkpoint.size)
        )
    leaves = client.proved_leaves(found.values(), checkpoint)
    for entry_id, seq in found.items():
        index = by_id.get(entry_id)
        if index is None:
            raise WireError(_("the node answered about an entry id that was not asked about"))
        body = _body(leaves[seq])
        if body is not None and same_deed(rows[index], body):
            result.present[index] = seq
        else:
            result.conflicting[index] = (seq, body)
    return result


def conflict_error(name: str, rows: Sequence[SheetRow], recorded: Recorded) -> ConflictError:
    """The refusal of a sheet some of whose ids the log holds for other entries."""
    lines = []
    for index, (seq, body) in sorted(recorded.conflicting.items())[:20]:
        row = rows[index]
        lines.append(
            _("row {row} ({account}, rule {rule}): entry {seq} has its id but says {what}").format(
                row=row.row, account=row.deed.account, rule=row.deed.rule, seq=seq, what=_what(body)
            )
        )
    more = len(recorded.conflicting) - len(lines)
    if more:
        lines.append(_("... and {more} more").format(more=more))
    if len(recorded.conflicting) == 1:
        (index,) = recorded.conflicting
        what = _("an entry under the id of row {row} that does not say what the row says").format(
            row=rows[index].row
        )
    else:
        count = len(recorded.conflicting)
        what = _(
            "entries under the ids of {count} rows that do not say what those rows say"
        ).format(count=count)
    return ConflictError(
        _(
            "{name}: the log holds {what}; nothing was submitted. This should never happen: "
            "tell the town admin, and keep the file:\n"
            "  "
        ).format(name=name, what=what)
        + "\n  ".join(lines)
    )


def _body(leaf: bytes) -> AnyBody | None:
    try:
        return decode_body(Envelope.from_bytes(Leaf.from_bytes(leaf).envelope).body)
    except FormatError:
        return None


def _what(body: AnyBody | None) -> str:
    if body is None:
        return _("something that cannot be read")
    if body.kind != "award":
        return _("a {kind} entry").format(kind=body.kind)
    return _("an award to {getattr} under rule {getattr2} with other details").format(
        getattr=getattr(body, "account", "?"), getattr2=getattr(body, "rule", "?")
    )
