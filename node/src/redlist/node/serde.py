"""Every conversion between the wire messages (``redlist.v1``) and the node's values.

The servicer never builds or reads a message field itself; it calls these. Leaves,
checkpoints and proof hashes travel as the exact bytes and texts of DESIGN 3, so
the conversions only copy them: nothing is re-encoded on the way out (a
``SignedCheckpoint`` goes out as the note it was signed as).

Only the server's direction lives here. Reading answers back into values is the
clients' side: ``redlist.proto.client`` (shared by the staff client) does it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redlist.ledger.errors import TextError
from redlist.ledger.log import AppendResult
from redlist.ledger.lookups import MonthKey
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.state import KeyRecord, RuleRecord
from redlist.ledger.statement import AccountStatement, StatementEntry
from redlist.ledger.textcommit import EntryText
from redlist.v1 import ledger_pb2 as pb


def envelopes_from_request(request: pb.SubmitRequest) -> list[bytes]:
    """The envelopes of a Submit request, in request order."""
    return list(request.envelopes)


def texts_from_request(request: pb.SubmitRequest) -> list[dict[str, EntryText]]:
    """The texts of a Submit request, one map per envelope (empty: the request sent none).

    ``TextError`` when their count is not the envelopes' or a text is malformed (naming
    the envelope and the field)."""
    if not request.texts:
        return []
    if len(request.texts) != len(request.envelopes):
        raise TextError(
            f"the request sends texts for {len(request.texts)} envelopes but has "
            f"{len(request.envelopes)} envelopes: send one entry of texts per envelope "
            "(empty for one without texts), or none at all"
        )
    batch: list[dict[str, EntryText]] = []
    for index, entry in enumerate(request.texts):
        texts: dict[str, EntryText] = {}
        for name, value in entry.fields.items():
            try:
                texts[name] = EntryText(value.text, value.salt)
            except TextError as error:
                raise TextError(
                    f"the '{name}' text: {error.message}", field=name, index=index
                ) from None
        batch.append(texts)
    return batch


def submit_response(result: AppendResult, served: SignedCheckpoint) -> pb.SubmitResponse:
    """The answer to a Submit; ``served`` is its checkpoint as the node serves it."""
    return pb.SubmitResponse(seqs=result.seqs, checkpoint=served.note)


def checkpoint_response(checkpoint: SignedCheckpoint) -> pb.GetCheckpointResponse:
    return pb.GetCheckpointResponse(checkpoint=checkpoint.note)


def leaf_data(seq: int, leaf: bytes) -> pb.LeafData:
    return pb.LeafData(seq=seq, leaf=leaf)


def leaf_batch(start: int, leaves: Sequence[bytes]) -> pb.LeafBatch:
    return pb.LeafBatch(start=start, leaves=leaves)


def proof(hashes: Sequence[bytes], tree_size: int) -> pb.Proof:
    return pb.Proof(hashes=hashes, tree_size=tree_size)


def follow_leaf(seq: int, leaf: bytes) -> pb.FollowEvent:
    return pb.FollowEvent(leaf=leaf_data(seq, leaf))


def follow_batch(start: int, leaves: Sequence[bytes]) -> pb.FollowEvent:
    return pb.FollowEvent(leaves=leaf_batch(start, leaves))


def follow_checkpoint(checkpoint: SignedCheckpoint) -> pb.FollowEvent:
    return pb.FollowEvent(checkpoint=checkpoint.note)


def account_message(statement: AccountStatement) -> pb.Account:
    return pb.Account(
        account=statement.account,
        score=statement.score,
        spendable=statement.spendable,
        redeemed=statement.redeemed,
        earned=statement.earned,
        grade=statement.grade,
        entries=[account_entry_message(entry) for entry in statement.entries],
        checkpoint=statement.checkpoint,
        next_page_token=statement.next_page_token,
        texts_withheld=statement.texts_withheld,
    )


def account_entry_message(entry: StatementEntry) -> pb.AccountEntry:
    return pb.AccountEntry(
        seq=entry.seq,
        time=entry.time,
        kind=entry.kind,
        rule=entry.rule,
        points=entry.points,
        # The wire form has no "absent": 0 means not reversed (seq 0 is the genesis).
        reversed=entry.reversed_by is not None,
        reversed_by=entry.reversed_by or 0,
        qty=entry.qty,
        note=entry.note,
        item=entry.item,
        at=entry.at,
        has_text=entry.text_commitment is not None,
        date=entry.date,
        declared=entry.declared,
    )


def found_entries(
    size: int, found: dict[bytes, int], ids: Sequence[bytes]
) -> pb.FindEntriesResponse:
    """The ids of the request the log holds, in request order, with their seqs."""
    return pb.FindEntriesResponse(
        found=[
            pb.FoundEntry(id=entry_id, seq=found[entry_id]) for entry_id in ids if entry_id in found
        ],
        tree_size=size,
    )


def rules_message(
    size: int, rules: Sequence[RuleRecord], decided: Mapping[int, str] | None = None
) -> pb.Rules:
    """The catalogue; ``decided``: the text naming the meeting that decided each rule, by
    the seq of the entry that set it (what the node holds)."""
    decided = decided or {}
    return pb.Rules(
        rules=[
            pb.Rule(
                code=rule.code,
                title=rule.title,
                module=rule.module,
                points=rule.points,
                council=rule.council,
                active=rule.active,
                seq=rule.seq,
                # The wire has no "absent": 0 means no limit (a cap is at least 1).
                max_qty=rule.max_qty or 0,
                max_per_month=rule.max_per_month or 0,
                decided=decided.get(rule.seq, ""),
            )
            for rule in rules
        ],
        tree_size=size,
    )


def keys_message(size: int, keys: Sequence[KeyRecord]) -> pb.Keys:
    return pb.Keys(
        keys=[
            pb.StaffKey(
                key_id=key.key_id,
                public_key=key.public,
                name=key.name,
                roles=sorted(key.roles),
                added=key.added,
                revoked=key.revoked,
            )
            for key in keys
        ],
        tree_size=size,
    )


def month_keys(request: pb.GetMonthCountsRequest) -> list[MonthKey]:
    return [MonthKey(key.account, key.rule, key.month) for key in request.keys]


def month_counts(size: int, counts: Sequence[int]) -> pb.MonthCounts:
    return pb.MonthCounts(qty=counts, tree_size=size)
