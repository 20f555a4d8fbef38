"""Importers that turn external data into the landing contract (``landing/<modality>/date=D/*``).

* ``ciao.import_ciao``: the Ciao product-review data set (ratings, categories, trust network);
* ``generic.import_table``: any CSV/Parquet table with a column mapping.

Command line: ``python -m fusion_tasks.importers {ciao,generic} --help``.
"""

from __future__ import annotations

from fusion_tasks.importers.ciao import import_ciao
from fusion_tasks.importers.generic import import_table

__all__ = ["import_ciao", "import_table"]
