"""``redlist-node export``: write a bundle that auditors verify offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from redlist.ledger.errors import FormatError
from redlist.ledger.log import Log
from redlist.node.commands.serve import check_data_dir
from redlist.node.cosigning import read_cosigned
from redlist.node.export import export_full

DESCRIPTION = """\
Write the log as a bundle directory (manifest.json, checkpoint, leaves) that
anyone can check offline with 'redlist-verify bundle'.

Safe while the node is serving: the data directory is opened read-only and the
bundle ends at the latest signed checkpoint, with the witnesses' cosignatures
when the node collected them for that checkpoint ('serve --ask-witness'). The
bundle is assembled next to --out and appears there only once it is complete;
--out must be new or empty."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a bundle for auditors",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help="the node's data directory"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="the bundle directory to create (new or empty)",
    )
    # One scope so far; the group (not required: run() says what is missing in
    # words) is where --month will join it.
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--full", action="store_true", help="the whole log, from entry 0 to the latest checkpoint"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.full:
        raise FormatError("say what to export: --full (the whole log, up to its latest checkpoint)")
    check_data_dir(args.data)
    with Log.open(args.data, readonly=True) as log:
        cosigned = read_cosigned(args.data, log.verifier_key)
        result = export_full(log, args.out, cosigned)
        verifier_key = log.verifier_key.encode()
    manifest, checkpoint = result.manifest, result.checkpoint
    print(
        f"exported {_entries(manifest.count)} (seq {manifest.start} to {manifest.end - 1}) "
        f"of log {manifest.origin} to {result.path}"
    )
    print(f"checkpoint: tree size {checkpoint.size}, root hash {checkpoint.root.hex()}")
    cosigners = [signature.name for signature in checkpoint.signatures[1:]]
    if cosigners:
        print(f"cosigned by: {', '.join(cosigners)}")
    print("anyone can check it with:")
    print(f"  redlist-verify bundle {result.path} --log-key {verifier_key}")
    return 0


def _entries(count: int) -> str:
    return "1 entry" if count == 1 else f"{count} entries"
