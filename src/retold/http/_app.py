"""The ASGI app: routes over the public client API, nothing else."""

from __future__ import annotations

import hashlib
import typing
import uuid
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import orjson
from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import retold

from ..authoring import describe_registry
from ._auth import BearerAuth
from ._inputs import (
    MAX_EVENT_ID,
    attribute_values,
    checked_text,
    event_id_header,
    idempotency_key,
    int_param,
    path_id,
    path_name,
    text_param,
    time_param,
)
from ._openapi import MAX_AGE, STATUSES, openapi_document
from ._problems import (
    JSONResponse,
    ProblemError,
    expect_object,
    handle_http_exception,
    handle_problem,
    handle_retold_error,
    handle_unexpected,
    parse_body_json,
    read_json,
)
from ._sse import EventStreamResponse
from ._ui import dashboard_routes

__all__ = ["DEFAULT_MAX_BODY_SIZE", "create_app"]

ID_REUSE_POLICIES: tuple[str, ...] = typing.get_args(retold.IdReusePolicy)
MAX_TIME_LIMIT = 100 * 366 * 86400.0  # as retold.authoring's: 100 years

DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
MAX_UPDATE_WAIT = 300  # seconds an update request may wait for the handler's reply


class _IdConvertor(PathConvertor):
    """A run id in a path: any characters, "/" and newlines included, as workflow ids may hold.

    Starlette's ``path`` stops at a newline, and its ``$`` matches before a
    final one: ``/runs/a%0A`` would have named the run ``a``.
    """

    regex = "(?s:.*)"


register_url_convertor("retold_id", _IdConvertor())


