"""The item-embedding modality: landing files with vectors or raw text, their checks, and the features it builds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities import item_embedding
from fusion_tasks.modalities.base import Vocabulary
from fusion_tasks.storage import DataRoot, read_parquet

D = dt.date(2024, 3, 10)


def land(root: DataRoot, day: dt.date, rows: list[dict]) -> None:
    path = root.landing_day("item_embedding", day) / "embeddings.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def vocab(n: int) -> Vocabulary:
    return Vocabulary(users=np.array(["u0"]), items=np.array([f"i{j}" for j in range(n)]))


def test_vectors_are_staged_as_of_the_date_and_bad_rows_are_quarantined(tmp_path) -> None:
    root = DataRoot(tmp_path)
    land(root, D - dt.timedelta(days=2), [
        {"item_id": "i0", "valid_from": "2024-03-08", "source": "image", "embedding": "1 0 0"},
        {"item_id": "i1", "valid_from": "2024-03-08", "source": "image", "embedding": "0 2 0"},
        {"item_id": "i2", "valid_from": "2024-03-08", "source": "image", "embedding": "0 0"},  # wrong length
        {"item_id": "i3", "valid_from": "2024-03-08", "source": "image", "embedding": None},  # nothing
    ])
    land(root, D + dt.timedelta(days=1), [{"item_id": "i0", "valid_from": "2024-03-11", "source": "image",
                                           "embedding": "0 0 1"}])  # after D: not read
    config = RunConfig(as_of_date=D, data_root=root.root, max_quarantine_share=0.6)
    manifest = item_embedding.MODALITY.extract(root, config)
    assert (manifest["rows_staged"], manifest["rows_quarantined"]) == (2, 2)
    assert set(manifest["quarantine_reasons"]) == {"embedding: wrong length (expected 3, the most common dimension)",
                                                   "neither an embedding nor a text"}
    staged = read_parquet(root.staged("item_embedding", D))
    features = item_embedding.build_features(staged, vocab(4), D, config)
    np.testing.assert_allclose(features.vectors[:2], [[1, 0, 0], [0, 1, 0]])  # unit length
    assert features.has_embedding.tolist() == [True, True, False, False] and not features.encoded


def test_raw_text_is_encoded_by_tfidf_and_svd_so_that_similar_texts_are_close(tmp_path) -> None:
    root = DataRoot(tmp_path)
    texts = ["red wool winter scarf", "warm wool winter hat", "red wool scarf for winter",
             "stainless steel chef knife", "steel kitchen knife set", "chef knife of carbon steel"]
    land(root, D, [{"item_id": f"i{j}", "valid_from": D.isoformat(), "source": "text", "text": t}
                   for j, t in enumerate(texts)])
    config = RunConfig(as_of_date=D, data_root=root.root)
    item_embedding.MODALITY.extract(root, config)
    staged = read_parquet(root.staged("item_embedding", D))
    first = item_embedding.build_features(staged, vocab(7), D, config)
    assert first.encoded and first.has_embedding.tolist() == [True] * 6 + [False]
    similarity = first.vectors @ first.vectors.T
    assert similarity[0, 2] > similarity[0, 3] and similarity[3, 5] > similarity[3, 0]
    again = item_embedding.build_features(staged, vocab(7), D, config)
    np.testing.assert_array_equal(first.vectors, again.vectors)  # seeded by the run: reproducible
