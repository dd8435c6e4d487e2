"""The town node: gRPC serving, replication and export."""
