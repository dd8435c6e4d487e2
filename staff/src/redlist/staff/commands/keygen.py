"""``redlist keygen``: create a staff member's signing key."""

from __future__ import annotations

import argparse
from pathlib import Path

from redlist.ledger import keyfile
from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import NoteError
from redlist.ledger.i18n import N_, _
from redlist.ledger.note.keys import VerifierKey

DESCRIPTION = N_("""\
Create a new Ed25519 signing key for one staff member.

Two files are written:
  FILE      the private key (PKCS#8 PEM, readable by you only, mode 0600).
            Keep it secret: whoever holds it can sign entries in your name.
  FILE.pub  the public part with your name, the public key in hex and the key
            id written at the top. Give this file to the town's admin, who
            registers it in the log (redlist key add --pub FILE.pub ...).

PEM has no field for a name, so the name is kept in FILE.pub only; the name
that counts is the one the admin registers in the log.
When NAME is also a valid note key name (no spaces or '+', as for a witness's,
a mirror's or an auditor's key, e.g. "rushan-witness"), the key strings other
towns list are printed too: the cosigner key string (C2SP tlog-cosignature,
type 0x04) that '--ask-witness ADDR VKEY' and witness policies name, and the
signer key string (type 0x01) that '--auditor-key' names.

Existing files are never overwritten unless --force is given.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help=_("create a new signing key (private key file and FILE.pub)"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE",
        help=_("where to write the private key (FILE.pub is written next to it)"),
    )
    parser.add_argument(
        "--name", required=True, help=_('the holder, e.g. "Wang Fang (grid, Dongguan village)"')
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=_("overwrite existing files (the old key is destroyed)"),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    key = SigningKey.generate()
    name = keyfile.check_name(args.name)  # as the files and the log hold it
    files = keyfile.write_key_files(args.out, key, name, force=args.force)
    print(_("name:        {check_name}").format(check_name=name))
    print(_("public key:  {hex}").format(hex=key.public.hex()))
    print(_("key id:      {hex}").format(hex=key.key_id.hex()))
    print(_("private key: {private} (keep it secret)").format(private=files.private))
    print(
        _("public file: {public} (a staff member's key: give it to the town's admin)").format(
            public=files.public
        )
    )
    try:
        cosigner = VerifierKey.for_cosignature(name, key.public)
        signer = VerifierKey.for_ed25519(name, key.public)
    except NoteError:
        return 0  # a staff member's name: no note key strings
    print(_("as a witness or mirror: {encode}").format(encode=cosigner.encode()))
    print(_("as an auditor:          {encode}").format(encode=signer.encode()))
    return 0
