"""Run and workflow ids: random version-4 UUIDs, read from os.urandom a block at a time."""

from __future__ import annotations

import os
import uuid

import pytest

from retold._ids import uuid4_str


def test_ids_are_version_4_uuids_as_str_formats_them() -> None:
    ids = [uuid4_str() for _ in range(1000)]  # several blocks of the pool
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_its_parents_pool() -> None:
    uuid4_str()  # the parent has a pool with unused bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        try:
            os.write(write, uuid4_str().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child
    assert child != uuid4_str()
