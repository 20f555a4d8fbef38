"""The registry of modalities. A new modality is a module with a ``MODALITY`` listed here."""

from __future__ import annotations

from fusion_tasks.modalities import behavior, content, social
from fusion_tasks.modalities.base import Modality, Vocabulary

REGISTRY: dict[str, Modality] = {m.name: m for m in (behavior.MODALITY, content.MODALITY, social.MODALITY)}


def get(name: str) -> Modality:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; registered: {sorted(REGISTRY)}") from None


__all__ = ["REGISTRY", "Modality", "Vocabulary", "get"]
