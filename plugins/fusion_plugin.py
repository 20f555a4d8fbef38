"""The ``fusionrec`` Airflow plugin: a read-only view of the published evaluation metrics.

The API server mounts a small FastAPI app under ``/fusionrec``:

- ``GET /fusionrec/``             an HTML table: each published date with the NDCG@10 of each method
- ``GET /fusionrec/dates``        ``{"dates": ["YYYY-MM-DD", ...]}``, oldest first
- ``GET /fusionrec/metrics/{ds}`` ``{"ds": ..., "metrics": {method: {metric: value}}}``; 404 if not published

Security: routes of plugin ``fastapi_apps`` are NOT behind Airflow's login; anyone who can reach the API
server can call them. So this app exposes only aggregate metrics: from ``metrics.json`` it returns the
``metrics`` mapping with numeric values only (method -> metric -> number), never the rest of the file, and
never recommendations or anything with user or item ids. Keep it that way, or add authentication.

Every Airflow component imports this module when it loads plugins, so importing it is cheap: FastAPI is
imported when the API server first sends a request to the app, pandas (through ``fusion_tasks.storage``)
only inside the handlers.
"""

import datetime as dt
import html
import math
import re
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/fusionrec"


def _data_root() -> Any:
    """The data root, resolved per request so ``FUSION_DATA_ROOT`` is read when it is used."""
    from fusion_tasks.config import default_data_root
    from fusion_tasks.storage import DataRoot

    return DataRoot(default_data_root())


class UnreadableMetricsError(ValueError):
    """A date's published metrics exist but cannot be read (bad JSON, a folder or a link loop in place)."""


def _read_metrics(root: Any, day: dt.date) -> dict[str, Any] | None:
    """The published metrics.json of ``day``, or None when that date has no published metrics.

    Raises ``UnreadableMetricsError`` naming the date when its entry is there but cannot be read, so a
    caller can mark that one date and keep serving the others.
    """
    for attempt in range(2):
        try:
            payload = root.read_published_metrics(day)
        except FileNotFoundError:
            # A publish may have swapped the symlink and removed the old version while we read: retry once.
            if attempt == 0 and root.metrics_path(day).exists():
                continue
            if root.published("metrics", day).is_symlink() and not root.published("metrics", day).exists():
                raise UnreadableMetricsError(f"metrics of {day.isoformat()} are unreadable: dangling link") from None
            return None
        except ValueError as err:
            raise UnreadableMetricsError(f"metrics of {day.isoformat()} are not valid JSON") from err
        except (OSError, RuntimeError) as err:  # a folder in place of the file, a link loop (RuntimeError)
            raise UnreadableMetricsError(f"metrics of {day.isoformat()} are unreadable: {type(err).__name__}") from err
        return payload if isinstance(payload, dict) else {}
    return None


def _listed_dates(root: Any) -> list[dt.date]:
    """Dates with a published metrics entry, readable or not (a broken link is listed, to be marked)."""
    base = root.root / "published" / "metrics"
    days = set(root.published_dates("metrics"))
    if base.is_dir():
        for entry in base.iterdir():
            if entry.name.startswith("ds=") and (entry.is_symlink() or entry.is_dir()):
                try:
                    days.add(dt.date.fromisoformat(entry.name.removeprefix("ds=")))
                except ValueError:
                    continue
    return sorted(days)


def _number(value: Any) -> float | int | None:
    """A JSON-safe number, or None for anything else (strings, lists, NaN, infinities, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def aggregate_metrics(payload: Any) -> dict[str, dict[str, float | int | None]]:
    """``payload["metrics"]`` reduced to method -> metric -> number; everything else is dropped.

    Non-finite numbers become None (JSON has no NaN); non-numeric values and non-mapping entries are left
    out, so nothing but aggregate numbers can leave through this unauthenticated app.
    """
    metrics = payload.get("metrics") if isinstance(payload, dict) else None
    if not isinstance(metrics, dict):
        return {}
    out: dict[str, dict[str, float | int | None]] = {}
    for method, values in metrics.items():
        if not isinstance(values, dict):
            continue
        out[str(method)] = {
            str(name): _number(value)
            for name, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
    return out


def _is_ndcg_at_10(name: str) -> bool:
    """``ndcg@10``, ``NDCG@10``, ``ndcg_at_10``, ``ndcg10``: the format of metrics.json is not final."""
    return re.sub(r"[^a-z0-9]", "", name.lower()) in ("ndcg10", "ndcgat10")


def ndcg_at_10(values: dict[str, Any]) -> float | int | None:
    for name, value in values.items():
        if _is_ndcg_at_10(name):
            return _number(value)
    return None


def render_index(rows: list[tuple[dt.date, dict[str, dict[str, Any]] | None]], prefix: str) -> str:
    """The HTML page: one row per date (newest first), one NDCG@10 column per method."""
    methods = sorted({method for _, metrics in rows if metrics for method in metrics})
    head = "".join(f"<th>{html.escape(method)}</th>" for method in methods)
    body = []
    for day, metrics in sorted(rows, key=lambda row: row[0], reverse=True):
        link = f'<a href="{html.escape(prefix)}/metrics/{day.isoformat()}">{day.isoformat()}</a>'
        if metrics is None:
            cells = f'<td colspan="{max(len(methods), 1)}">unreadable</td>'
        else:
            cells = ""
            for method in methods:
                value = ndcg_at_10(metrics.get(method, {}))
                cells += f"<td>{'&ndash;' if value is None else f'{value:.4f}'}</td>"
        body.append(f"<tr><td>{link}</td>{cells}</tr>")
    table = (
        f"<table><thead><tr><th>date</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        if rows
        else "<p>No metrics published yet.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>fusionrec: published metrics</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:right}</style></head><body>"
        f"<h1>fusionrec: NDCG@10 of each method by date</h1>{table}</body></html>"
    )


def create_app() -> Any:
    """Build the FastAPI app (imports FastAPI; called on first request)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse

    # No generated docs or OpenAPI schema: these routes have no login, and the schema would be served
    # without one too. Routes that get Airflow's login can serve them behind it.
    app = FastAPI(title="fusionrec published outputs", description="Aggregate metrics only; no login.",
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/dates")
    def dates() -> dict[str, list[str]]:
        return {"dates": [day.isoformat() for day in _data_root().published_dates("metrics")]}

    @app.get("/metrics/{ds}", name="metrics")
    def metrics(ds: dt.date) -> dict[str, Any]:
        try:
            payload = _read_metrics(_data_root(), ds)
        except UnreadableMetricsError as err:
            raise HTTPException(status_code=500, detail=str(err)) from None
        if payload is None:
            raise HTTPException(status_code=404, detail=f"no metrics published for {ds.isoformat()}")
        return {"ds": ds.isoformat(), "metrics": aggregate_metrics(payload)}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        root = _data_root()
        rows = []
        for day in _listed_dates(root):
            try:
                payload = _read_metrics(root, day)
            except UnreadableMetricsError:  # show the date as unreadable, not a 500 for the whole page
                rows.append((day, None))
                continue
            if payload is not None:
                rows.append((day, aggregate_metrics(payload)))
        return HTMLResponse(render_index(rows, request.scope.get("root_path", "").rstrip("/")))

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


class FusionRecPlugin(AirflowPlugin):
    name = "fusionrec"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "fusionrec published outputs"}]
