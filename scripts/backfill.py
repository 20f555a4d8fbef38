"""Create a backfill of multimodal_fusion through the REST API of a running Airflow (``make airflow``).

Going through the API server rather than ``airflow backfill create`` keeps one process writing to
the embedded SQLite database (a second writer can hit "database is locked"). Standard library only.

    python scripts/backfill.py --from 2024-03-01 --to 2024-03-10 [--backwards] [--conf '{"top_k": 20}']
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

DAG_ID = "multimodal_fusion"


def call(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        sys.exit(f"{method} {path}: HTTP {err.code}: {err.read().decode()[:2000]}")
    except urllib.error.URLError as err:
        sys.exit(f"cannot reach Airflow at {base} ({err.reason}); start it with `make airflow`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="start", required=True, help="first logical date, YYYY-MM-DD")
    parser.add_argument("--to", dest="end", required=True, help="last logical date, YYYY-MM-DD")
    parser.add_argument("--backwards", action="store_true", help="run the latest date first")
    parser.add_argument("--conf", default="{}", help="DAG run conf (params) as JSON")
    parser.add_argument("--max-active-runs", type=int, default=2)
    parser.add_argument("--url", default=os.environ.get("AIRFLOW_URL", "http://localhost:8080"))
    args = parser.parse_args()

    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    token = call(args.url, "POST", "/auth/token", {"username": "admin", "password": passwords["admin"]})["access_token"]
    call(args.url, "PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, token)
    backfill = call(args.url, "POST", "/api/v2/backfills", {
        "dag_id": DAG_ID,
        "from_date": f"{args.start}T00:00:00Z",
        "to_date": f"{args.end}T00:00:00Z",
        "run_backwards": args.backwards,
        "dag_run_conf": json.loads(args.conf),
        "max_active_runs": args.max_active_runs,
        "reprocess_behavior": "none",
    }, token)
    print(json.dumps({key: backfill.get(key) for key in ("id", "dag_id", "from_date", "to_date", "is_paused",
                                                          "max_active_runs")}, indent=2))


if __name__ == "__main__":
    main()
