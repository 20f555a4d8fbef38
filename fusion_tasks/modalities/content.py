"""Content: item attributes (category, brand, price, tags, optional embedding), versioned by ``valid_from``."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities.base import Features, Modality, Vocabulary
from fusion_tasks.schemas import Column, Schema
from fusion_tasks.storage import DataRoot

SCHEMA = Schema(
    name="content",
    version=1,
    columns=(
        Column("item_id", "key"),
        Column("valid_from", "date"),
        Column("category", "str", nullable=True),
        Column("brand", "str", required=False, nullable=True),
        Column("price", "float", required=False, nullable=True, min_value=0.0),
        Column("tags", "str", required=False, nullable=True),
        Column("embedding", "vector", required=False, nullable=True),
    ),
)


def as_of(staged: pd.DataFrame, origin: dt.date) -> pd.DataFrame:
    """The latest version of each item valid on ``origin``."""
    kept = staged.loc[staged["valid_from"] <= pd.Timestamp(origin)]
    return kept.sort_values(["item_id", "valid_from", "landed"]).drop_duplicates("item_id", keep="last")


@dataclasses.dataclass(frozen=True)
class ContentFeatures(Features):
    """``matrix``: items x attributes, rows L2-normalised (zero rows: no content); ``category_idx``: each item's
    category, 1-based (0: unknown), of ``n_categories``; ``has_content``: items with any attribute."""

    matrix: sparse.csr_matrix
    category_idx: np.ndarray
    n_categories: int
    has_content: np.ndarray

    def is_empty(self) -> bool:
        return not (self.has_content.any() or (self.category_idx > 0).any())


def build_features(staged: pd.DataFrame, vocab: Vocabulary, origin: dt.date,
                   config: RunConfig) -> ContentFeatures:
    """Item feature matrix (rows L2-normalised; items without content are zero rows).

    Blocks: category one-hot, brand one-hot, tags bag-of-words, log price (standardised) and the
    embedding vector when present. Also ``category_idx`` (0 = unknown) for models that embed it.
    """
    current = as_of(staged, origin)
    rows = vocab.item_index(current["item_id"])
    current = current.loc[rows >= 0]
    rows = rows[rows >= 0]
    n_items = len(vocab.items)
    blocks = []
    categories = sorted(current["category"].dropna().unique())
    category_idx = np.zeros(n_items, dtype="int32")
    if categories:
        codes = pd.Categorical(current["category"], categories=categories).codes
        category_idx[rows] = codes + 1
        blocks.append(_one_hot(rows, codes, n_items, len(categories)))
    if current["brand"].notna().any():
        brands = sorted(current["brand"].dropna().unique())
        blocks.append(_one_hot(rows, pd.Categorical(current["brand"], categories=brands).codes,
                               n_items, len(brands)))
    tags = current["tags"].fillna("").str.lower().str.split("|")
    vocab_tags = sorted({t.strip() for ts in tags for t in ts if t.strip()})
    if vocab_tags:
        position = {t: j for j, t in enumerate(vocab_tags)}
        r, c = [], []
        for row, ts in zip(rows, tags, strict=True):
            for t in {t.strip() for t in ts if t.strip()}:
                r.append(row)
                c.append(position[t])
        blocks.append(sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_items, len(vocab_tags))))
    price = current["price"].to_numpy(dtype="float64")
    if np.isfinite(price).any():
        logp = np.log1p(price)
        mean, std = np.nanmean(logp), np.nanstd(logp) or 1.0
        col = np.zeros(n_items)
        col[rows] = np.nan_to_num((logp - mean) / std) * 0.5
        blocks.append(sparse.csr_matrix(col[:, None]))
    has_emb = current["embedding"].notna().to_numpy()
    if has_emb.any():
        dims = {len(v) for v in current.loc[has_emb, "embedding"]}
        if len(dims) == 1:
            dim = dims.pop()
            emb = np.zeros((n_items, dim))
            emb[rows[has_emb]] = np.vstack(current.loc[has_emb, "embedding"].to_numpy())
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            blocks.append(sparse.csr_matrix(np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)))
    matrix = sparse.hstack(blocks, format="csr") if blocks else sparse.csr_matrix((n_items, 0))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix = sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ matrix
    has_content = np.zeros(n_items, dtype=bool)
    has_content[rows] = True
    return ContentFeatures(matrix=matrix.tocsr().astype("float32"), category_idx=category_idx,
                           n_categories=len(categories), has_content=has_content & (norms > 0))


def embedding_length(staged: pd.DataFrame, root: DataRoot, config: RunConfig) -> pd.Series:
    """An embedding whose length is not the declared ``embedding_dim`` (when set) or else the most
    common length among the rows (ties: the shorter) is rejected; one wrong row must not drop
    every item's embedding."""
    lengths = staged["embedding"].map(lambda v: len(v) if isinstance(v, (list, np.ndarray)) else -1)
    present = lengths[lengths >= 0]
    if present.empty:
        return pd.Series(None, index=staged.index, dtype="object")
    if config.embedding_dim:
        expected, why = config.embedding_dim, "the declared dimension"
    else:
        counts = present.value_counts()
        expected, why = int(min(counts.index[counts == counts.max()])), "the most common dimension"
    wrong = ((lengths >= 0) & (lengths != expected)).to_numpy()
    return pd.Series(np.where(wrong, f"embedding: wrong length (expected {expected}, {why})", None),
                     index=staged.index, dtype="object")


def _one_hot(rows: np.ndarray, codes: np.ndarray, n_rows: int, n_cols: int) -> sparse.csr_matrix:
    ok = codes >= 0
    return sparse.csr_matrix((np.ones(ok.sum()), (rows[ok], codes[ok])), shape=(n_rows, n_cols))


MODALITY = Modality(
    name="content",
    reason="the kinds of items you chose before",
    schema=SCHEMA,
    time_column="valid_from",
    daily=False,
    id_columns={"item_id": "item"},
    build_features=build_features,
    features=ContentFeatures,
    profile_column="category",
    row_rules=(embedding_length,),
)
