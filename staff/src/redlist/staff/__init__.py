"""Staff tools: keys and signed entries submitted to a node."""
