"""The names of every implementation of each extension point, read from the package folders.

An extension point is a package of the library whose implementation modules are named after what they
register: ``fusion_tasks/models/als.py`` registers the base model ``als``, ``fusion_tasks/modalities/social.py``
the modality ``social``. The other modules of the package (its framework: the interface, shared helpers) are
listed here. Listing names costs one directory read and imports nothing, so the DAG file builds one task per
implementation at parse time without numpy, pandas or TensorFlow; each registry imports the modules when it is
built and checks that module and name agree (``tests/test_registries.py`` runs every implementation).

Adding a model, a modality, a fusion method or a sink is adding its module: nothing here changes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent

# extension point -> (its package under fusion_tasks/, the package's framework modules)
EXTENSION_POINTS: dict[str, tuple[str, frozenset[str]]] = {
    "modalities": ("modalities", frozenset({"base"})),
    "models": ("models", frozenset({"base", "tuning"})),
    "methods": ("fusion", frozenset({"base", "candidates", "methods"})),
    "sinks": ("sinks", frozenset({"base", "connections"})),
}
# listed first: the modality every run needs (it defines users, items and relevance), the sink that is the
# source of truth (it commits first)
FIRST = {"modalities": "behavior", "sinks": "files"}


def names(point: str) -> tuple[str, ...]:
    """The implementation names of ``point`` in name order (``FIRST`` first)."""
    try:
        package, framework = EXTENSION_POINTS[point]
    except KeyError:
        raise KeyError(f"unknown extension point {point!r}; known: {sorted(EXTENSION_POINTS)}") from None
    found = sorted(path.stem for path in (PACKAGE / package).glob("*.py")
                   if not path.stem.startswith("_") and path.stem not in framework)
    found.sort(key=lambda name: name != FIRST.get(point))
    return tuple(found)


def module_name(point: str, name: str) -> str:
    """The importable module of implementation ``name`` of ``point``."""
    return f"fusion_tasks.{EXTENSION_POINTS[point][0]}.{name}"


def load(point: str, kind: type) -> dict[str, Any]:
    """Import every implementation of ``point``: name -> the one object its module defines that is a
    subclass (or, for a declarative extension point such as modalities, an instance) of ``kind`` and whose
    ``name`` is the module's name. Raises ``TypeError`` when a module defines none or several."""
    registry = {}
    for name in names(point):
        module = importlib.import_module(module_name(point, name))
        found = [obj for obj in vars(module).values()
                 if (isinstance(obj, type) and issubclass(obj, kind) and vars(obj).get("name") == name)
                 or (isinstance(obj, kind) and getattr(obj, "name", None) == name)]
        if len(found) != 1:
            raise TypeError(f"{module.__name__} must define exactly one {kind.__name__} named {name!r} (the module's "
                            f"name); found {len(found)}")
        registry[name] = found[0]
    return registry


def modalities() -> tuple[str, ...]:
    return names("modalities")


def models() -> tuple[str, ...]:
    return names("models")


def methods() -> tuple[str, ...]:
    return names("methods")


def sinks() -> tuple[str, ...]:
    return names("sinks")
