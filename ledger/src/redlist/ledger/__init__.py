"""The ledger core: format v1, crypto, Merkle, points semantics (pure), and the LMDB store."""
