"""One module per ``redlist`` subcommand.

Each module defines ``add_parser(subparsers)``, which adds the subcommand's parser
and sets its ``run`` default to a function ``(argparse.Namespace) -> int``.
``redlist.staff.cli`` lists the modules and runs the chosen one.
"""