class _Api:
    """The handlers, bound to one client and the app's settings."""

    def __init__(
        self, client: retold.Client, activities: dict[str, retold.Activity[..., Any]] | None,
        max_body_size: int, keepalive: float, auth: bool,
    ) -> None:
        self.client = client
        self.activities = activities
        self.max_body_size = max_body_size
        self.keepalive = keepalive
        self.openapi = orjson.dumps(openapi_document(client.workflows, auth=auth, max_body_size=max_body_size))
        self.starting: set[str] = set()  # idempotency keys whose first request is still running

    async def openapi_json(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")

    async def workflows(self, request: Request) -> Response:
        return JSONResponse(await self.registry())

    async def hosted_elsewhere(self, name: str) -> bool:
        """Whether a live engine on the store hosts workflow ``name``."""
        return any(name in worker.hosting.workflows for worker in await self.client.store.live_workers())

    async def registry(self) -> dict[str, Any]:
        """This app's workflows and activities, with those the live engines on the store describe.

        Each workflow says how many live engines host it (``hosted_by``) and
        whether this server can start it (``startable``: it knows the code, so
        it checks a start's arguments): a server that hosts nothing
        (``retold serve`` without ``--app``) lists what the workers run, from
        their registrations.
        """
        own = describe_registry(self.client.workflows, self.activities)
        workflows = {w["name"]: w for w in own["workflows"]}
        activities = {a["name"]: a for a in own["activities"]}
        hosted_by: dict[str, int] = dict.fromkeys(workflows, 0)
        for worker in await self.client.store.live_workers():
            for name in worker.hosting.workflows:
                hosted_by[name] = hosted_by.get(name, 0) + 1
            described = worker.hosting.definitions
            for entry in described.get("workflows", ()):
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    workflows.setdefault(entry["name"], entry)
            for entry in described.get("activities", ()):
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    activities.setdefault(entry["name"], entry)
        return {
            "workflows": [{**workflows[name], "hosted_by": hosted_by.get(name, 0),
                           "startable": name in self.client.workflows} for name in sorted(workflows)],
            "activities": [activities[name] for name in sorted(activities)],
        }

    async def describe(self, ident: str) -> dict[str, Any]:
        handle = self.client.get_handle(ident)
        description = await handle.describe()
        out = {f: getattr(description, f) for f in description.__dataclass_fields__}
        if description.status == "completed" and isinstance(self.client.codec, retold.JsonCodec):
            out["result"] = await self.client.get_handle(description.run_id).result()
        return out

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.client.workflows:
            if await self.hosted_elsewhere(name):
                raise ProblemError(404, f"workflow {name!r} is hosted by live engines on this store, but this server "
                                        "does not know its code, so it cannot check a start's arguments: serve it "
                                        "with the workflow's module (retold serve --app MODULE), or start it from "
                                        "a process that has it (retold start, Client(workflows=[...]))")
            raise retold.NotRegisteredError("workflow", name)
        key = idempotency_key(request)
        body = expect_object(await read_json(request, self.max_body_size),
                             {"args": (list,), "id": (str,), "signal": (dict,), "id_reuse_policy": (str,),
                              "run_timeout": (int, float), "execution_timeout": (int, float),
                              "start_delay": (int, float), "search_attributes": (dict,), "memo": (dict,)})
        limits: dict[str, Any] = {}
        for field in ("run_timeout", "execution_timeout", "start_delay"):
            value = body.get(field)
            if value is None:
                continue
            if isinstance(value, bool) or not 0 < value <= MAX_TIME_LIMIT:
                raise ProblemError(422, f"field {field!r} must be a positive number of seconds (at most "
                                        f"{MAX_TIME_LIMIT:.0f}, 100 years), not {value!r}")
            limits[field] = float(value)
        if "search_attributes" in body:
            limits["search_attributes"] = attribute_values(body["search_attributes"])
        if "memo" in body:
            limits["memo"] = body["memo"]
        workflow_id: str | None = body.get("id")
        if workflow_id == "":
            raise ProblemError(422, "field 'id' must not be empty")
        policy: str | None = body.get("id_reuse_policy")
        if policy is not None and policy not in ID_REUSE_POLICIES:
            raise ProblemError(422, f"field 'id_reuse_policy' must be one of {', '.join(ID_REUSE_POLICIES)}, "
                                    f"not {policy!r}")
        if "signal" in body:
            return await self._signal_with_start(request, name, body, workflow_id, key, limits)
        if key is None:
            run = await self.client.start_by_name(name, body.get("args", []), id=workflow_id, id_reuse_policy=policy,
                                                  **limits)
            return await self._started(request, run)
        if key in self.starting:  # checked and taken with no await in between
            raise ProblemError(409, f"a request with Idempotency-Key {key!r} is still being processed; retry later",
                               headers={"Retry-After": "1"})
        self.starting.add(key)
        try:
            # The id is part of the request the key stands for: without one, it
            # is derived from the key, so that every retry names the same run.
            expected = workflow_id or "key-" + hashlib.sha256(key.encode()).hexdigest()[:32]
            try:
                run = await self.client.start_by_name(name, body.get("args", []), id=expected, idempotency_key=key,
                                                      id_reuse_policy=policy, **limits)
            except retold.IdempotencyError as exc:
                raise ProblemError(422, f"Idempotency-Key {key!r} was used with another request: {exc}",
                                   error="IdempotencyError") from None
            if run.workflow_id != expected:
                raise ProblemError(422, f"Idempotency-Key {key!r} was used with another request (workflow id "
                                        f"{run.workflow_id!r}, not {expected!r})", error="IdempotencyError")
            return await self._started(request, run)
        finally:
            self.starting.discard(key)

    async def _signal_with_start(
        self, request: Request, name: str, body: dict[str, Any], workflow_id: str | None, key: str | None,
        limits: dict[str, Any],
    ) -> Response:
        """A start with a ``signal``: the run of ``id`` gets it, started first if there is none."""
        signal = expect_object(body["signal"], {"name": (str,), "value": ()})
        if not signal.get("name"):
            raise ProblemError(422, "field 'signal' needs a non-empty 'name' (and a 'value', any JSON)")
        if workflow_id is None:
            raise ProblemError(422, "a start with a 'signal' needs an 'id': the run to signal is the one with it")
        if key is not None:
            raise ProblemError(422, "a start with a 'signal' takes no Idempotency-Key: a retry would signal the "
                                    "run again (send the signal's own id in its value to deduplicate)")
        run = await self.client.signal_with_start_by_name(
            name, signal["name"], signal.get("value"), body.get("args", []), id=workflow_id,
            id_reuse_policy=body.get("id_reuse_policy"), **limits)
        return await self._started(request, run)

    async def _started(self, request: Request, run: retold.RunHandle[Any]) -> Response:
        """201 for a new run, 200 for one started before with the same id or key."""
        location = str(request.url_for("run", id=quote(run.workflow_id, safe="")))
        return JSONResponse(await self.describe(run.workflow_id), status_code=201 if run.created else 200,
                            headers={"Location": location})

    async def list_runs(self, request: Request) -> Response:
        params = request.query_params
        status = params.get("status")
        if status is not None and status not in STATUSES:
            raise ProblemError(400, f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        limit = int_param(request, "limit", 50, 1, 1000)
        offset = int_param(request, "offset", 0, 0, 2**62)
        attributes = {key[len("attr."):]: value for key, value in params.multi_items() if key.startswith("attr.")}
        try:
            runs = await self.client.list_runs(
                status=status, workflow=text_param(request, "workflow"), limit=limit, offset=offset,
                id_prefix=text_param(request, "id_prefix"), started_after=time_param(request, "started_after"),
                started_before=time_param(request, "started_before"),
                closed_after=time_param(request, "closed_after"), closed_before=time_param(request, "closed_before"),
                search_attributes=attribute_values(attributes, status=400, what="attr.NAME query parameter"),
                cursor=params.get("cursor"),
            )
        except retold.InvalidArgumentsError as exc:  # a bad filter or cursor: the request's fault
            raise ProblemError(400, str(exc)) from None
        next_url = None
        if runs.next_cursor is not None:
            next_url = str(request.url.remove_query_params("offset").include_query_params(cursor=runs.next_cursor))
        headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else None
        return JSONResponse({"runs": runs, "next": next_url, "next_cursor": runs.next_cursor}, headers=headers)

    async def run(self, request: Request) -> Response:
        return JSONResponse(await self.describe(path_id(request)))

    async def signal(self, request: Request) -> Response:
        ident, name = path_id(request), path_name(request, "signal name")
        body = expect_object(await read_json(request, self.max_body_size), {"value": ()})
        handle = self.client.get_handle(ident)
        await handle.signal(name, body.get("value"))
        return JSONResponse({"workflow_id": handle.workflow_id}, status_code=202)

    async def query(self, request: Request) -> Response:
        ident, name = path_id(request), path_name(request, "query name")
        raw = request.query_params.get("args")
        args: Any = []
        if raw is not None:
            args = parse_body_json(raw, "args (a JSON array)")
            if not isinstance(args, list):
                raise ProblemError(400, "args must be a JSON array")
        handle = self.client.get_handle(ident)
        result = await handle.query(name, *args)
        try:
            return Response(orjson.dumps({"result": result}), media_type="application/json")
        except orjson.JSONEncodeError:
            raise ProblemError(422, f"the query's result ({type(result).__name__}) has no JSON form") from None

    async def update(self, request: Request) -> Response:
        ident, name = path_id(request), path_name(request, "update name")
        wait = int_param(request, "wait", 30, 0, MAX_UPDATE_WAIT)
        body = expect_object(await read_json(request, self.max_body_size), {"args": (list,), "id": (str,)})
        update_id = body.get("id") or str(uuid.uuid4())
        handle = self.client.get_handle(ident)
        # Validated and recorded first (a rejection answers at once); then the reply is awaited up to ``wait``.
        reply = handle.update(name, *body.get("args", []), id=update_id, timeout=wait)
        return await self._update_reply(request, handle.workflow_id, name, update_id, reply)

    async def update_result(self, request: Request) -> Response:
        ident, name = path_id(request), path_name(request, "update name")
        update_id = checked_text("update id", request.path_params["update_id"], "the update id in the path")
        wait = int_param(request, "wait", 30, 0, MAX_UPDATE_WAIT)
        try:
            return await self._update_reply(request, ident, name, update_id,
                                            self.client.get_handle(ident).update_result(update_id, timeout=wait,
                                                                                        name=name))
        except retold.UpdateRejectedError as err:
            raise ProblemError(404, str(err)) from None

    async def _update_reply(
        self, request: Request, workflow_id: str, name: str, update_id: str, reply: Awaitable[Any],
    ) -> Response:
        """200 with the handler's result, or 202 naming where to ask again once the wait has passed."""
        answer = {"workflow_id": workflow_id, "update_id": update_id}
        try:
            result = await reply
        except retold.UpdateTimeoutError:
            location = str(request.url_for("update", id=quote(workflow_id, safe=""), name=quote(name, safe=""),
                                           update_id=quote(update_id, safe="")))
            return JSONResponse(answer, status_code=202, headers={"Location": location})
        try:
            return Response(orjson.dumps({**answer, "result": result}), media_type="application/json")
        except orjson.JSONEncodeError:
            raise ProblemError(422, f"the update's result ({type(result).__name__}) has no JSON form") from None

    async def cancel(self, request: Request) -> Response:
        ident = path_id(request)
        body = expect_object(await read_json(request, self.max_body_size), {"reason": (str,)})
        handle = self.client.get_handle(ident)
        await handle.cancel(body.get("reason", ""))
        return JSONResponse({"workflow_id": handle.workflow_id}, status_code=202)

    async def terminate(self, request: Request) -> Response:
        ident = path_id(request)
        body = expect_object(await read_json(request, self.max_body_size), {"reason": (str,)})
        handle = self.client.get_handle(ident)
        await handle.terminate(body.get("reason", ""))
        return JSONResponse(await self.describe(ident))

    async def purge(self, request: Request) -> Response:
        body = expect_object(await read_json(request, self.max_body_size), {
            "older_than": (int, float), "statuses": (list,), "workflow": (str,), "dry_run": (bool,)})
        older_than = body.get("older_than")
        if older_than is None or isinstance(older_than, bool) or not 0 <= older_than <= MAX_AGE:
            raise ProblemError(422, f"field 'older_than' is required: a number of seconds from 0 to {MAX_AGE}")
        statuses = body.get("statuses")
        closed = STATUSES[2:]  # running and blocked runs are open: never purged
        if statuses is not None and not all(isinstance(s, str) and s in closed for s in statuses):
            raise ProblemError(422, f"field 'statuses' must list statuses among {', '.join(closed)} "
                                    "(running runs are never purged)")
        workflow = body.get("workflow")
        if workflow is not None:
            workflow = checked_text("workflow", workflow, "field 'workflow'", status=422)
        report = await self.client.purge(older_than, statuses=statuses, workflow=workflow,
                                         dry_run=bool(body.get("dry_run", False)))
        return JSONResponse(report.as_dict())

    # -- schedules ---------------------------------------------------------------

    async def create_schedule(self, request: Request) -> Response:
        body = expect_object(await read_json(request, self.max_body_size), {
            "id": (str,), "workflow": (str,), "args": (list,), "cron": (str,), "every": (int, float),
            "timezone": (str,), "jitter": (int, float), "overlap": (str,), "catchup_limit": (int,),
            "paused": (bool,)})
        for required in ("id", "workflow"):
            if not body.get(required):
                raise ProblemError(422, f"field {required!r} is required (a non-empty string)")
        for field in ("every", "jitter"):
            value = body.get(field)
            if value is not None and (isinstance(value, bool) or not 0 <= value <= MAX_TIME_LIMIT):
                raise ProblemError(422, f"field {field!r} must be a number of seconds (at most "
                                        f"{MAX_TIME_LIMIT:.0f}), not {value!r}")
        catchup = body.get("catchup_limit", 1)
        if isinstance(catchup, bool):
            raise ProblemError(422, "field 'catchup_limit' must be an integer >= 1")
        try:
            spec = retold.Schedule(
                body["id"], cron=body.get("cron"),
                every=None if body.get("every") is None else timedelta(seconds=body["every"]),
                timezone=body.get("timezone", "UTC"),
                jitter=None if body.get("jitter") is None else timedelta(seconds=body["jitter"]),
                overlap=body.get("overlap", "skip"), catchup_limit=catchup, paused=body.get("paused", False))
        except retold.ConfigurationError as exc:
            raise ProblemError(422, str(exc), error="ConfigurationError") from None
        name = body["workflow"]
        if name not in self.client.workflows:
            raise retold.NotRegisteredError("workflow", name)
        try:
            await self.client.get_schedule(spec.id).describe(next_fires=0)
        except retold.ScheduleNotFoundError:
            pass
        else:
            raise ProblemError(409, f"a schedule with id {spec.id!r} exists already: delete it first")
        handle = await self.client.schedule_by_name(spec, name, body.get("args", []))
        location = str(request.url_for("schedule", id=quote(spec.id, safe="")))
        return JSONResponse((await handle.describe()).to_json(), status_code=201, headers={"Location": location})

    async def list_schedules(self, request: Request) -> Response:
        found = await self.client.list_schedules(next_fires=int_param(request, "next", 1, 0, 1000))
        return JSONResponse({"schedules": [d.to_json() for d in found]})

    async def schedule(self, request: Request) -> Response:
        handle = self.client.get_schedule(path_id(request))
        if request.method == "DELETE":
            await handle.delete()
            return Response(status_code=204)
        if request.method == "PATCH":
            return await self._update_schedule(request, handle)
        described = await handle.describe(next_fires=int_param(request, "next", 5, 0, 1000))
        return JSONResponse(described.to_json())

    async def _update_schedule(self, request: Request, handle: retold.ScheduleHandle) -> Response:
        """Change the fields given (null clears ``cron``, ``every`` or ``jitter``), in one transaction."""
        body = expect_object(await read_json(request, self.max_body_size), {
            "workflow": (str,), "args": (list,), "cron": (str, type(None)), "every": (int, float, type(None)),
            "timezone": (str,), "jitter": (int, float, type(None)), "overlap": (str,), "catchup_limit": (int,),
            "paused": (bool,)})
        if not body:
            raise ProblemError(422, "the body names no field to change")
        changes: dict[str, Any] = {}
        for field, value in body.items():
            if field in ("workflow", "args"):
                continue
            if field in ("every", "jitter") and value is not None:
                if isinstance(value, bool) or not 0 <= value <= MAX_TIME_LIMIT:
                    raise ProblemError(422, f"field {field!r} must be a number of seconds (at most "
                                            f"{MAX_TIME_LIMIT:.0f}), not {value!r}")
                value = timedelta(seconds=value)
            if field == "catchup_limit" and isinstance(value, bool):
                raise ProblemError(422, "field 'catchup_limit' must be an integer >= 1")
            changes[field] = value
        workflow = body.get("workflow")
        if workflow is not None and workflow not in self.client.workflows:
            raise retold.NotRegisteredError("workflow", workflow)
        try:
            described = await handle.update_by_name(changes, workflow, body.get("args"))
        except retold.ConfigurationError as exc:
            raise ProblemError(422, str(exc), error="ConfigurationError") from None
        return JSONResponse(described.to_json())

    async def schedule_action(self, request: Request) -> Response:
        handle = self.client.get_schedule(path_id(request))
        action = request.path_params["action"]
        if action == "trigger":
            started = await handle.trigger()
            return JSONResponse({"workflow_id": started}, status_code=202 if started else 200)
        if action not in ("pause", "resume"):
            raise ProblemError(404, f"no schedule action {action!r}: pause, resume or trigger")
        await (handle.pause() if action == "pause" else handle.resume())
        return JSONResponse((await handle.describe()).to_json())

    async def history(self, request: Request) -> Response:
        after = int_param(request, "after", 0, 0, 2**62)
        limit = int_param(request, "limit", 0, 1, 100_000) if "limit" in request.query_params else None
        history = await self.client.get_handle(path_id(request)).history(after=after, limit=limit)
        headers = None
        if limit is not None and len(history) == limit:  # there may be more: the next page's address
            next_url = str(request.url.include_query_params(after=history[-1].seq, limit=limit))
            headers = {"Link": f'<{next_url}>; rel="next"'}
        return Response(history.to_json(), media_type="application/json", headers=headers)

    async def events(self, request: Request) -> Response:
        ident = path_id(request)
        after = event_id_header(request)
        if after is None:
            after = int_param(request, "after", 0, 0, MAX_EVENT_ID)
        description = await self.client.get_handle(ident).describe()
        if not description.open and after >= description.event_count:
            return Response(status_code=204)  # tells EventSource not to reconnect
        if request.method == "HEAD":  # the headers a GET would have, without following the run
            return Response(media_type="text/event-stream", headers={"Cache-Control": "no-store"})
        stream = self.client.get_handle(description.run_id).watch(after_seq=after)
        return EventStreamResponse(stream, self.keepalive)


def create_app(
    client: retold.Client | retold.Engine,
    *,
    tokens: Sequence[str] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    keepalive: float = 15.0,
    dashboard: bool = False,
) -> Starlette:
    """The retold HTTP API as an ASGI app, for a client (or an engine) the host opens.

    Mount it in a Starlette or FastAPI app (``app.mount("/retold",
    create_app(client))``) and open the client in the host's lifespan, or run
    it with ``retold serve``. Every route goes through the client API; the
    routes are described by ``GET /openapi.json``.

    Args:
        client: the :class:`~retold.Client` whose runs it serves; it starts
            workflows by the names this client knows, and ``GET /workflows``
            lists them with the activities their code calls. An
            :class:`~retold.Engine` serves through its own client, and
            ``GET /workflows`` lists the activities it runs.
        tokens: if given, every request but ``GET /openapi.json`` needs
            ``Authorization: Bearer <one of them>``.
        max_body_size: request bodies over this many bytes are refused (413)
            while they stream in.
        keepalive: seconds of silence after which an event stream sends a
            comment line, so that proxies keep it open.
        dashboard: also serve the web dashboard (``docs/dashboard.md``) at
            ``GET /``, with its files under ``/dashboard/``. They are public;
            the page asks for a token and sends it with every API call.

    Raises:
        ConfigurationError: a setting out of range, or an empty token.
    """
    if max_body_size < 1:
        raise retold.ConfigurationError("create_app max_body_size must be positive")
    if keepalive <= 0:
        raise retold.ConfigurationError("create_app keepalive must be positive")
    if tokens is not None and (isinstance(tokens, str) or not tokens or not all(tokens)):
        raise retold.ConfigurationError("create_app tokens must be a list of at least one token, and no empty ones")
    if isinstance(client, retold.Engine):
        api = _Api(client.client, client.activities, max_body_size, keepalive, auth=tokens is not None)
    elif isinstance(client, retold.Client):
        api = _Api(client, None, max_body_size, keepalive, auth=tokens is not None)
    else:
        raise retold.ConfigurationError(f"create_app takes a retold.Client or retold.Engine, got {client!r}")
    routes = [
        Route("/openapi.json", api.openapi_json, methods=["GET"]),
        Route("/workflows", api.workflows, methods=["GET"]),
        Route("/workflows/{name:retold_id}/runs", api.start, methods=["POST"]),
        Route("/runs", api.list_runs, methods=["GET"]),
        Route("/purge", api.purge, methods=["POST"]),
        Route("/schedules", api.create_schedule, methods=["POST"]),
        Route("/schedules", api.list_schedules, methods=["GET"]),
        Route("/schedules/{id:retold_id}/{action:str}", api.schedule_action, methods=["POST"]),
        Route("/schedules/{id:retold_id}", api.schedule, methods=["GET", "PATCH", "DELETE"], name="schedule"),
        # Workflow ids may contain "/" (child ids do): the more specific routes come first.
        Route("/runs/{id:retold_id}/signals/{name}", api.signal, methods=["POST"]),
        Route("/runs/{id:retold_id}/queries/{name}", api.query, methods=["GET"]),
        Route("/runs/{id:retold_id}/updates/{name}", api.update, methods=["POST"]),
        Route("/runs/{id:retold_id}/updates/{name}/{update_id:retold_id}", api.update_result, methods=["GET"],
              name="update"),
        Route("/runs/{id:retold_id}/cancel", api.cancel, methods=["POST"]),
        Route("/runs/{id:retold_id}/terminate", api.terminate, methods=["POST"]),
        Route("/runs/{id:retold_id}/history", api.history, methods=["GET"]),
        Route("/runs/{id:retold_id}/events", api.events, methods=["GET"]),
        Route("/runs/{id:retold_id}", api.run, methods=["GET"], name="run"),
    ]
    if dashboard:
        routes += dashboard_routes()
    middleware = [Middleware(BearerAuth, tokens=tokens, dashboard=dashboard)] if tokens is not None else []
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ProblemError: handle_problem,
            retold.RetoldError: handle_retold_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )

