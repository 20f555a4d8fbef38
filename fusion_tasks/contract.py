"""The published recommendation table's columns, shared by the fusion methods, publishing and every sink.

Each row is one (user, item) of a user's top K: its rank (1..n), the fused score and the score's additive
parts, one ``contribution_<group>`` per modality group: one per registered modality (``behavior``, ``content``,
``social``, ...: the base models of that modality), ``cross`` (learned interactions between modalities) and
``context`` (pool features that belong to no single model). The parts sum to the score.
"""

from __future__ import annotations

from fusion_tasks import catalogue

GROUPS = (*catalogue.modalities(), "cross")
CONTRIBUTION_GROUPS = (*GROUPS, "context")
CONTRIBUTIONS = [f"contribution_{g}" for g in CONTRIBUTION_GROUPS]
COLUMNS = ["user_id", "item_id", "rank", "score", *CONTRIBUTIONS]

# The Airflow Asset the publish task updates, with ``{"ds", "version", "rows", "method", "checksum"}`` in each
# event's extra; a downstream DAG scheduled on it reads the published date (see dags/fusionrec_export.py).
ASSET_NAME = "fusionrec_recommendations"
ASSET_URI = "fusionrec://recommendations"
