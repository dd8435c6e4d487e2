"""``redlist-node export``: write a bundle that auditors verify offline."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from redlist.ledger import i18n, months
from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import N_, _, in_words, ngettext
from redlist.ledger.log import Log
from redlist.ledger.publicity import encode_csv
from redlist.ledger.registerstore import RegisterStore
from redlist.ledger.residents import KIND_LABELS
from redlist.ledger.text import text_refusal
from redlist.ledger.wording import WordedError
from redlist.node.commands.serve import check_data_dir
from redlist.node.cosigning import read_cosigned
from redlist.node.export import ExportResult, check_texts_destination, export_full, export_month
from redlist.node.publication import Publication, publish, read_publication
from redlist.node.publicity import compose, derive, month_range
from redlist.node.publicityhtml import render
from redlist.node.texts import NodeTexts

#: Where residents object, unless --objections-to says otherwise.
DEFAULT_OBJECTIONS_TO = "本村村民委员会"
#: The longest town name a notice is headed with (``--town``).
TOWN_NAME_MAX = 40

DESCRIPTION = N_("""\
Write the log as a bundle directory (manifest.json, checkpoint, leaves) that
anyone can check offline with 'redlist-verify bundle'.

Safe while the node is serving: the data directory is opened read-only and the
bundle ends at the latest signed checkpoint, with the witnesses' cosignatures
when the node collected them for that checkpoint ('serve --ask-witness'). The
bundle is assembled next to --out and appears there only once it is complete;
--out must be new or empty.

--month YYYY-MM writes that month's bundle (the entries the node recorded in the
month, in the town's time zone) with publicity.csv and publicity.html for the
village board: names masked, residents without a legal basis in the register
left out. The first export of a month is its publication: the objection window
runs publicity_days from then, and later exports of the month keep that date.

--month YYYY-MM --draft previews a month, also one not over yet (up to the latest
checkpoint): the same files, the notice marked 草稿 (draft, not to be posted). A
draft is never a publication: it starts no objection window and records nothing.

