"""The ``fusionrec`` Airflow plugin: a dashboard of the published metrics inside the Airflow UI.

The API server mounts a small FastAPI app under ``/fusionrec``, and the UI lists it in its navigation
(*fusionrec* in the side bar, an ``external_views`` entry rendered in an iframe at ``/plugin/fusionrec``):

- ``GET /fusionrec/``                the dashboard page (charts drawn in the browser with the vendored uPlot)
- ``GET /fusionrec/api/dashboard``   the JSON the page draws (see ``fusion_tasks.dashboard.dashboard_data``)
- ``GET /fusionrec/dates``           ``{"dates": ["YYYY-MM-DD", ...]}``, oldest first
- ``GET /fusionrec/metrics/{ds}``    ``{"ds": ..., "metrics": {name: {metric: number}}}``; 404 if not published
- ``GET /fusionrec/static/...``      the page's script, style sheet and uPlot (code only, no data)

Security: Airflow does not authenticate plugin apps, so every route but ``static`` requires a logged-in
Airflow user allowed to see plugins (``requires_access_view(AccessView.PLUGINS)``: the UI's session cookie
or an API bearer token). A browser without a session is sent to Airflow's login page. Even so, only
aggregate numbers leave: metrics, shares and counts, never recommendations or user or item ids.

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
    """The published metrics.json of ``day``, or None when that date has no published metrics.

    Raises ``UnreadableMetricsError`` naming the date when its entry is there but cannot be read (see
    ``fusion_tasks.dashboard.read_metrics``), so a caller marks that one date and serves the others.
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

    return app


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
