"""``make demo``: one month of a village's credit points, on a real node, end to end.

Run as ``python -m redlist.demo [--dir DIR]`` (default ``./demo-data``; a
directory the demo made before is wiped first, any other is refused). It walks
through what a town does, with the real commands, printing each command line
and explaining each step in plain words:

1. the staff members create their signing keys (``redlist keygen``);
2. the town creates its log (``redlist-node init``) and starts its node, a real
   ``redlist-node serve`` process on ``127.0.0.1`` with its LMDB data directory;
3. the admin registers the staff keys (``redlist key add``) and loads the rule
   catalogue with the council (``redlist rules load --csv``);
4. the town office imports its resident register (``redlist-node residents
   import``), so that the staff tools check every account against it;
5. two grid workers submit last month's spreadsheets, 300 rows for 60
   residents (``redlist submit --csv``); the first save, with one account
   mistyped, is refused before anything is sent, naming the row and the account;
6. the council records awards under council rules (``redlist award --cosigner``),
   after the node refuses one with a single signature;
7. a resident's declaration goes through the council's review queue
   (``redlist propose``, ``review list``, ``approve``);
8. a resident spends points at the points supermarket (``redlist redeem``);
9. a resident objects to a deduction (``redlist objection``), the council
   reverses it (``redlist reverse``), and the account shows it (``redlist account``);
10. an auditor verifies the live node's log with the town's public key only
    (``redlist-node export --full`` and ``redlist-verify``), and the demo checks
    that the verifier's recomputed balances are the node's;
11. the town office previews the month's publicity (``redlist-node export --month``);
12. the node is stopped with SIGTERM and must exit 0.

Steps 13 on (:mod:`redlist.demo.federation`): two neighbouring towns start logs of
their own, and the three witness and mirror each other and catch a split view.

The story comes from a fixed seed; only the keys differ between runs. Exit
status: 0 when every step worked, 1 when a step failed (the node is stopped in
any case), 2 when the demo directory cannot be used.
"""
