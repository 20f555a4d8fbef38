"""Social: directed user-to-user edges (follow, friend, trust) with a weight, valid from a date."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities import behavior
from fusion_tasks.modalities.base import Features, Modality, Vocabulary
from fusion_tasks.schemas import Column, Schema
from fusion_tasks.storage import DataRoot

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


@dataclasses.dataclass(frozen=True)
class SocialFeatures(Features):
    """``adjacency``: users x users, the weight of u's tie to v; ``has_social``: users with a tie."""

    adjacency: sparse.csr_matrix
    has_social: np.ndarray

    def is_empty(self) -> bool:
        return self.adjacency.nnz == 0


def build_features(staged: pd.DataFrame, vocab: Vocabulary, origin: dt.date,
                   config: RunConfig) -> SocialFeatures:
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
    return SocialFeatures(adjacency=adjacency.astype("float32"), has_social=np.diff(adjacency.indptr) > 0)


def self_ties(staged: pd.DataFrame, root: DataRoot, config: RunConfig) -> pd.Series:
    """An edge from a user to themselves is rejected."""
    same = (staged["src_user_id"] == staged["dst_user_id"]).to_numpy(dtype=bool, na_value=False)
    return pd.Series(np.where(same, "self-tie (src_user_id equals dst_user_id)", None), index=staged.index,
                     dtype="object")


def unknown_endpoints(staged: pd.DataFrame, root: DataRoot, config: RunConfig) -> pd.Series:
    """With ``ties_of_unknown_users="quarantine"``, an edge whose source or destination is not a user
    of the behaviour data as of D (no valid event by the end of D) is rejected: no event backs that
    user. The default ``"keep"`` accepts it: a user who joined and followed people before doing
    anything is a normal cold user, and their ties are what can be recommended from."""
    if config.ties_of_unknown_users == "keep":
        return pd.Series(None, index=staged.index, dtype="object")
    users = set(behavior.MODALITY.history(root, config).staged["user_id"].astype(str).unique())
    src = ~staged["src_user_id"].astype(str).isin(users).to_numpy()
    dst = ~staged["dst_user_id"].astype(str).isin(users).to_numpy()
    reasons = np.where(src, "src_user_id: not a user of the behaviour data",
                       np.where(dst, "dst_user_id: not a user of the behaviour data", None))
    return pd.Series(reasons, index=staged.index, dtype="object")


MODALITY = Modality(
    name="social",
    reason="what people you trust rated",
    schema=SCHEMA,
    time_column="valid_from",
    daily=False,
    id_columns={"src_user_id": "user", "dst_user_id": "user"},
    build_features=build_features,
    features=SocialFeatures,
    profile_column="edge_type",
    row_rules=(self_ties, unknown_endpoints),
)
