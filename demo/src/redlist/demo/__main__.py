"""``python -m redlist.demo``: see :mod:`redlist.demo`."""

import sys

from redlist.demo.cli import main

sys.exit(main())
