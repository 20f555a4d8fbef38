"""Candidate pools: every base model's scores on the union of the models' top-N items per user.

Fusion is two-stage. Each model scores *every* item a user has not interacted with and that exists
at the origin (full ranking); its scores are standardised per user (z-scores over those items), and
its top ``candidates_per_model`` items join the user's pool. Every model's z-score and rank (capped
at N + 1 outside its own top-N) is then recorded for every pooled item, with context features.
A base model's own top-K is inside the pool, so base models are evaluated exactly from it (by their ranks: a
model recommends nothing to a user it had no signal for).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import arrays, models, topn
from fusion_tasks.config import RunConfig
from fusion_tasks.storage import DataRoot, read_json, read_parquet, write_json, write_parquet
from fusion_tasks.training_data import TrainingData, load_relevance

# a block of users holds at most this many bytes of scores (float32, every model, every item)
BLOCK_BYTES = 256 * 2**20
# a factored model's scores are made and read in blocks of at most this many bytes (one per thread, they stay in
# the shared cache). 75,357 users x 12,619 items, 32 factors, 2 threads, 32 MiB of L3: 1 MiB 1.63 s, 2 MiB
# 1.24-1.36 s, 4 MiB 1.10-1.16 s, 8 MiB 1.13 s, 16 MiB 1.24 s (a block's fixed cost against its misses)
FACTORED_BLOCK_BYTES = 4 * 2**20
# a block's product is made in panels of this many items, one BLAS call each (one batched matmul): a thin panel
# of scores stays in the processor's closest caches while it is made. 85 x 12,319 and 10 x 98,057 blocks, one
# thread: 32 factors 91 -> 105 and 41 -> 90 GFLOP/s against one call for the block (16 and 64 factors gain too;
# 128 factors: 30 -> 63 on the wide blocks, 82 -> 77 on the narrow ones); of the widths tried, 128 is the best or
# within 5% of it for 16 to 128 factors (256: 76 at 98,057 items, 32 factors; 512 and more: no gain)
PANEL_ITEMS = 128
CELLS_PER_GATHER = 8192  # pooled cells whose factors are gathered at once
SIGNAL = 1e-9  # a standard deviation of the scores at or below this: the model has nothing to say
# context columns of every pool, and the modality each comes from
CONTEXT_FEATURES = {"user_activity": "behavior", "user_has_social": "social", "item_has_content": "content",
                    "item_popularity": "behavior", "user_category_share": "content", "user_ties": "social"}
# raw columns for methods that embed them (not linear features): the item's category (0: unknown)
RAW_FEATURES = {"item_category": "content"}

# The declared schema of a pool (``pool_columns``): the keys, three columns per base model, the context and raw
# columns, and ``label`` in the pools of an evaluation window. Written and read through ``check_pool``.
KEY_COLUMNS = {"user_idx": "int32", "item_idx": "int32"}
MODEL_COLUMNS = {"z": "float32", "rank": "int32", "avail": "int8"}  # <kind>_<model>: z-score, rank, has signal
CONTEXT_TYPES = {"user_activity": "float32", "user_has_social": "int8", "item_has_content": "int8",
                 "item_popularity": "float32", "user_category_share": "float32", "user_ties": "float32",
                 "item_category": "int32"}
LABEL = {"label": "int8"}


def pool_columns(model_names: list[str], labelled: bool) -> dict[str, str]:
    """Every column of a pool of ``model_names`` and its dtype, in order."""
    per_model = {f"{kind}_{name}": dtype for name in model_names for kind, dtype in MODEL_COLUMNS.items()}
    return {**KEY_COLUMNS, **per_model, **CONTEXT_TYPES, **(LABEL if labelled else {})}


def check_pool(pool: pd.DataFrame, model_names: list[str], labelled: bool, source: str) -> pd.DataFrame:
    """``pool`` when it has exactly ``pool_columns`` (names, order, dtypes) and no NaN; else ``ValueError``
    naming ``source`` and the first column that differs."""
    expected = pool_columns(model_names, labelled)
    if list(pool.columns) != list(expected):
        missing = [c for c in expected if c not in pool.columns]
        extra = [c for c in pool.columns if c not in expected]
        raise ValueError(f"{source}: pool columns differ from the declared schema (missing {missing}, "
                         f"unexpected {extra}, or another order)")
    for column, dtype in expected.items():
        if str(pool[column].dtype) != dtype:
            raise ValueError(f"{source}: pool column {column} is {pool[column].dtype}, the schema says {dtype}")
    if pool.isna().to_numpy().any():
        raise ValueError(f"{source}: the pool has missing values in {list(pool.columns[pool.isna().any()])}")
    return pool


def context_columns(modalities) -> tuple[str, ...]:
    """The context columns a fusion method may use when only ``modalities`` are fused."""
    return tuple(c for c, m in CONTEXT_FEATURES.items() if m in modalities)


def pool_path(root: DataRoot, config: RunConfig, origin: str):
    return root.fused_pool(config.as_of_date, origin)


def enabled_models(config: RunConfig) -> list[str]:
    return [name for name in models.REGISTRY if models.is_enabled(name, config)]


def build_pools(root: DataRoot, config: RunConfig, model_names: list[str]) -> dict[str, Any]:
    """Write the candidate pool of every origin; returns a manifest with row and user counts.

    Fold and test pools cover the users who did something new in the window after the origin
    (``label`` = 1 for what they did); the final pool covers every user of the vocabulary.
    """
    manifest: dict[str, Any] = {"models": model_names, "origins": {}}
    for origin in config.origins():
        data = TrainingData.load(root, config, origin)
        fitted = {name: models.load_fitted(root, config, name, origin) for name in model_names}
        if origin == "final":
            users = np.arange(data.n_users)
            relevance = None
        else:
            relevance = load_relevance(root, config, origin)
            users = arrays.unique(relevance["user_idx"].to_numpy())
        pool = score_pool(data, fitted, users, config.candidates_per_model)
        if relevance is not None:
            pool = pool.merge(relevance.assign(label=1), on=["user_idx", "item_idx"], how="left")
            pool["label"] = pool["label"].fillna(0).astype("int8")
        write_parquet(check_pool(pool, model_names, relevance is not None, f"the pool of {origin}"),
                      pool_path(root, config, origin))
        manifest["origins"][origin] = {"rows": len(pool), "users": len(users),
                                       "catalogue": int(data.item_known.sum())}
    write_json(root.fused_pools(config.as_of_date), manifest)
    return manifest


def score_pool(data: TrainingData, fitted: dict[str, models.BaseRecommender], users: np.ndarray,
               per_model: int, block_users: int | None = None) -> pd.DataFrame:
    """The pool of ``users`` at ``data``'s origin (see module docstring); no NaN in the result.

    Users are scored in blocks of ``block_users`` (default: as many as ``BLOCK_BYTES`` of scores for all the
    models that are not low-rank hold): per block and model, one call for the (block x items) scores, centred in
    place on the mean over the user's valid items, then the top-N (``topn.top_n``; ties by item index). A low-rank
    model (``BaseRecommender.low_rank``) gives its factors instead: its scores are made and read in cache-sized
    blocks, on every processor, and its moments come from the factors (``_Factored``). Memory grows with the
    block, never with users x items. Only the pooled cells (the union of the models' top-N) are gathered: a
    model's z-score there is its centred score over the standard deviation, its rank is looked up in its
    top-N. A model with no signal for a user (constant scores over the valid items) proposes no item for him;
    one whose modality had no data at the origin (``missing_data``) is not asked at all.
    """
    activity = np.asarray((data.interactions > 0).sum(axis=1)).ravel()
    has_social = (data.features["social"].has_social if data.has("social")
                  else np.zeros(data.n_users, dtype=bool))
    has_content = (data.features["content"].has_content if data.has("content")
                   else np.zeros(data.n_items, dtype=bool))
    popularity = np.asarray((data.interactions > 0).sum(axis=0)).ravel()
    ties = (np.diff(data.features["social"].adjacency.indptr) if data.has("social")
            else np.zeros(data.n_users, dtype=int))
    category = (data.features["content"].category_idx if data.has("content")
                else np.zeros(data.n_items, dtype="int32"))
    share = _category_share(data.interactions, category)
    n_items = data.n_items
    unknown = np.flatnonzero(~data.item_known)
    factored = {name: _Factored(right, data.item_known) for name, model in fitted.items()
                if not model.missing_data(data) and (right := _right_factors(model)) is not None}
    if block_users is None:  # factored models hold no block of all items
        block_users = max(1, BLOCK_BYTES // (4 * n_items * max(len(fitted) - len(factored), 1)))
    parts = []
    for start in range(0, len(users), block_users):
        batch = users[start:start + block_users]
        seen = data.seen[batch]
        seen.sum_duplicates()
        seen_rows, seen_cols = np.repeat(np.arange(len(batch)), np.diff(seen.indptr)), seen.indices
        seen_keys = seen_rows.astype("int64") * n_items + seen_cols  # sorted: rows, then columns
        n_valid = np.maximum(int(data.item_known.sum()) - np.diff(seen.indptr), 1)  # seen items are known
        centred, stds, tops = {}, {}, {}
        for name, model in fitted.items():
            if model.missing_data(data):  # nothing to say: no signal, no candidates
                centred[name], stds[name], tops[name] = None, np.zeros(len(batch)), (np.zeros(0, "int64"),) * 2
                continue
            if name in factored:
                left = model.low_rank(batch)[0]
                top, std, centred[name] = factored[name].score(left, seen_rows, seen_cols, n_valid, per_model)
                has_signal = std > SIGNAL
                top = top[has_signal]
            else:
                scores = model.score(batch)  # a new float32 array of the caller's: worked on in place
                std = _centre(scores, unknown, seen_rows, seen_cols, n_valid)
                has_signal = std > SIGNAL
                top = topn.top_n(scores[has_signal] if not has_signal.all() else scores, per_model)
                centred[name] = scores
            top_rows = np.flatnonzero(has_signal)
            keys = (top_rows.astype("int64")[:, None] * n_items + top).ravel()
            ranks = np.tile(np.arange(1, top.shape[1] + 1, dtype="int32"), len(top_rows))
            order = np.argsort(keys, kind="stable")
            stds[name], tops[name] = std, (keys[order], ranks[order])
        cells = arrays.unique(np.concatenate([keys for keys, _ in tops.values()]))
        keep = ~arrays.contains(seen_keys, cells) & data.item_known[cells % n_items]
        cells = cells[keep]
        rows, cols = cells // n_items, cells % n_items
        part = {"user_idx": batch[rows].astype("int32"), "item_idx": cols.astype("int32")}
        for name in fitted:
            keys, ranks = tops[name]
            std = stds[name][rows]
            values = centred[name]
            z = (np.zeros(len(rows)) if values is None else
                 np.divide(values(rows, cols) if callable(values) else values[rows, cols], std,
                           out=np.zeros(len(rows)), where=std > SIGNAL))
            part[f"z_{name}"] = z.astype("float32")
            if len(keys):
                at = np.minimum(np.searchsorted(keys, cells), len(keys) - 1)
                part[f"rank_{name}"] = np.where(keys[at] == cells, ranks[at], per_model + 1).astype("int32")
            else:
                part[f"rank_{name}"] = np.full(len(cells), per_model + 1, dtype="int32")
            part[f"avail_{name}"] = (stds[name][rows] > SIGNAL).astype("int8")
        part["user_activity"] = np.log1p(activity[batch[rows]]).astype("float32")
        part["user_has_social"] = has_social[batch[rows]].astype("int8")
        part["item_has_content"] = has_content[cols].astype("int8")
        part["item_popularity"] = np.log1p(popularity[cols]).astype("float32")
        part["user_category_share"] = np.asarray(share[batch[rows], category[cols]]).ravel().astype("float32")
        part["user_ties"] = np.log1p(ties[batch[rows]]).astype("float32")
        part["item_category"] = category[cols].astype("int32")
        parts.append(pd.DataFrame(part))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in pool_columns(list(fitted), labelled=False).items()})
    return pd.concat(parts, ignore_index=True)


def _right_factors(model: models.BaseRecommender) -> np.ndarray | None:
    """The item side of a low-rank model's scores (``BaseRecommender.low_rank``), or None."""
    sides = model.low_rank(np.zeros(0, dtype="int64"))
    return None if sides is None else sides[1]


class _Factored:
    """Pool scoring of a low-rank model (``score = left @ right.T``) for one origin.

    Its scores are made in blocks of ``FACTORED_BLOCK_BYTES`` (a few rows of every known item: they stay in the
    processor's cache from the matrix product to the top-N that reads them), and never kept; a block's product is
    made a panel of ``PANEL_ITEMS`` items at a time, in one batched call. The blocks are
    shared out among one thread per processor, each with its own block and one BLAS thread (numpy releases the
    interpreter's lock in the product and in the selection's passes). The moments over a user's valid items
    come from the factors: with the item vectors shifted onto their mean ``c`` over the known items,
    ``R = right - c`` and ``G = R[known].T @ R[known]``, the shifted scores ``t = left @ R.T`` of the known items
    sum to 0 and their squares to ``left G left'``; the user's seen items, read from the block before they are
    masked, are then taken out (summed per block in its thread). In float64, shifted so that no large mean
    cancels against a small spread.
    """

    def __init__(self, right: np.ndarray, item_known: np.ndarray) -> None:
        self.known = np.flatnonzero(item_known)
        self.place = np.full(len(item_known), -1, dtype=np.int64)  # an item's column among the known ones
        self.place[self.known] = np.arange(len(self.known))
        # the product's item side in panels (panels x k x PANEL_ITEMS), then the items after the last whole panel
        right_known_t = np.ascontiguousarray(right[self.known], dtype="float32").T  # k x known
        self.full = len(self.known) // PANEL_ITEMS * PANEL_ITEMS
        self.panels = np.ascontiguousarray(
            right_known_t[:, :self.full].reshape(right.shape[1], -1, PANEL_ITEMS).transpose(1, 0, 2))
        self.rest = np.ascontiguousarray(right_known_t[:, self.full:])
        known = right[self.known].astype("float64")
        self.centre = known.mean(axis=0) if len(self.known) else np.zeros(right.shape[1])
        known -= self.centre
        self.gram = known.T @ known
        self.right = np.ascontiguousarray(right, dtype="float32")

    def score(self, left: np.ndarray, seen_rows: np.ndarray, seen_cols: np.ndarray, n_valid: np.ndarray,
              n: int):
        """For each row of ``left``: its top ``n`` known items (``topn.top_n``'s order: score desc, then item) with
        its seen cells ``(seen_rows, seen_cols)`` (sorted by row) excluded, its standard deviation over its
        ``n_valid`` valid items (known, not seen), and a function of cells ``(rows, cols)`` giving their centred
        scores (the score minus the row's mean over its valid items)."""
        rows, n_known = len(left), len(self.known)
        step = max(1, FACTORED_BLOCK_BYTES // (4 * max(n_known, 1)))
        top = np.empty((rows, min(n, n_known)), dtype=np.int64)
        left32, left = np.ascontiguousarray(left, dtype="float32"), np.asarray(left, dtype="float64")
        offset = left @ self.centre  # each row's score of the mean item vector: t = score - offset
        # over each row's seen cells: the sum of their shifted scores t and of its squares, taken off below
        seen_total, seen_squares = np.zeros(rows), np.zeros(rows)
        starts = np.arange(0, rows, step)
        bounds = np.searchsorted(seen_rows, np.append(starts, rows))
        workers = min(_processors(), len(starts))

        def work(worker: int) -> None:
            buffer = np.empty((min(step, rows), n_known), dtype="float32")
            for block in range(worker, len(starts), workers):
                start = starts[block]
                scores = buffer[:min(step, rows - start)]
                self._product(left32[start:start + len(scores)], scores)
                first, last = bounds[block], bounds[block + 1]
                local = seen_rows[first:last] - start
                cells = local * n_known + self.place[seen_cols[first:last]]  # a seen item is known
                flat = scores.reshape(-1)
                shifted = flat[cells] - offset[seen_rows[first:last]]
                flat[cells] = -np.inf
                top[start:start + len(scores)] = topn.top_n(scores, n)
                seen_total[start:start + len(scores)] = np.bincount(local, weights=shifted, minlength=len(scores))
                seen_squares[start:start + len(scores)] = np.bincount(local, weights=shifted * shifted,
                                                                      minlength=len(scores))

        if rows and n_known:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1, "blas"):
                if workers == 1:
                    work(0)
                else:
                    with ThreadPoolExecutor(workers) as pool:
                        list(pool.map(work, range(workers)))
        total = -seen_total
        squares = np.einsum("ij,ij->i", left @ self.gram, left) - seen_squares
        mean = total / n_valid + offset  # of the scores over the valid items
        std = np.sqrt(np.maximum(squares / n_valid - (total / n_valid) ** 2, 0.0))

        def centred(cell_rows: np.ndarray, cell_cols: np.ndarray) -> np.ndarray:
            # float32 products (as the top-N ranked them), a few thousand cells at a time so the gathered factors
            # stay in cache; the mean, in float64, is then taken off
            out = np.empty(len(cell_rows))
            for start in range(0, len(cell_rows), CELLS_PER_GATHER):
                rows_, cols_ = cell_rows[start:start + CELLS_PER_GATHER], cell_cols[start:start + CELLS_PER_GATHER]
                out[start:start + len(rows_)] = np.einsum("ij,ij->i", left32[rows_], self.right[cols_])
            return out - mean[cell_rows]

        return self.known[top], std, centred

    def _product(self, left: np.ndarray, out: np.ndarray) -> None:
        """``out = left @ right[known].T``, a panel of items at a time (``PANEL_ITEMS``): one batched product
        whose output is ``out``'s columns viewed panel by panel."""
        if self.full:
            by_panel = out[:, :self.full].reshape(len(left), -1, PANEL_ITEMS).transpose(1, 0, 2)
            np.matmul(left[None], self.panels, out=by_panel)
        if self.full < out.shape[1]:
            np.matmul(left, self.rest, out=out[:, self.full:])


def _processors() -> int:
    """The processors this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _centre(scores: np.ndarray, unknown: np.ndarray, seen_rows: np.ndarray, seen_cols: np.ndarray,
            n_valid: np.ndarray) -> np.ndarray:
    """Centre each row of ``scores`` in place on its mean over the valid items (known at the origin, not seen
    by the user) and set the others to -inf; returns each row's standard deviation over the valid items."""
    scores[:, unknown] = 0.0
    scores[seen_rows, seen_cols] = 0.0
    mean = scores.sum(axis=1, dtype=np.float64) / n_valid
    scores -= mean[:, None].astype(scores.dtype)
    scores[:, unknown] = 0.0
    scores[seen_rows, seen_cols] = 0.0
    std = np.sqrt(np.einsum("ij,ij->i", scores, scores) / n_valid)
    scores[:, unknown] = -np.inf
    scores[seen_rows, seen_cols] = -np.inf
    return std


def _category_share(interactions, category: np.ndarray):
    """Users x (categories + 1): each user's share of interactions per item category (column 0:
    items of unknown category, kept at 0)."""
    from scipy import sparse

    n_cat = int(category.max()) + 1 if len(category) else 1
    known = np.flatnonzero(category > 0)
    onehot = sparse.csr_matrix((np.ones(len(known)), (known, category[known])), shape=(len(category), n_cat))
    counts = sparse.csr_matrix((interactions > 0).astype("float32") @ onehot)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    return (sparse.diags(np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)) @ counts).toarray()


def load_pool(root: DataRoot, config: RunConfig, origin: str) -> pd.DataFrame:
    """The pool of ``origin``, checked against the declared schema of the models the pools were built with."""
    path = pool_path(root, config, origin)
    names = read_json(root.fused_pools(config.as_of_date))["models"]
    return check_pool(read_parquet(path), names, origin != "final", str(path))
