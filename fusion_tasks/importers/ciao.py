"""Import the Ciao product-review data set (Tang et al., 2012) into the landing contract.

Input (read-only, never copied): ``rating_with_timestamp.mat`` (variable ``rating``: userid,
productid, categoryid, rating, helpfulness, time in unix seconds), ``trustnetwork.mat`` (variable
``trustnetwork``: truster, trustee) and ``catalog_ciao.txt`` (``<categoryid> <name>``, latin-1).

Output, one file ``ciao.csv`` per partition (ids are strings: users ``u<userid>``, items
``i<productid>``, e.g. ``u123``, ``i456``):

* **behaviour** ``landing/behavior/date=D/ciao.csv``: every rating as an ``event_type=rating``
  event with ``value`` = the rating and ``timestamp`` = its time as ISO-8601 UTC (Ciao times are
  day-granular, always 07:00:00Z). One partition per day from the first rating day to the last one
  (or ``until``), header-only on days without ratings. Cleaning, in this order: ratings after
  ``until`` are left out (so an import up to D only uses what was known by D); ratings outside 1..5
  (34 zeros in the real data) are dropped and counted (``dropped_zero_ratings``,
  ``dropped_out_of_range_ratings``) rather than written; repeated (user, item) pairs keep the
  latest rating (by time; ties: the later row), counted as ``duplicates_removed``.
* **content** ``landing/content/date=D/ciao.csv``: item versions built only from the behaviour
  events written above, so nothing about an item is known before its first rating day. An item
  gets a version on the day of its first rating and a new one on each later day on which its
  category (the category of its latest rating) or its helpfulness bucket (the mean helpfulness of
  its ratings so far, rounded half up) changes; ``valid_from`` = that day = the partition date.
  ``category`` = the category name; ``tags`` = ``helpfulness:<bucket>|category:<name>``.
* **social** ``landing/social/date=D/ciao.csv``: Ciao trust edges carry no dates. An edge
  ``truster -> trustee`` becomes valid on the **later of the two users' first rating days** (the
  first day both users demonstrably existed), so no edge is visible before either user appears in
  the behaviour data; ``edge_type=trust``, ``weight=1.0``. Edges with a user who has no written
  rating (by ``until``) are left out and counted (``trust_edges_without_rated_user``), as are
  self-loops and repeated edges. Note this is a convention, not the truth: the real edge may be
  younger than both users, so trust features are somewhat optimistic for early dates.

Re-running into the same data root replaces the ``ciao.csv`` files (atomic writes) and deletes the
ones an earlier run left in partitions this run no longer covers; files of other sources are not
touched. A summary is also written to ``landing/_ciao_import.json``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import io as sio

from fusion_tasks.importers.generic import EPOCH, write_partitions
from fusion_tasks.storage import DataRoot, write_json

RATINGS_FILE = "rating_with_timestamp.mat"
TRUST_FILE = "trustnetwork.mat"
CATALOG_FILE = "catalog_ciao.txt"
FILE_NAME = "ciao"  # landing files are <partition>/ciao.csv
RATING_COLUMNS = ["user", "item", "category", "rating", "helpfulness", "time"]
TRUST_DATING = ("an edge truster->trustee is valid from the later of the two users' first rating days "
                "(edges with a user without ratings are left out); edge_type=trust, weight=1.0")
ID_SCHEME = "users 'u<userid>', items 'i<productid>' (Ciao's numeric ids with a prefix)"


def import_ciao(source: str | os.PathLike[str], root: DataRoot, until: dt.date | None = None) -> dict[str, Any]:
    """Write the Ciao folder ``source`` as behaviour, content and social landing files under ``root``.

    ``until`` (inclusive) ignores ratings after that day and makes the behaviour partitions run up
    to it (header-only days after the last rating included). Returns a summary dict with the
    counts (read, dropped, written, users, items, partitions per modality, date range) and the
    trust-dating rule. Raises ``FileNotFoundError`` naming the missing file when one of
    ``rating_with_timestamp.mat``, ``trustnetwork.mat`` or ``catalog_ciao.txt`` is not in
    ``source``; ``ValueError`` when a file lacks its variable or has the wrong shape, or when no
    rating is left on or before ``until``.
    """
    started = time.perf_counter()
    source = Path(source)
    ratings = load_ratings(source / RATINGS_FILE)
    trust = load_trust(source / TRUST_FILE)
    categories = load_catalog(source / CATALOG_FILE)

    counts: dict[str, Any] = {"ratings_read": len(ratings), "trust_edges_read": len(trust)}
    day = (ratings["time"] // 86400).to_numpy()
    if until is not None:
        after = day > (until - EPOCH).days
        counts["ratings_after_until"] = int(after.sum())
        ratings = ratings.loc[~after]
    zero = ratings["rating"] == 0
    out_of_range = (ratings["rating"] < 1) | (ratings["rating"] > 5)
    counts["dropped_zero_ratings"] = int(zero.sum())
    counts["dropped_out_of_range_ratings"] = int((out_of_range & ~zero).sum())
    ratings = ratings.loc[~out_of_range]
    ratings = ratings.sort_values(["time", "row"], kind="stable")
    deduped = ratings.drop_duplicates(["user", "item"], keep="last")
    counts["duplicates_removed"] = len(ratings) - len(deduped)
    events = deduped.reset_index(drop=True)
    if events.empty:
        raise ValueError(f"{source / RATINGS_FILE}: no valid rating on or before {until}")
    events["day"] = events["time"] // 86400

    first = EPOCH + dt.timedelta(days=int(events["day"].min()))
    last = until if until is not None else EPOCH + dt.timedelta(days=int(events["day"].max()))
    root.root.mkdir(parents=True, exist_ok=True)

    behavior = _behavior_frame(events)
    written_b = write_partitions(root, "behavior", behavior, events["day"].to_numpy(), FILE_NAME,
                                 fill_range=(first, last))
    content, content_days, unknown = _content_frame(events, categories)
    written_c = write_partitions(root, "content", content, content_days, FILE_NAME)
    social, social_days, dropped_edges = _social_frame(events, trust)
    written_s = write_partitions(root, "social", social, social_days, FILE_NAME)

    summary = {
        "source": str(source),
        "data_root": str(root.root),
        "until": until.isoformat() if until else None,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "id_scheme": ID_SCHEME,
        "trust_dating": TRUST_DATING,
        **counts,
        "behavior_events": len(behavior),
        "users": int(events["user"].nunique()),
        "items": int(events["item"].nunique()),
        "unknown_category_ids": unknown,
        "content_versions": len(content),
        "items_with_content": int(content["item_id"].nunique()) if len(content) else 0,
        **dropped_edges,
        "trust_edges_written": len(social),
        "partitions": {"behavior": written_b, "content": written_c, "social": written_s},
    }
    write_json(root.landing_summary("ciao_import"), summary)
    summary["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    return summary


# Readers ------------------------------------------------------------------------------------
def _load_mat(path: Path, variable: str, n_columns: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Ciao file not found (set FUSION_CIAO_DIR or --source to the Ciao folder)")
    data = sio.loadmat(path, variable_names=[variable])
    if variable not in data:
        raise ValueError(f"{path}: no variable {variable!r} in the MAT file")
    array = np.asarray(data[variable])
    if array.ndim != 2 or array.shape[1] < n_columns:
        raise ValueError(f"{path}: {variable!r} has shape {array.shape}, expected (rows, {n_columns})")
    return array[:, :n_columns].astype("int64")


def load_ratings(path: Path) -> pd.DataFrame:
    """The ``rating`` matrix as a frame with ``RATING_COLUMNS`` plus ``row`` (the original row number)."""
    frame = pd.DataFrame(_load_mat(path, "rating", len(RATING_COLUMNS)), columns=RATING_COLUMNS)
    frame["row"] = np.arange(len(frame))
    return frame


def load_trust(path: Path) -> pd.DataFrame:
    """The ``trustnetwork`` matrix as a frame ``src`` (truster), ``dst`` (trustee)."""
    return pd.DataFrame(_load_mat(path, "trustnetwork", 2), columns=["src", "dst"])


def load_catalog(path: Path) -> dict[int, str]:
    """``categoryid -> name`` from ``catalog_ciao.txt`` (latin-1, one ``<id> <name>`` per line)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Ciao file not found (set FUSION_CIAO_DIR or --source to the Ciao folder)")
    names = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        key, _, name = line.strip().partition(" ")
        if key.isdigit() and name.strip():
            names[int(key)] = name.strip()
    return names