--texts FILE also writes the free texts the node holds for the bundle's entries
(notes, items, objections, reasons), with their salts, to FILE, so that
'redlist-verify bundle --texts FILE' can check them against the commitments in the
log (with --month, also the notes shown in publicity.csv). Personal data: written
only when asked, to a new file outside --out (the bundle is public), readable by its
owner only, and for those entitled to it; never post it with the publicity.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help=_("write a bundle for auditors"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help=_("the node's data directory")
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help=_("the bundle directory to create (new or empty)"),
    )
    # Not required: run() says what is missing in words.
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--full",
        action="store_true",
        help=_("the whole log, from entry 0 to the latest checkpoint"),
    )
    scope.add_argument(
        "--month",
        metavar="YYYY-MM",
        help=_("one month's entries, with its publicity (publicity.csv, publicity.html)"),
    )
    parser.add_argument(
        "--draft",
        action="store_true",
        help=_("with --month: a preview (also of a month not over yet); not a publication"),
    )
    parser.add_argument(
        "--objections-to",
        metavar="TEXT",
        default=DEFAULT_OBJECTIONS_TO,
        help=_(
            "where residents object, as the notice says (default: {DEFAULT_OBJECTIONS_TO})"
        ).format(DEFAULT_OBJECTIONS_TO=DEFAULT_OBJECTIONS_TO),
    )
    parser.add_argument(
        "--town",
        metavar="NAME",
        default="",
        help=_("with --month: the town's name, heading the notice (e.g. 东港镇)"),
    )
    parser.add_argument(
        "--texts",
        type=Path,
        metavar="FILE",
        help=_(
            "also write the entries' free texts (personal data) to FILE, a new file outside --out"
        ),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.full and args.month is None:
        raise FormatError(
            _(
                "say what to export: --full (the whole log, up to its latest checkpoint) or "
                "--month YYYY-MM (one month, with its publicity)"
            )
        )
    if args.draft and args.month is None:
        raise FormatError(_("--draft previews a month's publicity: give --month YYYY-MM with it"))
    if args.town and args.month is None:
        raise FormatError(_("--town names the town on a month's notice: give --month YYYY-MM"))
    check_data_dir(args.data)
    texts = args.data if args.texts is not None else None
    check_texts_destination(args.out, texts, args.texts)  # before anything is read or recorded
    if args.month is not None:
        return _run_month(args)
    with Log.open(args.data, readonly=True) as log:
        cosigned = read_cosigned(args.data, log.verifier_key)
        result = export_full(log, args.out, cosigned, texts=texts, texts_out=args.texts)
        verifier_key = log.verifier_key.encode()
    _report(result, verifier_key)
    return 0


def _decided_by_code(log: Log, texts: NodeTexts) -> dict[str, str]:
    """The meeting that voted each rule of the catalogue, where its text is kept (public
    like the catalogue: ``redlist rules list`` shows it too)."""
    _size, rules = log.rules()
    by_seq = texts.decided_texts([rule.seq for rule in rules])
    return {rule.code: by_seq[rule.seq] for rule in rules if rule.seq in by_seq}


def _run_month(args: argparse.Namespace) -> int:
    month = args.month
    months.parse_month(month)
    objections_to = " ".join(args.objections_to.split())
    if not objections_to:
        raise FormatError(_("--objections-to must say where residents object"))
    town = " ".join(args.town.split())
    refusal = text_refusal(town)
    if refusal is None and len(town) > TOWN_NAME_MAX:
        refusal = WordedError(N_("is longer than {most} characters"), most=TOWN_NAME_MAX)
    if refusal is not None:
        raise FormatError(_("--town {problem}").format(problem=in_words(refusal)))
    now_ms = time.time_ns() // 1_000_000
    with Log.open(args.data, readonly=True) as log:
        cosigned = read_cosigned(args.data, log.verifier_key)
        verifier_key = log.verifier_key.encode()
        found = month_range(log, month, now_ms, draft=args.draft)
        earlier = None if args.draft else read_publication(args.data, month)
        record = Publication(month, found.start, found.end, now_ms)
        if earlier is not None:
            record = Publication(month, found.start, found.end, earlier.published_ms)
        derived = derive(log, found)
        with RegisterStore.open(args.data) as register:
            residents = register.residents()
        publicity = compose(
            log.origin,
            found,
            derived,
            residents,
            published_ms=record.published_ms,
            objections_to=objections_to,
            draft=args.draft,
            texts=NodeTexts(args.data, log).texts_for,
            town=town,
        )
        del residents  # the names are needed no longer than this
        csv_bytes = encode_csv(
            (item.entry, item.village, item.masked, item.note, KIND_LABELS[item.kind])
            for item in publicity.listed
        )
        html = render(
            publicity,
            bundle_name=args.out.name,
            log_key=verifier_key,
            decided=_decided_by_code(log, NodeTexts(args.data, log)),
        )
        if earlier is not None:
            publish(args.data, record)  # refuses a month whose range has changed
        result = export_month(
            log,
            args.out,
            publicity,
            csv_bytes,
            html,
            cosigned,
            texts=args.data if args.texts is not None else None,
            texts_out=args.texts,
        )
    if not args.draft:
        publish(args.data, record)
    _report(result, verifier_key, month=True)
    shown = len({item.entry.account for item in publicity.listed})
    print(
        _(
            "publicity of {month}: {count} of {count2} listed; {count3} left out (no legal "
            "basis for publication in the register)"
        ).format(
            month=month,
            count=_entries(len(publicity.listed)),
            count2=_residents(shown),
            count3=_residents(publicity.left_out),
        )
    )
    if args.draft:
        print(_("draft: a preview marked 草稿, not a publication; no objection window started"))
    else:
        when = _("published today") if earlier is None else _("first published earlier")
        print(
            _("objections until {isoformat} ({when}) to {objections_to}").format(
                isoformat=i18n.prose_date(publicity.deadline),
                when=when,
                objections_to=objections_to,
            )
        )
    print(_("notice for the board: {value}").format(value=result.path / "publicity.html"))
    print(_("list (Excel):         {value}").format(value=result.path / "publicity.csv"))
    return 0


def _report(result: ExportResult, verifier_key: str, *, month: bool = False) -> None:
    manifest, checkpoint = result.manifest, result.checkpoint
    if manifest.count == 0:  # a month without entries: no seq "from 471 to 470"
        print(
            _("exported no entries (there are none) of log {origin} to {path}").format(
                origin=manifest.origin, path=result.path
            )
        )
    else:
        print(
            _("exported {entries} (seq {start} to {value}) of log {origin} to {path}").format(
                entries=_entries(manifest.count),
                start=manifest.start,
                value=manifest.end - 1,
                origin=manifest.origin,
                path=result.path,
            )
        )
    print(
        _("checkpoint: tree size {size}, root hash {hex}").format(
            size=checkpoint.size, hex=checkpoint.root.hex()
        )
    )
    cosigners = [signature.name for signature in checkpoint.signatures[1:]]
    if cosigners:
        print(_("cosigned by: {join}").format(join=_(", ").join(cosigners)))
    if result.texts is not None:
        print(
            _(
                "free texts: {texts} of them in {value} (personal data: every note unmasked; "
                "never publish it)"
            ).format(texts=result.texts, value=result.texts_path)
        )
    print(_("anyone can check it with:"))
    if month:
        print(
            _(
                "  redlist-verify bundle {path} --log-key {verifier_key} --state STATE-FILE "
                "--publicity"
            ).format(path=result.path, verifier_key=verifier_key)
        )
        print(
            _(
                "  (each month in turn with the same STATE-FILE, from the first month or a full "
                "bundle)"
            )
        )
    else:
        print(
            _("  redlist-verify bundle {path} --log-key {verifier_key}").format(
                path=result.path, verifier_key=verifier_key
            )
        )


def _entries(count: int) -> str:
    return ngettext("{count} entry", "{count} entries", count).format(count=count)


def _residents(count: int) -> str:
    return ngettext("{count} resident", "{count} residents", count).format(count=count)
