"""Social: directed user-to-user edges (follow, friend, trust) with a weight, valid from a date."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities.base import Modality, Vocabulary
from fusion_tasks.schemas import Column, Schema

SCHEMA = Schema(
    name="social",
    version=1,
    columns=(
        Column("src_user_id", "key"),
        Column("dst_user_id", "key"),
        Column("edge_type", "str", allowed=frozenset({"follow", "friend", "trust"})),
        Column("weight", "float", min_value=0.0, min_exclusive=True),
        Column("valid_from", "date"),
    ),
)


def build_features(staged: pd.DataFrame, vocab: Vocabulary, origin: dt.date,
                   config: RunConfig) -> dict[str, Any]:
    """``adjacency[u, v]`` = weight of u's tie to v (u follows/trusts v), edges valid by ``origin``.

    Self-loops are ignored; repeated edges keep their largest weight. ``friend`` ties are symmetric.
    """
    kept = staged.loc[(staged["valid_from"] <= pd.Timestamp(origin)) & (staged["src_user_id"] != staged["dst_user_id"])]
    src = vocab.user_index(kept["src_user_id"])
    dst = vocab.user_index(kept["dst_user_id"])
    weight = kept["weight"].to_numpy(dtype="float64")
    friend = (kept["edge_type"] == "friend").to_numpy()
    src, dst, weight = (np.concatenate([src, dst[friend]]), np.concatenate([dst, src[friend]]),
                        np.concatenate([weight, weight[friend]]))
    n = len(vocab.users)
    edges = pd.DataFrame({"src": src, "dst": dst, "w": weight}).groupby(["src", "dst"], sort=True)["w"].max()
    adjacency = sparse.csr_matrix(
        (edges.to_numpy(), (edges.index.get_level_values(0), edges.index.get_level_values(1))), shape=(n, n))
    return {"adjacency": adjacency.astype("float32"), "has_social": np.diff(adjacency.indptr) > 0}


MODALITY = Modality(
    name="social",
    schema=SCHEMA,
    time_column="valid_from",
    daily=False,
    id_columns={"src_user_id": "user", "dst_user_id": "user"},
    build_features=build_features,
    profile_column="edge_type",
)
