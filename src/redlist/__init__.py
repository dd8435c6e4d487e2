"""redlist: a verifiable ledger for community credit-point programmes."""

__version__ = "0.1.0"
