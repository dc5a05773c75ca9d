"""The next version of ``tests.shop``'s greet workflow: a change that breaks replay."""

from __future__ import annotations

from datetime import timedelta

import retold
from tests.shop import email


@retold.workflow(name="greet")
async def greet(name: str) -> str:
    """Greet someone, by email, after a pause (new: the pause)."""
    await retold.sleep(timedelta(seconds=1))
    await retold.execute(email, name, "hello")
    return f"hello, {name}"
