"""``make demo``: one month of a village's credit points, on a real node, end to end.

Run as ``python -m redlist.demo [--dir DIR]`` (default ``./demo-data``; a
directory the demo made before is wiped first, any other is refused). It walks
through what a town does, with the real commands, printing each command line
and explaining each step in plain words:

1. seven staff members create their signing keys (``redlist keygen``);
2. the town creates its log (``redlist-node init``) and starts its node, a real
   ``redlist-node serve`` process on ``127.0.0.1`` with its LMDB data directory;
3. the admin registers the staff keys (``redlist key add``) and loads the rule
   catalogue (``redlist rules load --csv``);
4. two grid workers submit last month's spreadsheets, 300 rows for 60
   residents (``redlist submit --csv``);
5. the council records awards under council rules (``redlist award --cosigner``),
   after the node refuses one with a single signature;
6. a resident spends points at the points supermarket (``redlist redeem``);
7. a resident objects to a deduction (``redlist objection``), the council
   reverses it (``redlist reverse``), and the account shows it (``redlist account``);
8. an auditor verifies the live node's log with the town's public key only
   (``redlist-node export --full`` and ``redlist-verify``), and the demo checks
   that the verifier's recomputed balances are the node's;
9. the node is stopped with SIGTERM and must exit 0.

The story comes from a fixed seed; only the keys differ between runs. Exit
status: 0 when every step worked, 1 when a step failed (the node is stopped in
any case), 2 when the demo directory cannot be used.
"""
