"""An encrypting codec (a random nonce per payload) works end to end.

Replay compares the values a workflow asks for, not their ciphertext; the
CLI's replay, query and show take the application's codec.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import orjson
import pytest
from click.testing import CliRunner

import retold
from retold.cli import cli
from retold.history import events as ev
from retold.testing import replay
from tests.cli.conftest import cli_env
from tests.crypto_shop import FernetCodec, charge, codec, sealed

DONE = "shipped receipt-order-7-500 receipt-order-7-501"


def open_engine(db: Path) -> retold.Engine:
    return retold.Engine(f"sqlite:///{db}", workflows=[sealed], activities=[charge], codec=codec, poll_interval=0.05)


async def wait_for_status(run: retold.RunHandle[str], status: str) -> None:
    with anyio.fail_after(60):
        while await run.query("status") != status:
            await anyio.sleep(0.02)


async def leave_waiting(db: Path) -> retold.History:
    """Run ``sealed`` until it waits for its signal, then close the engine (a restart follows)."""
    async with open_engine(db) as engine:
        run = await engine.start(sealed.with_options(id="order-7"), "order-7", 500)
        await wait_for_status(run, "waiting")
        # An idempotent start: the same values, encrypted to other bytes, are the same request.
        again = await engine.start(sealed.with_options(id="order-7"), "order-7", 500)
        assert (again.created, again.run_id) == (False, run.run_id)
        with pytest.raises(retold.IdempotencyError):
            await engine.start(sealed.with_options(id="order-7"), "order-7", 501)
        return await run.history()


def test_the_codec_encrypts_with_a_random_nonce() -> None:
    assert codec.encode(["order-7", 500]) != codec.encode(["order-7", 500])
    assert b"order-7" not in codec.encode(["order-7", 500])
    assert codec.decode(codec.encode(["order-7", 500])) == ["order-7", 500]


@pytest.mark.anyio
async def test_a_run_with_an_encrypting_codec_resumes_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    recorded = await leave_waiting(db)
    scheduled = [e for e in recorded if isinstance(e, ev.ActivityScheduled)]
    assert len(scheduled) == 1
    assert b"order-7" not in scheduled[0].input
    async with open_engine(db) as engine:  # a new process: the run is replayed from its history
        run = engine.get_handle("order-7")
        assert await run.query("status") == "waiting"
        await run.signal("ship")
        assert await run.result(timeout=60) == DONE
        history = await run.history()
    assert [e.type for e in history].count("ActivityCompleted") == 2
    assert replay(sealed, history, codec=FernetCodec()).finished


def test_the_cli_reads_payloads_with_the_apps_codec(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    anyio.run(leave_waiting, db)
    runner = CliRunner()
    env = cli_env(db)

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        result = runner.invoke(cli, list(args), prog_name="retold", env=env)
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    # The codec from the --app module, or named with --codec.
    for codec_args in (["--app", "tests.crypto_shop"], ["--app", "tests.crypto_shop:sealed",
                                                        "--codec", "tests.crypto_shop:codec"]):
        done = invoke("replay", *codec_args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 of 1 histories replay against the current code" in done.stdout
        done = invoke("query", "order-7", "status", *codec_args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert orjson.loads(done.stdout) == "waiting"
    # A class is made into a codec.
    done = invoke("query", "order-7", "status", "--app", "tests.crypto_shop:sealed",
                  "--codec", "tests.crypto_shop:FernetCodec")
    assert orjson.loads(done.stdout) == "waiting"

    done = invoke("show", "order-7", "--codec", "tests.crypto_shop:codec")
    assert done.returncode == 0, done.stderr
    assert 'input=["order-7",500]' in done.stdout
    assert 'result="receipt-order-7-500"' in done.stdout
    done = invoke("show", "order-7", "--app", "tests.crypto_shop")
    assert 'input=["order-7",500]' in done.stdout

    # A start through the CLI encrypts with the app's codec too: the worker reads it.
    done = invoke("start", "sealed", "--app", "tests.crypto_shop", "--input", '["order-8", 5]', "--id", "order-8")
    assert done.returncode == 0, done.stderr

    async def check_started() -> None:
        async with open_engine(db) as engine:
            started = (await engine.get_handle("order-8").history())[0]
            assert isinstance(started, ev.WorkflowStarted)
            assert b"order-8" not in started.input
            assert codec.decode(started.input) == ["order-8", 5]

    anyio.run(check_started)

    # Mistakes: one line, exit 1.
    for args, message in [
        (["query", "order-7", "status", "--app", "tests.crypto_shop:sealed"], "not valid JSON"),  # JSON can't read it
        (["query", "order-7", "status", "--app", "tests.crypto_shop:sealed"], "name it with --codec MODULE:ATTR"),
        (["show", "order-7", "--codec", "tests.crypto_shop"], "expected MODULE:ATTR"),
        (["show", "order-7", "--codec", "tests.crypto_shop:KEY"], "is a bytes, not a codec"),
        (["replay", "--app", "tests.crypto_shop", "--pickle", "--codec", "tests.crypto_shop:codec"],
         "give --pickle or --codec, not both"),
    ]:
        done = invoke(*args)
        assert done.returncode in (1, 2), done.stdout
        assert message in done.stderr + done.stdout, done.stderr + done.stdout


def test_replay_without_the_codec_says_it_cannot_read_the_payloads(tmp_path: Path) -> None:
    db = tmp_path / "retold.db"
    anyio.run(leave_waiting, db)
    result = CliRunner().invoke(cli, ["replay", "--app", "tests.crypto_shop:sealed"], env=cli_env(db))
    assert result.exit_code == 1
    assert "payload is not valid JSON" in result.stdout
