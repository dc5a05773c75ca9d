"""Store tests: one contract suite for every store."""
