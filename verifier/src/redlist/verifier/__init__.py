"""The independent auditor: re-verifies everything, trusts nothing a node says."""
