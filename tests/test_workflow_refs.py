"""Workflows started by name, by code that does not import them (issue 14, item 6)."""

from __future__ import annotations

from typing import Any

import pytest

import retold
from tests.conftest import EngineFactory

pytestmark = pytest.mark.anyio


@retold.workflow(name="resize")
async def resize(image: str, width: int) -> dict[str, Any]:
    return {"image": image, "width": width}


@retold.workflow
async def publish(image: str) -> list[Any]:
    resize_ref = retold.workflow_ref("resize")  # as code on another worker would: by name
    thumb = await retold.execute_child(resize_ref, image, 128)
    large = await retold.start_child(resize_ref.with_options(id=f"{retold.info().run_id}/large"), image, width=1280)
    detached = await retold.start_workflow(resize_ref.with_options(id=f"{image}-detached"), image, 64)
    return [thumb, large, len(detached)]


@retold.workflow
async def bad_input() -> Any:
    return await retold.execute_child(retold.workflow_ref("resize"), "img", "wide")


async def test_a_workflow_started_by_name_gets_its_arguments_as_its_code_declares(
    make_engine: EngineFactory, store_url: str
) -> None:
    async with make_engine([publish, resize], url=store_url) as engine:
        run = await engine.start(publish, "cat.png")
        assert await run.result(timeout=30) == [
            {"image": "cat.png", "width": 128}, {"image": "cat.png", "width": 1280}, 36]
        by_client = await engine.start(retold.workflow_ref("resize"), "dog.png", 32)
        assert await by_client.result(timeout=30) == {"image": "dog.png", "width": 32}


async def test_arguments_that_do_not_fit_fail_the_run_that_was_started_by_name(make_engine: EngineFactory) -> None:
    options = {"on_workflow_task_failure": "fail", "max_workflow_task_attempts": 1}
    async with make_engine([bad_input, resize], **options) as engine:
        run = await engine.start(bad_input)
        with pytest.raises(retold.WorkflowFailedError, match="resize"):
            await run.result(timeout=30)


def test_a_reference_has_no_code_to_run_and_needs_a_name() -> None:
    with pytest.raises(retold.ConfigurationError, match="needs a workflow's name"):
        retold.workflow_ref("")
    ref = retold.workflow_ref("resize")
    assert (ref.name, ref.with_options(id="x").id) == ("resize", "x")
    with pytest.raises(retold.ConfigurationError, match="a name only"):
        retold.Engine("memory://", workflows=[ref])
