"""``retold replay --pickle`` unpickles only the project's own history files, unless ``--trust``."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

import retold
from retold.cli import cli
from tests import shop


def pickled_history() -> bytes:
    """The history of a real run recorded with PickleCodec, as `retold history --json` writes it."""

    async def record() -> bytes:
        engine = retold.Engine("memory://", workflows=[shop.greet], activities=[shop.email],
                               codec=retold.PickleCodec())
        async with engine:
            run = await engine.start(shop.greet, "ada")
            await run.result(timeout=30)
            return (await run.history()).to_json()

    return anyio.run(record)


class Evil:
    """A payload that writes a file when it is unpickled: what a crafted history could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.marker.write_text, ("code from the history file ran",))


def crafted(history: bytes, marker: Path) -> bytes:
    data = json.loads(history)
    data["events"][0]["input_b64"] = base64.b64encode(pickle.dumps(Evil(marker))).decode()
    return json.dumps(data).encode()


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A project directory (the current one) and a directory outside it."""
    project, outside = tmp_path / "project", tmp_path / "downloads"
    project.mkdir()
    outside.mkdir()
    monkeypatch.chdir(project)
    return project, outside


def replay(*args: str) -> Result:
    return CliRunner().invoke(cli, ["replay", "--app", "tests.shop", "--pickle", *args])


def test_pickled_histories_from_outside_the_project_are_refused(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    marker = outside / "ran"
    (outside / "evil.json").write_bytes(crafted(pickled_history(), marker))
    (project / "link.json").symlink_to(outside / "evil.json")
    for target in (str(outside / "evil.json"), str(outside), "link.json", "../downloads/evil.json"):
        refused = replay(target)
        assert refused.exit_code == 1, refused.output
        assert "refusing to unpickle" in refused.output
        assert "outside the project directory" in refused.output
        assert "--trust" in refused.output
        assert not marker.exists(), target
    # Without --pickle nothing is unpickled, so nothing is refused: the payload stays bytes.
    plain = CliRunner().invoke(cli, ["replay", "--app", "tests.shop", str(outside / "evil.json")])
    assert "refusing" not in plain.output
    assert not marker.exists()
    # --trust is the user saying they know where the file came from: it is unpickled (and its code runs).
    trusted = replay("--trust", str(outside / "evil.json"))
    assert "refusing" not in trusted.output
    assert marker.read_text() == "code from the history file ran"


def test_the_projects_own_pickled_histories_replay(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    history = pickled_history()
    (project / "histories").mkdir()
    (project / "histories" / "greet.json").write_bytes(history)
    done = replay("histories")
    assert done.exit_code == 0, done.output
    assert "1 of 1 histories replay" in done.output
    (outside / "greet.json").write_bytes(history)
    assert replay(str(outside / "greet.json")).exit_code == 1
    trusted = replay("--trust", str(outside / "greet.json"))
    assert trusted.exit_code == 0, trusted.output


def test_help_says_that_unpickling_runs_code() -> None:
    text = " ".join(CliRunner().invoke(cli, ["replay", "--help"]).output.split())
    assert "Unpickling runs code" in text
    assert "--trust" in text
