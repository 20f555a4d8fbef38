"""The registry of modalities.

A new modality is one module ``fusion_tasks/modalities/<name>.py`` defining a ``Modality`` named ``<name>``
(see ``fusion_tasks.catalogue``); ``behavior`` is required by every run, the others are optional.
"""

from __future__ import annotations

from fusion_tasks import catalogue
from fusion_tasks.modalities.base import Modality, Vocabulary

REGISTRY: dict[str, Modality] = catalogue.load("modalities", Modality)


def get(name: str) -> Modality:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; registered: {sorted(REGISTRY)}") from None


__all__ = ["REGISTRY", "Modality", "Vocabulary", "get"]
