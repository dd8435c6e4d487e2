"""``redlist key add|revoke``: register a staff member's key in the log, or revoke it."""

from __future__ import annotations

import argparse

from redlist.ledger import crypto
from redlist.ledger.errors import KeyFileError
from redlist.ledger.i18n import N_, _
from redlist.staff import entries, signing, values
from redlist.staff.commands.propose import add_propose_argument, propose_entry
from redlist.staff.nodeargs import add_node_argument, connect

DESCRIPTION = N_("""\
Register or revoke a staff member's public key. The staff list changes only with
the town's governance quorum: by default two admins, or an admin and the
council's quorum (--signer, and --cosigner for each further signer). While a new
log is being set up (before its first rule) the admin signs alone.

  redlist key add --pub wang.pem.pub --name "Wang Fang" --roles grid ...
  redlist key revoke --pub wang.pem.pub ...

--pub takes the key file (the FILE.pub from 'redlist keygen', a PEM public key,
or even the private key file) or the public key as 64 hex digits. A key that
'redlist keygen' could not have made (not a valid Ed25519 key of prime order)
is refused before anything is sent: the node would refuse it too.
Roles: admin, grid (awards), council (council rules, reversals), cashier
(redemptions). A revoked key can no longer sign; what it signed before stays.
To replace an admin's key: register the new key with the admin role, then
revoke the old one with the new key's signature. The last admin is never
revoked. With --propose the change waits in the node's review queue until the
council members approve it, one at a time ('redlist approve ID').
'redlist keys list' shows the staff list.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "key",
        help=_("register (add) or revoke a staff member's key"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title=_("actions"), metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help=_("register a key with its holder's name and roles"),
        description=_(
            "Register a staff member's public key with their name and roles, "
            "signed with the town's governance quorum. Roles: admin (keys and rules), grid "
            "(awards), council (council rules, reversals), cashier (redemptions)."
        ),
    )
    add.add_argument("--pub", required=True, metavar="FILE|HEX", help=_("the public key"))
    add.add_argument("--name", required=True, help=_('the holder, e.g. "Wang Fang (grid)"'))
    add.add_argument(
        "--roles",
        required=True,
        metavar="ROLES",
        help=_("comma-separated, from admin, grid, council, cashier; e.g. grid,council"),
    )
    add_node_argument(add)
    signing.add_signer_arguments(add)
    add_propose_argument(add)
    add.set_defaults(run=run_add)

    revoke = actions.add_parser(
        "revoke",
        help=_("revoke a key: it can no longer sign"),
        description=_(
            "Revoke a staff member's key, signed with the town's governance quorum. The key "
            "can no longer sign; the entries it signed before stay valid. A revoked key is "
            "never registered again: the staff member makes a new key with 'redlist keygen'."
        ),
    )
    revoke.add_argument("--pub", required=True, metavar="FILE|HEX", help=_("the public key"))
    add_node_argument(revoke)
    signing.add_signer_arguments(revoke)
    add_propose_argument(revoke)
    revoke.set_defaults(run=run_revoke)


def run_add(args: argparse.Namespace) -> int:
    pub = values.read_public_key(args.pub)
    roles = values.parse_roles(args.roles)
    draft = entries.key_add(entries.Stamp.fresh(), pub, args.name, roles)
    _check_registrable(args.pub, pub)
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        if args.propose:
            what = _("the registration of key {hex} of {name}").format(
                hex=crypto.key_id(pub).hex(), name=args.name
            )
            print(propose_entry(client, draft, signers, what))
            return 0
        body, seq = signing.submit_entry(client, draft, signers, action=_("the key registration"))
    print(
        _("Registered key {hex} of {name} with the role{value} {join} (entry {seq}).").format(
            hex=crypto.key_id(pub).hex(),
            name=body.name,
            value="s" if len(roles) > 1 else "",
            join=_(", ").join(_(values.ROLE_NAMES.get(role, role)) for role in roles),
            seq=seq,
        )
    )
    return 0


def _check_registrable(given: str, pub: bytes) -> None:
    """Refuse, before anything is sent, a key the node would refuse (DESIGN 3.2)."""
    problem = crypto.key_problem(pub)
    if problem is not None:
        raise KeyFileError(
            _(
                "{given} is not a usable staff key, the node would refuse it: {problem}. No key "
                "made by 'redlist keygen' is like this: ask its holder to make a new key with "
                "'redlist keygen' and send you the .pub file. Nothing was sent to the node."
            ).format(given=given, problem=problem)
        )


def run_revoke(args: argparse.Namespace) -> int:
    pub = values.read_public_key(args.pub)
    draft = entries.key_revoke(entries.Stamp.fresh(), pub)
    signers = signing.read_signers(args.signer, args.cosigner)
    with connect(args) as client:
        if args.propose:
            what = _("the revocation of key {hex}").format(hex=crypto.key_id(pub).hex())
            print(propose_entry(client, draft, signers, what))
            return 0
        _body, seq = signing.submit_entry(client, draft, signers, action=_("the key revocation"))
    print(
        _(
            "Revoked key {hex} (entry {seq}): it can no longer sign; the entries it signed "
            "before stay valid."
        ).format(hex=crypto.key_id(pub).hex(), seq=seq)
    )
    return 0
