"""The ``fusionrec`` Airflow plugin: a dashboard of the published metrics inside the Airflow UI.

The API server mounts a small FastAPI app under ``/fusionrec``, and the UI lists it in its navigation
(*fusionrec* in the side bar, an ``external_views`` entry rendered in an iframe at ``/plugin/fusionrec``):

- ``GET /fusionrec/``                the dashboard page (charts drawn in the browser with the vendored uPlot)
- ``GET /fusionrec/api/dashboard``   the JSON the page draws (see ``fusion_tasks.dashboard.dashboard_data``)
- ``GET /fusionrec/dates``           ``{"dates": ["YYYY-MM-DD", ...]}``, oldest first
- ``GET /fusionrec/metrics/{ds}``    ``{"ds": ..., "metrics": {name: {metric: number}}}``; 404 if not published,
                                     500 naming the date if its metrics cannot be read or break the metrics schema
- ``GET /fusionrec/static/...``      the page's script, style sheet and uPlot (code only, no data)

and the per-user API, read from the database sink (the Airflow connection ``$FUSION_DATABASE_CONN_ID``,
``fusionrec_db`` by default, else the data root's embedded SQLite; see ``fusion_tasks.sinks.connections``):

- ``GET /fusionrec/api/v1/recommendations/{user_id}?date=&k=``  ranked items, scores, contributions and why
- ``GET /fusionrec/api/v1/users/{user_id}/dates``               the published dates that have the user
- ``GET /fusionrec/api/v1/dates``                               the published dates of the database
- ``GET /fusionrec/api/v1/metrics/{ds}``                        that date's metrics, as ``/metrics/{ds}``
- ``GET /fusionrec/api/v1/openapi.json``                        the API's OpenAPI schema

Security: Airflow does not authenticate plugin apps, so every route but ``static`` requires a logged-in
Airflow user allowed to see plugins (``requires_access_view(AccessView.PLUGINS)``: the UI's session cookie
or an API bearer token from ``POST /auth/token``); without one the answer is 401. A browser without a
session is sent to Airflow's login page. The dashboard's routes serve aggregate numbers only; the v1 API
serves one user's recommendations per request. Errors are short JSON bodies: no stack trace, no path.

A root middleware checks every trigger of the DAG (UI form or REST API): a conf key that is not a param
is refused with 400, and a run for a date gets a run id and a note naming it (``label_trigger``).

Every Airflow component imports this module when it loads plugins, so importing it is cheap: FastAPI and
Airflow's security module are imported when the API server first sends a request to the app, pandas
(through ``fusion_tasks.storage``) only inside the handlers.
"""

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/fusionrec"
UI_DIR = Path(__file__).resolve().parent / "fusionrec_ui"


def _data_root() -> Any:
    """The data root, resolved per request so ``FUSION_DATA_ROOT`` is read when it is used."""
    from fusion_tasks.config import default_data_root
    from fusion_tasks.storage import DataRoot

    return DataRoot(default_data_root())


def _read_metrics(root: Any, day: dt.date) -> dict[str, Any] | None:
    """The published metrics.json of ``day``, checked against ``fusion_tasks.metrics_schema``, or None when
    that date has no published metrics.

    Raises ``UnreadableMetricsError`` naming the date when its entry is there but cannot be read or does not
    follow the schema (see ``fusion_tasks.dashboard.read_metrics``), so a caller marks that one date and
    serves the others.
    """
    from fusion_tasks.dashboard import read_metrics

    return read_metrics(root, day)


def aggregate_metrics(payload: Any) -> dict[str, dict[str, float | int | None]]:
    """``payload["metrics"]`` reduced to name -> metric -> number (``fusion_tasks.dashboard``)."""
    from fusion_tasks.dashboard import aggregate_metrics as aggregate

    return aggregate(payload)


