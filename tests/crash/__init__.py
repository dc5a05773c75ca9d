"""Crash-recovery tests: real child processes, real SIGKILL, one SQLite file."""
