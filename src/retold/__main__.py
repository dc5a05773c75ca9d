"""``python -m retold``: the command line (for now, the demo)."""

from __future__ import annotations

import argparse
import sys

from .engine._engine import DEFAULT_URL

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the chosen command."""
    parser = argparse.ArgumentParser(prog="retold", description="Durable execution for Python.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a demo workflow on a SQLite file and print its history live")
    demo.add_argument("--url", default=DEFAULT_URL, help=f"store URL (default {DEFAULT_URL})")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo_main

        demo_main(args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
