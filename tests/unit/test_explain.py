"""The API's sentence about why an item is recommended names every registered modality, the fourth included."""

from __future__ import annotations

import pytest

from fusion_tasks import modalities
from fusion_tasks.contract import CONTRIBUTION_GROUPS
from fusion_tasks.serving import REASONS, explain


def test_every_contribution_group_has_a_reason_and_each_modality_declares_its_own() -> None:
    assert set(CONTRIBUTION_GROUPS) <= set(REASONS)
    for name, modality in modalities.REGISTRY.items():
        assert modality.reason and REASONS[name] == modality.reason


@pytest.mark.parametrize("group", CONTRIBUTION_GROUPS)
def test_a_group_second_in_an_item_score_is_named_in_the_sentence(group: str) -> None:
    first = next(g for g in CONTRIBUTION_GROUPS if g != group)
    out = explain({first: 0.45, group: -0.35, **{g: 0.05 for g in CONTRIBUTION_GROUPS if g not in (first, group)}})
    assert out["main"] == first
    assert out["text"] == f"because of {REASONS[first]} and {REASONS[group]}"
    assert abs(sum(out["shares"].values()) - 1.0) < 1e-12


def test_an_item_mostly_recommended_for_its_embedding_says_so() -> None:
    out = explain({"item_embedding": 0.9, "behavior": 0.1})
    assert out["text"] == "mostly because of items that look or read like ones you chose"