def _access_dependency() -> Any:
    """Airflow's own check: a valid session cookie or bearer token of a user who may view plugins."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return requires_access_view(AccessView.PLUGINS)


def _login_url(request: Any) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=str(request.url))


def create_app(require_access: Any = None) -> Any:
    """Build the FastAPI app (imports FastAPI; called on first request).

    ``require_access`` is the route dependency that authenticates and authorises a request; the default
    is Airflow's (see ``_access_dependency``).
    """
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import FileResponse, RedirectResponse
    from fastapi.staticfiles import StaticFiles

    from fusion_tasks.dashboard import dashboard_data

    guard = [Depends(require_access or _access_dependency())]
    # No generated docs or OpenAPI schema: FastAPI serves them outside the routes' login dependency.
    app = FastAPI(title="fusionrec dashboard", description="Aggregate metrics of the published dates; "
                                                           "requires an Airflow login.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=UI_DIR), name="static")

    @app.exception_handler(HTTPException)
    async def to_login(request: Request, exc: HTTPException) -> Any:
        # a person opening the page without a session gets Airflow's login page, not a JSON 401
        if exc.status_code == 401 and request.url.path.rstrip("/") == request.scope.get("root_path", "").rstrip("/"):
            return RedirectResponse(_login_url(request), status_code=303)
        return await http_exception_handler(request, exc)

    @app.get("/", dependencies=guard, include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-store"})

    @app.get("/api/dashboard", dependencies=guard)
    def dashboard() -> dict[str, Any]:
        return dashboard_data(_data_root())

    @app.get("/dates", dependencies=guard)
    def dates() -> dict[str, list[str]]:
        return {"dates": [day.isoformat() for day in _data_root().published_dates("metrics")]}

    @app.get("/metrics/{ds}", name="metrics", dependencies=guard)
    def metrics(ds: dt.date) -> dict[str, Any]:
        from fusion_tasks.dashboard import UnreadableMetricsError

        try:
            payload = _read_metrics(_data_root(), ds)
        except UnreadableMetricsError as err:  # this date only; the others stay served
            raise HTTPException(status_code=500, detail=str(err)) from None
        if payload is None:
            raise HTTPException(status_code=404, detail=f"no metrics published for {ds.isoformat()}")
        return {"ds": ds.isoformat(), "metrics": aggregate_metrics(payload)}

    app.include_router(_api_router(guard))
    return app


_DATABASES: dict[tuple[str, str], Any] = {}


def _database() -> Any:
    """The database sink's ``Database``, built once per (connection id, data root) and kept: its per-thread
    connections are reused across requests."""
    import os

    from fusion_tasks.sinks.connections import database_for

    conn_id = os.environ.get("FUSION_DATABASE_CONN_ID") or "fusionrec_db"
    root = _data_root()
    key = (conn_id, str(root.root))
    if key not in _DATABASES:
        _DATABASES[key] = database_for(conn_id, root)
    return _DATABASES[key]


def _api_router(guard: list[Any]) -> Any:
    """``/api/v1``: the per-user recommendations and the metrics, from the database sink."""
    import logging
    from typing import Annotated

    from fastapi import APIRouter, HTTPException, Query
    from fastapi import Path as PathParam
    from fastapi.openapi.utils import get_openapi
    from pydantic import BaseModel

    from fusion_tasks.metrics_schema import MetricsSchemaError
    from fusion_tasks.serving import MAX_K, NotPublishedError, published_metrics, user_recommendations
    from fusion_tasks.sinks import SinkError

    log = logging.getLogger("fusionrec.api")
    router = APIRouter(prefix="/api/v1", dependencies=guard)
    UserIdParam = Annotated[str, PathParam(  # noqa: N806 - a type alias
        min_length=1, max_length=256, description="A user id of the published table")]

    class Explanation(BaseModel):
        shares: dict[str, float]
        main: str | None
        text: str

    class Item(BaseModel):
        rank: int
        item_id: str
        score: float
        contributions: dict[str, float]
        explanation: Explanation

    class Recommendations(BaseModel):
        user_id: str
        ds: dt.date
        version: str
        method: str
        k: int
        items: list[Item]

    class Dates(BaseModel):
        dates: list[dt.date]

    class Metrics(BaseModel):
        ds: dt.date
        version: str
        metrics: dict[str, dict[str, float | int | None]]

    def unavailable(err: Exception) -> HTTPException:
        log.error("database sink unavailable: %s", err)  # the location stays in the server's log
        return HTTPException(status_code=503, detail="the recommendations database is unavailable; retry later")

    @router.get("/recommendations/{user_id}", response_model=Recommendations,
                summary="A user's ranked recommendations, with per-modality contributions and an explanation")
    def recommendations(user_id: UserIdParam, date: Annotated[dt.date | None, Query(
                            description="A published date (YYYY-MM-DD); default: the newest")] = None,
                        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items")] = 10) -> Any:
        try:
            return user_recommendations(_database(), user_id, date, k)
        except NotPublishedError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        except SinkError as err:
            raise unavailable(err) from None

    @router.get("/users/{user_id}/dates", response_model=Dates, summary="The published dates that have the user")
    def user_dates(user_id: UserIdParam) -> Any:
        try:
            dates = _database().user_dates(user_id)
        except SinkError as err:
            raise unavailable(err) from None
        if not dates:
            raise HTTPException(status_code=404, detail=f"no recommendations were published for user {user_id!r}")
        return {"dates": dates}

    @router.get("/dates", response_model=Dates, summary="The published dates, oldest first")
    def published_dates() -> Any:
        try:
            return {"dates": _database().published_dates()}
        except SinkError as err:
            raise unavailable(err) from None

    @router.get("/metrics/{ds}", response_model=Metrics, summary="A published date's metrics per model and fusion")
    def metrics(ds: dt.date) -> Any:
        try:
            published = published_metrics(_database(), ds)
        except NotPublishedError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        except MetricsSchemaError as err:  # this date only, as /metrics/{ds}
            raise HTTPException(status_code=500, detail=str(err)) from None
        except SinkError as err:
            raise unavailable(err) from None
        return {**published, "metrics": aggregate_metrics(published["metrics"])}

    @router.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return get_openapi(title="fusionrec recommendations API", version="1",
                           description="Published recommendations per user, read from the database sink. Every "
                                       "route needs an Airflow login (a bearer token from POST /auth/token).",
                           routes=router.routes, servers=[{"url": URL_PREFIX}])

    return router


class _LazyASGIApp:
    """An ASGI app that builds the real FastAPI app on its first request.

    Airflow only mounts ``fastapi_apps`` (``app.mount(url_prefix, app)``), which accepts any ASGI app; the
    scheduler, DAG processor and triggerer import this module too but never call it, so they skip FastAPI.
    """

    def __init__(self) -> None:
        self._app: Any = None

    def get(self) -> Any:
        if self._app is None:
            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.get()(scope, receive, send)


app = _LazyASGIApp()


# Triggering the DAG ------------------------------------------------------------------------------------
DAG_ID = "multimodal_fusion"
TRIGGER_PATH = f"/api/v2/dags/{DAG_ID}/dagRuns"


def allowed_conf_keys() -> set[str]:
    """The DAG's params: ``as_of_date`` and every RunConfig setting (tests/dags checks that they agree)."""
    from fusion_tasks.config import RunConfig

    return {"as_of_date", *RunConfig.defaults()}


