"""``python -m retold``: the ``retold`` command line (see ``retold --help``)."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
