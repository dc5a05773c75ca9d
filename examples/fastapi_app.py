"""retold inside a FastAPI app: start a workflow from your own route, watch it live in the browser.

The app mounts retold's HTTP API at ``/retold`` (``retold.http.create_app``)
and opens the engine in its lifespan, so the same process serves pages and
runs workflows. ``POST /orders`` starts a ``shipment`` run; ``GET /`` is a
page whose ``EventSource`` shows the run's events as they are committed,
from ``/retold/runs/{id}/events`` (it resumes by itself after a dropped
connection, from the last event it saw).

Run it (needs ``pip install 'retold[http]' fastapi``)::

    python examples/fastapi_app.py --db shop.db --port 8000

then open http://127.0.0.1:8000/ and press the button (or open
http://127.0.0.1:8000/?order=42 to place order 42 and follow it). retold's
own dashboard, with every run, is at http://127.0.0.1:8000/retold/.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

import retold
import retold.http


@retold.activity(start_to_close=timedelta(seconds=10))
async def pack(order_id: str, item: str) -> str:
    """Pack one item (slowly enough to watch)."""
    await anyio.sleep(0.3)
    return f"{item} packed"


@retold.activity(start_to_close=timedelta(seconds=10))
async def ship(order_id: str) -> str:
    """Hand the parcel to the carrier."""
    await anyio.sleep(0.1)
    return f"tracking-{order_id}"


@retold.workflow(name="shipment")
async def shipment(order_id: str, items: list[str]) -> str:
    """Pack every item, wait for the courier (a durable timer), ship."""
    for item in items:
        await retold.execute(pack, order_id, item)
    await asyncio.sleep(0.5)
    return await retold.execute(ship, order_id)


class OrderIn(BaseModel):
    """The body of ``POST /orders``."""

    id: str
    items: list[str]


class OrderOut(BaseModel):
    """What ``POST /orders`` answers."""

    workflow_id: str
    events: str
    page: str


PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>retold: a shipment, live</title>
<style>body{font:15px system-ui;margin:2em} li{font-family:monospace} .final{font-weight:bold}</style></head>
<body>
<h1>Shipment</h1>
<button id="order">Place an order</button>
<p id="status">no run yet</p>
<ol id="events"></ol>
<script>
const TYPES = ["WorkflowStarted", "ActivityScheduled", "ActivityCompleted", "ActivityFailed",
  "ActivityTimedOut", "TimerStarted", "TimerFired", "TimerCancelled", "SignalReceived", "MarkerRecorded",
  "ChildWorkflowStarted", "ChildWorkflowCompleted", "ChildWorkflowFailed", "CancelRequested",
  "WorkflowTaskCompleted", "WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled",
  "WorkflowContinuedAsNew"];
const FINAL = ["WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled", "WorkflowContinuedAsNew"];

function follow(workflowId) {
  const list = document.getElementById("events");
  const status = document.getElementById("status");
  list.replaceChildren();
  status.textContent = "following " + workflowId;
  // Each event is one SSE message: id = its number, event = its type, data = its JSON.
  const source = new EventSource("/retold/runs/" + encodeURIComponent(workflowId) + "/events");
  const show = (message) => {
    const event = JSON.parse(message.data);
    const detail = event.activity || (event.result !== undefined ? JSON.stringify(event.result) : "");
    const item = document.createElement("li");
    item.dataset.type = message.type;
    item.textContent = "#" + message.lastEventId + " " + message.type + (detail ? " " + detail : "");
    list.append(item);
    if (FINAL.includes(message.type)) {
      item.className = "final";
      status.textContent = "finished: " + message.type;
      source.close();
    }
  };
  for (const type of TYPES) source.addEventListener(type, show);
}

async function order(id) {
  const answer = await fetch("/orders", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({id: id, items: ["book", "lamp", "mug"]})});
  follow((await answer.json()).workflow_id);
}

document.getElementById("order").onclick = () => order(String(Date.now()));
// ?run=ID follows a run; ?order=ID places order ID, then follows it.
const query = new URLSearchParams(location.search);
if (query.get("run")) follow(query.get("run"));
else if (query.get("order")) order(query.get("order"));
</script>
</body>
</html>
"""


def create(url: str) -> FastAPI:
    """The web app, with an engine on ``url`` that runs ``shipment``."""
    engine = retold.Engine(url, workflows=[shipment], activities=[pack, ship], poll_interval=0.1)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with engine:
            yield

    app = FastAPI(title="shop", lifespan=lifespan)
    app.mount("/retold", retold.http.create_app(engine, dashboard=True))  # the dashboard at /retold/

    @app.post("/orders", status_code=201)
    async def place_order(order: OrderIn) -> OrderOut:
        """Start a shipment from the app's own route, with the Python API."""
        run = await engine.start(shipment.with_options(id=f"order-{order.id}"), order.id, order.items)
        return OrderOut(
            workflow_id=run.workflow_id,
            events=f"/retold/runs/{run.workflow_id}/events",
            page=f"/?run={run.workflow_id}",
        )

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        """The page that follows a run."""
        return PAGE

    return app


def main() -> None:
    """Serve the app on uvicorn."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="shop.db", help="SQLite file for the runs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(create(f"sqlite:///{args.db}"), host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