# Frames -------------------------------------------------------------------------------------
def _behavior_frame(events: pd.DataFrame) -> pd.DataFrame:
    stamps, codes = np.unique(events["time"].to_numpy(), return_inverse=True)
    iso = pd.to_datetime(stamps, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()
    return pd.DataFrame({
        "user_id": "u" + events["user"].astype(str),
        "item_id": "i" + events["item"].astype(str),
        "event_type": "rating",
        "value": events["rating"].astype("float64"),
        "timestamp": iso[codes],
    })


def _content_frame(events: pd.DataFrame, categories: dict[int, str]) -> tuple[pd.DataFrame, np.ndarray, list[int]]:
    """Item versions: first rating day, then each day the category or helpfulness bucket changes."""
    # events are sorted by (time, row): "last" is the latest rating of the day
    daily = (events.groupby(["item", "day"], sort=True)
             .agg(h_sum=("helpfulness", "sum"), h_n=("helpfulness", "size"), category=("category", "last"))
             .reset_index())
    grouped = daily.groupby("item", sort=False)
    mean = grouped["h_sum"].cumsum() / grouped["h_n"].cumsum()
    daily["bucket"] = np.floor(mean.to_numpy() + 0.5).astype("int64")
    new_item = daily["item"].ne(daily["item"].shift())
    changed = (new_item | daily["category"].ne(daily["category"].shift())
               | daily["bucket"].ne(daily["bucket"].shift()))
    versions = daily.loc[changed].reset_index(drop=True)
    unknown = sorted(int(c) for c in set(versions["category"].unique()) - set(categories))
    names = versions["category"].map(categories)
    day_text = pd.Series(versions["day"].unique())
    day_iso = dict(zip(day_text, [(EPOCH + dt.timedelta(days=int(d))).isoformat() for d in day_text], strict=True))
    tags = "helpfulness:" + versions["bucket"].astype(str) + names.map(lambda n: f"|category:{n}", na_action="ignore") \
        .fillna("")
    frame = pd.DataFrame({
        "item_id": "i" + versions["item"].astype(str),
        "valid_from": versions["day"].map(day_iso),
        "category": names,
        "tags": tags,
    })
    return frame, versions["day"].to_numpy(), unknown


def _social_frame(events: pd.DataFrame, trust: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """Trust edges valid from max(first rating day of truster, of trustee)."""
    first_day = events.groupby("user")["day"].min()
    self_loop = trust["src"] == trust["dst"]
    edges = trust.loc[~self_loop]
    unique = edges.drop_duplicates()
    duplicates = len(edges) - len(unique)
    src_day = unique["src"].map(first_day)
    dst_day = unique["dst"].map(first_day)
    known = src_day.notna() & dst_day.notna()
    unique = unique.loc[known]
    days = np.maximum(src_day[known], dst_day[known]).astype("int64").to_numpy()
    day_iso = {d: (EPOCH + dt.timedelta(days=int(d))).isoformat() for d in np.unique(days)}
    frame = pd.DataFrame({
        "src_user_id": "u" + unique["src"].astype(str).to_numpy(),
        "dst_user_id": "u" + unique["dst"].astype(str).to_numpy(),
        "edge_type": "trust",
        "weight": 1.0,
        "valid_from": [day_iso[d] for d in days],
    })
    dropped = {
        "trust_self_loops_dropped": int(self_loop.sum()),
        "trust_duplicates_dropped": duplicates,
        "trust_edges_without_rated_user": int((~known).sum()),
    }
    return frame, days, dropped
