"""A seeded synthetic landing zone in which every modality carries signal.

The world: users have latent tastes over categories and a latent vector; items belong to a
category, carry tags that reflect it, a brand and a price, and are released over time (new items
can only be found through their content). Users copy what the people they follow did recently
(so social ties carry signal that content does not), follow people with related tastes, and some
have no ties. Most items have an embedding (say, of their image) that is a noisy view of the latent item
vector. Some items have no content, some users join late (cold), and a few rows in the landing files are
malformed on purpose (null keys, non-numbers, unknown event types).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import catalogue
from fusion_tasks.storage import DataRoot, write_json


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    start: dt.date = dt.date(2024, 1, 1)
    n_days: int = 120
    n_users: int = 300
    n_items: int = 500
    n_categories: int = 8
    n_factors: int = 4
    daily_activity: float = 0.35
    share_no_content: float = 0.1
    share_no_ties: float = 0.15
    share_late_users: float = 0.15
    malformed_rows_per_day: float = 0.3
    seed: int = 7
    # how strongly each kind of data drives what users do (the defaults: every modality matters)
    content_signal: float = 1.2  # taste for categories (what content reveals)
    behavior_signal: float = 0.6  # latent taste that only co-occurrence reveals
    quality_signal: float = 1.0  # item quality: what popularity reveals
    social_signal: float = 1.8  # copying what followed users did recently
    social_memory: float = 0.85  # daily decay of what counts as "recently" for copying
    share_released_later: float = 0.3  # items released during the period (only content knows them early)
    # item embeddings (say, of the item's image): a noisy view of the latent taste only co-occurrence reveals
    share_with_embedding: float = 0.8
    embedding_dim: int = 16
    embedding_noise: float = 0.5
    embedding_category: float = 1.0  # how much of the item's category the embedding shows
    category_visible: bool = True  # False: the content files leave the category empty (only the tags show it)

    @classmethod
    def regime(cls, name: str, **overrides: Any) -> SyntheticSpec:
        """A world where one kind of data dominates (see ``REGIMES``)."""
        if name not in REGIMES:
            raise ValueError(f"unknown regime {name!r}; known: {sorted(REGIMES)}")
        return cls(**{**REGIMES[name].settings, **overrides})

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.n_days - 1)


@dataclasses.dataclass(frozen=True)
class Regime:
    """A world where one modality carries the signal: ``dominant`` is the modality a fusion must rank first."""

    dominant: str
    settings: dict[str, Any]


# each regime but the last leaves the item embeddings out, so that its modality alone carries the signal
REGIMES = {
    # tastes only co-occurrence reveals; categories and ties carry nothing
    "behavior": Regime("behavior", dict(content_signal=0.0, behavior_signal=2.5, quality_signal=0.5,
                                        social_signal=0.0, share_with_embedding=0.0)),
    # category tastes, sparse histories and mostly new items
    "content": Regime("content", dict(content_signal=3.0, behavior_signal=0.2, quality_signal=0.3, social_signal=0.0,
                                      share_released_later=0.9, daily_activity=0.05, share_late_users=0.3,
                                      n_categories=16, share_with_embedding=0.0)),
    # users mostly copy the people they follow
    "social": Regime("social", dict(content_signal=0.0, behavior_signal=0.2, quality_signal=0.3, social_signal=4.0,
                                    social_memory=0.97, share_no_ties=0.05, share_with_embedding=0.0)),
    # half the users join late, many new items: what content says carries them
    "cold_start": Regime("content", dict(share_late_users=0.5, share_released_later=0.6, share_with_embedding=0.0)),
    # a latent taste that sparse histories hardly reveal, on mostly new items: the item embeddings show it
    "item_embedding": Regime("item_embedding", dict(content_signal=0.0, behavior_signal=3.0, quality_signal=0.3,
                                                    social_signal=0.0, daily_activity=0.05, share_released_later=0.9,
                                                    share_with_embedding=1.0, embedding_noise=0.2,
                                                    embedding_category=0.0)),
}

EVENT_TYPES = np.array(["view", "click", "purchase", "rating"])


def generate(root: DataRoot, spec: SyntheticSpec = SyntheticSpec()) -> dict[str, Any]:
    """Write ``spec.n_days`` days of behaviour, content and social landing files under ``root``.

    Replaces any landing files the generator wrote before. Returns a summary (counts, date range).
    """
    rng = np.random.default_rng(spec.seed)
    n_u, n_i, n_c = spec.n_users, spec.n_items, spec.n_categories

    taste = rng.dirichlet(np.full(n_c, 0.3), size=n_u)  # peaked: one or two favourite categories
    user_vec = rng.normal(0, 1, (n_u, spec.n_factors))
    join_day = np.where(rng.random(n_u) < spec.share_late_users,
                        rng.integers(spec.n_days // 2, spec.n_days - 5, n_u), 0)

    item_cat = rng.integers(0, n_c, n_i)
    item_vec = rng.normal(0, 1, (n_i, spec.n_factors))
    quality = rng.normal(0, 0.7, n_i)
    release = np.where(rng.random(n_i) < spec.share_released_later, rng.integers(1, spec.n_days, n_i), 0)
    has_content = rng.random(n_i) >= spec.share_no_content

    # Follow ties: mostly towards users who share the favourite category.
    favourite = taste.argmax(axis=1)
    adjacency = np.zeros((n_u, n_u), dtype=bool)
    no_ties = rng.random(n_u) < spec.share_no_ties
    for u in np.flatnonzero(~no_ties):
        same = np.flatnonzero((favourite == favourite[u]) & (np.arange(n_u) != u))
        other = np.flatnonzero(favourite != favourite[u])
        picks = [rng.choice(same, size=min(len(same), rng.integers(2, 7)), replace=False)] if len(same) else []
        picks.append(rng.choice(other, size=1, replace=False))
        adjacency[u, np.concatenate(picks)] = True

    affinity = (np.log(taste[:, item_cat] + 1e-3) * spec.content_signal
                + spec.behavior_signal * user_vec @ item_vec.T / np.sqrt(spec.n_factors)
                + spec.quality_signal * quality[None, :])
    seen = np.zeros((n_u, n_i), dtype=bool)
    recent = np.zeros((n_u, n_i), dtype=float)  # exponentially decayed record of recent interactions
    rows: list[tuple[int, int, int, str, float, int]] = []
    for day in range(spec.n_days):
        social_push = adjacency.astype(float) @ recent
        logits = affinity + spec.social_signal * np.minimum(social_push, 2.0)
        logits[:, release > day] = -np.inf
        logits[seen] = -np.inf
        active = (rng.random(n_u) < spec.daily_activity) & (join_day <= day)
        recent *= spec.social_memory
        for u in np.flatnonzero(active):
            row = logits[u]
            finite = np.isfinite(row)
            if not finite.any():
                continue
            p = np.exp(row[finite] - row[finite].max())
            p /= p.sum()
            n_events = min(int(rng.integers(1, 4)), int(finite.sum()))
            items = np.flatnonzero(finite)[rng.choice(finite.sum(), size=n_events, replace=False, p=p)]
            for i in items:
                kind = rng.choice(EVENT_TYPES, p=[0.4, 0.3, 0.15, 0.15])
                value = 1.0
                if kind == "rating":
                    value = float(np.clip(np.round(3 + affinity[u, i] + rng.normal(0, 0.5)), 1, 5))
                rows.append((day, u, i, kind, value, int(rng.integers(0, 86400))))
                seen[u, i] = True
                recent[u, i] = 1.0

    events = pd.DataFrame(rows, columns=["day", "user", "item", "event_type", "value", "second"])
    _clear_landing(root)
    _write_behavior(root, spec, events, rng)
    _write_content(root, spec, rng, item_cat, release, has_content)
    _write_social(root, spec, adjacency, join_day)
    n_embedded = _write_item_embeddings(root, spec, item_vec, item_cat, release)
    summary = {
        "start": spec.start.isoformat(), "end": spec.end.isoformat(), "events": len(events),
        "users": n_u, "items": n_i, "items_without_content": int((~has_content).sum()),
        "users_without_ties": int(no_ties.sum()), "late_users": int((join_day > 0).sum()),
        "items_with_embedding": n_embedded,
        "seed": spec.seed,
    }
    write_json(root.landing_summary("synthetic"), summary)
    return summary


def _clear_landing(root: DataRoot) -> None:
    import shutil

    for modality in catalogue.modalities():
        shutil.rmtree(root.landing(modality), ignore_errors=True)


def _write_behavior(root: DataRoot, spec: SyntheticSpec, events: pd.DataFrame, rng: np.random.Generator) -> None:
    for day in range(spec.n_days):
        date = spec.start + dt.timedelta(days=day)
        today = events.loc[events["day"] == day]
        stamps = pd.Timestamp(date, tz="UTC") + pd.to_timedelta(today["second"], unit="s")
        frame = pd.DataFrame({
            "user_id": [f"u{u:04d}" for u in today["user"]],
            "item_id": [f"i{i:04d}" for i in today["item"]],
            "event_type": today["event_type"].to_numpy(),
            "value": today["value"].map(lambda v: f"{v:g}").to_numpy(),
            "timestamp": stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
        })
        for _ in range(rng.poisson(spec.malformed_rows_per_day)):
            bad = {"user_id": f"u{rng.integers(spec.n_users):04d}", "item_id": f"i{rng.integers(spec.n_items):04d}",
                   "event_type": "view", "value": "1", "timestamp": f"{date.isoformat()}T12:00:00Z"}
            field, broken = [("user_id", ""), ("value", "n/a"), ("event_type", "teleport")][rng.integers(3)]
            bad[field] = broken
            frame = pd.concat([frame, pd.DataFrame([bad])], ignore_index=True)
        path = root.landing_day("behavior", date) / "events.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)


TAGS_PER_CATEGORY = 5


def _write_content(root: DataRoot, spec: SyntheticSpec, rng: np.random.Generator, item_cat: np.ndarray,
                   release: np.ndarray, has_content: np.ndarray) -> None:
    records = []
    for i in np.flatnonzero(has_content):
        cat = item_cat[i]
        own = [f"t{cat}_{k}" for k in rng.choice(TAGS_PER_CATEGORY, size=2, replace=False)]
        noise = [f"t{rng.integers(spec.n_categories)}_{rng.integers(TAGS_PER_CATEGORY)}"]
        price = float(np.round(rng.lognormal(3 + 0.2 * cat, 0.5), 2))
        records.append((release[i], i, cat, "|".join(own + noise), price, f"b{rng.integers(20)}"))
        if rng.random() < 0.1 and release[i] < spec.n_days - 10:  # a later price change
            later = int(rng.integers(release[i] + 1, spec.n_days))
            records.append((later, i, cat, "|".join(own + noise), round(price * 0.8, 2), records[-1][5]))
    frame = pd.DataFrame(records, columns=["day", "item", "cat", "tags", "price", "brand"])
    for day, part in frame.groupby("day"):
        date = spec.start + dt.timedelta(days=int(day))
        out = pd.DataFrame({
            "item_id": [f"i{i:04d}" for i in part["item"]],
            "valid_from": date.isoformat(),
            "category": [f"category_{c}" if spec.category_visible else None for c in part["cat"]],
            "brand": part["brand"].to_numpy(),
            "price": part["price"].to_numpy(),
            "tags": part["tags"].to_numpy(),
        })
        path = root.landing_day("content", date) / "items.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(path, index=False)


def _write_social(root: DataRoot, spec: SyntheticSpec, adjacency: np.ndarray, join_day: np.ndarray) -> None:
    src, dst = np.nonzero(adjacency)
    valid = np.maximum(join_day[src], join_day[dst])
    frame = pd.DataFrame({"src": src, "dst": dst, "day": valid})
    for day, part in frame.groupby("day"):
        date = spec.start + dt.timedelta(days=int(day))
        out = pd.DataFrame({
            "src_user_id": [f"u{u:04d}" for u in part["src"]],
            "dst_user_id": [f"u{v:04d}" for v in part["dst"]],
            "edge_type": "follow",
            "weight": 1.0,
            "valid_from": date.isoformat(),
        })
        path = root.landing_day("social", date) / "edges.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(path, index=False)


def _write_item_embeddings(root: DataRoot, spec: SyntheticSpec, item_vec: np.ndarray, item_cat: np.ndarray,
                           release: np.ndarray) -> int:
    """A share of the items get a vector, valid from their release: fixed random projections of the latent item
    vector and of the category (an image shows what kind of item it is), plus noise. Drawn from a stream of its
    own, so the rest of the world does not depend on it."""
    rng = np.random.default_rng([spec.seed, 4])
    chosen = np.flatnonzero(rng.random(len(item_vec)) < spec.share_with_embedding)
    if not len(chosen):
        return 0
    latent = rng.normal(0, 1, (spec.n_factors, spec.embedding_dim)) / np.sqrt(spec.n_factors)
    kind = rng.normal(0, 1, (spec.n_categories, spec.embedding_dim))
    vectors = (item_vec[chosen] @ latent + spec.embedding_category * kind[item_cat[chosen]]
               + rng.normal(0, spec.embedding_noise, (len(chosen), spec.embedding_dim)))
    frame = pd.DataFrame({"item": chosen, "day": release[chosen],
                          "embedding": [" ".join(f"{x:.4f}" for x in v) for v in vectors]})
    for day, part in frame.groupby("day"):
        date = spec.start + dt.timedelta(days=int(day))
        out = pd.DataFrame({"item_id": [f"i{i:04d}" for i in part["item"]], "valid_from": date.isoformat(),
                            "source": "image", "embedding": part["embedding"].to_numpy()})
        path = root.landing_day("item_embedding", date) / "embeddings.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(path, index=False)
    return len(chosen)