def label_trigger(body: Any, allowed: set[str], now: dt.datetime) -> tuple[Any, str | None]:
    """Check and label the body of a ``POST .../dagRuns`` of the DAG; returns (body, error message or None).

    A conf key that is not a param is refused, naming it, a close match and the allowed keys (Airflow
    itself would store it and ignore it). A run for a known date (``conf.as_of_date``, else the logical
    date) gets the run id ``as_of_<D>__manual__<now>`` and the note ``as of <D>`` unless the caller set
    them, so the run list shows the date a run computes, not only when it was triggered.
    """
    import difflib

    if not isinstance(body, dict):
        return body, None
    conf = body.get("conf") or {}
    if not isinstance(conf, dict):
        return body, None
    unknown = sorted(set(conf) - allowed)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return body, (f"unknown conf key{'s' if len(unknown) > 1 else ''} for {DAG_ID}: {', '.join(hints)}; "
                      f"the params are {', '.join(sorted(allowed))}")
    day = None
    if isinstance(conf.get("as_of_date"), str):
        try:
            day = dt.date.fromisoformat(conf["as_of_date"])
        except ValueError:
            return body, None  # Airflow's own param check answers with 400
    elif conf.get("as_of_date") is None and isinstance(body.get("logical_date"), str):
        try:
            day = dt.datetime.fromisoformat(body["logical_date"].replace("Z", "+00:00")).astimezone(dt.UTC).date()
        except ValueError:
            return body, None
    if day is None:
        return body, None
    labelled = dict(body)
    if not labelled.get("dag_run_id"):
        labelled["dag_run_id"] = f"as_of_{day.isoformat()}__manual__{now.astimezone(dt.UTC).isoformat()}"
    if not labelled.get("note"):
        labelled["note"] = f"as of {day.isoformat()}"
    return labelled, None


class TriggerLabelMiddleware:
    """ASGI middleware of the API server: applies ``label_trigger`` to every trigger of the DAG.

    The UI's trigger form and the REST API both post to ``/api/v2/dags/multimodal_fusion/dagRuns``.
    Anything else passes through untouched; a body that is not JSON is left to Airflow to refuse.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope.get("type") == "http" else ""
        if scope.get("method") != "POST" or not path.rstrip("/").endswith(TRIGGER_PATH):
            await self.app(scope, receive, send)
            return
        import json

        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # a disconnect: let Airflow see it
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if body is not None:
            labelled, error = label_trigger(body, allowed_conf_keys(), dt.datetime.now(dt.UTC))
            if error is not None:
                payload = json.dumps({"detail": error}).encode()
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode())]})
                await send({"type": "http.response.body", "body": payload})
                return
            if labelled is not body:
                raw = json.dumps(labelled).encode()
                headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
                scope = {**scope, "headers": [*headers, (b"content-length", str(len(raw)).encode())]}
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class FusionRecPlugin(AirflowPlugin):
    name = "fusionrec"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "fusionrec dashboard"}]
    fastapi_root_middlewares = [{"middleware": TriggerLabelMiddleware, "args": [], "kwargs": {},
                                 "name": "fusionrec trigger checks and run labels"}]
    # No leading slash: the UI resolves the iframe's address against its own base URL.
    external_views = [{"name": "fusionrec", "href": "fusionrec/", "destination": "nav", "url_route": "fusionrec",
                       "nav_top_level": True,
                       "icon": "fusionrec/static/icon.svg"}]
