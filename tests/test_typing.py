"""Call sites are typed: mypy reports exactly the errors tests/typing/check_types.py expects.

The file's good call sites must pass, and each bad one must fail with the
message in the ``# E:`` comment above it, which names the argument.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ROOT / "tests" / "typing" / "check_types.py"
IGNORE = re.compile(r"\s*# type: ignore\[[^\]]*\]")


def expected_errors(source: str) -> set[tuple[int, str]]:
    """(line, message) for each ``# E: message`` comment, on the next line that is code."""
    expected: set[tuple[int, str]] = set()
    pending: list[str] = []
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("# E: "):
            pending.append(stripped[len("# E: "):].removesuffix("  # noqa: E501"))
        elif stripped and not stripped.startswith("#"):
            expected.update((number, message) for message in pending)
            pending = []
    return expected


def test_mypy_reports_the_expected_errors_at_call_sites(tmp_path: Path) -> None:
    source = CHECKED.read_text()
    expected = expected_errors(source)
    assert len(expected) >= 14
    checked = tmp_path / "check_types.py"
    checked.write_text(IGNORE.sub("", source))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(checked)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    found = {
        (int(match[1]), match[2])
        for match in re.finditer(r"^.*check_types\.py:(\d+): error: (.*)$", done.stdout, re.MULTILINE)
    }
    assert found == expected, done.stdout + done.stderr
