"""The ledger core: format v1, crypto, Merkle, points semantics (pure), and the LMDB store.

The hot modules run compiled where ``make`` compiled them from exactly these sources
(``redlist.ledger.native``, docs/adr/0057); everything else, and everything where no
matching compiled copy exists, runs from the sources.
"""

import os as _os

from redlist.ledger import native as _native

__path__[:0] = _native.search_path(_os.path.dirname(_os.path.realpath(__file__)))
