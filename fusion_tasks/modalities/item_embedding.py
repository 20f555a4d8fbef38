"""Item embeddings: a dense vector per item (an image or text embedding computed upstream), or raw item text
that the modality encodes itself; versioned by ``valid_from``.

Landing files ``landing/item_embedding/date=YYYY-MM-DD/*.csv|parquet``, columns ``item_id``, ``valid_from``,
``source`` (what made the vector: ``image``, ``text``, a model name; watched for drift), ``embedding``
(a list of numbers, or space-separated numbers in CSV) and, optionally, ``text``. A row needs an embedding or
a text. The modality is optional: a data set without these files runs without it.

Features at an origin: the latest version of each item valid by then. When no item has an upstream vector,
the items' texts are encoded by TF-IDF and a truncated SVD fitted on the texts valid at that origin (seeded
by the run); upstream vectors and encoded texts are never mixed, as they live in different spaces.
Vectors are L2-normalised; items without one are zero rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities.base import Features, Modality, Vocabulary
from fusion_tasks.modalities.content import as_of, embedding_length
from fusion_tasks.schemas import Column, Schema
from fusion_tasks.storage import DataRoot

SCHEMA = Schema(
    name="item_embedding",
    version=1,
    columns=(
        Column("item_id", "key"),
        Column("valid_from", "date"),
        Column("source", "str", nullable=True),
        Column("embedding", "vector", required=False, nullable=True),
        Column("text", "str", required=False, nullable=True),
    ),
)
TEXT_DIMENSIONS = 32  # the encoder's output size (at most the number of texts and terms, less one)


@dataclasses.dataclass(frozen=True)
class ItemEmbeddingFeatures(Features):
    """``vectors``: items x d float32, L2-normalised rows (zero for items without a vector); ``has_embedding``:
    which items have one; ``encoded``: whether the vectors came from the items' texts."""

    vectors: np.ndarray
    has_embedding: np.ndarray
    encoded: bool

    def is_empty(self) -> bool:
        return not self.has_embedding.any()


def build_features(staged: pd.DataFrame, vocab: Vocabulary, origin: dt.date,
                   config: RunConfig) -> ItemEmbeddingFeatures:
    """The vectors valid on ``origin`` (see the module docstring)."""
    current = as_of(staged, origin)  # the latest version of each item valid on the origin
    rows = vocab.item_index(current["item_id"])
    current, rows = current.loc[rows >= 0], rows[rows >= 0]
    present = current["embedding"].notna().to_numpy()
    encoded = not present.any() and current["text"].notna().any()
    if encoded:
        present = current["text"].notna().to_numpy()
        texts = current.loc[present, "text"].astype(str).tolist()
        values = encode_texts(texts, config.seed_for("item_text", origin.isoformat()))
    elif present.any():
        values = np.vstack(current.loc[present, "embedding"].to_numpy()).astype("float32")
    else:
        values = np.zeros((0, 0), dtype="float32")
    vectors = np.zeros((len(vocab.items), values.shape[1]), dtype="float32")
    vectors[rows[present]] = values
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return ItemEmbeddingFeatures(vectors=vectors, has_embedding=norms[:, 0] > 0, encoded=bool(encoded))


def encode_texts(texts: list[str], seed: int, dimensions: int = TEXT_DIMENSIONS) -> np.ndarray:
    """TF-IDF (unigrams and bigrams, sublinear) then a truncated SVD: one dense row per text."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit_transform(texts)
    k = min(dimensions, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
    if k < 1:
        return tfidf.toarray().astype("float32")
    return TruncatedSVD(n_components=k, random_state=seed % 2**32).fit_transform(tfidf).astype("float32")


def vector_or_text(staged: pd.DataFrame, root: DataRoot, config: RunConfig) -> pd.Series:
    """A row with neither an embedding nor a text says nothing about its item: rejected."""
    empty = (staged["embedding"].isna() & staged["text"].isna()).to_numpy()
    return pd.Series(np.where(empty, "neither an embedding nor a text", None), index=staged.index, dtype="object")


MODALITY = Modality(
    name="item_embedding",
    reason="items that look or read like ones you chose",
    schema=SCHEMA,
    time_column="valid_from",
    daily=False,
    id_columns={"item_id": "item"},
    build_features=build_features,
    features=ItemEmbeddingFeatures,
    profile_column="source",
    row_rules=(vector_or_text, embedding_length),
)
