"""What a publish sink is: one published version of a date, and the two-step load every sink implements.

Publishing a date writes one ``Publication`` (the fused table, its metrics and how it was decided) to every
configured sink. Each sink first *prepares* the version (everything is written, nothing is visible), then
*commits* it (readers switch to it at once). ``fusion_tasks.publish`` prepares every sink before it commits
any, so an unreachable sink leaves every sink on the version that was current before.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import hashlib
from typing import Any, ClassVar

import numpy as np
import pandas as pd


class SinkError(RuntimeError):
    """A sink cannot take the publication (unreachable, wrong credentials, an older schema...)."""


@dataclasses.dataclass(frozen=True)
class Publication:
    """One version of a date, as every sink stores it.

    ``table`` has the output contract's columns (``fusion_tasks.publish.COLUMNS``); ``checksum`` is
    ``table_checksum(table)``, the same in every sink, so a reader can tell two sinks hold the same rows.
    """

    ds: dt.date
    version_id: str
    method: str
    table: pd.DataFrame
    metrics: dict[str, Any]
    checksum: str
    gate_decision: str
    config: dict[str, Any]
    published_at: dt.datetime

    @property
    def rows(self) -> int:
        return len(self.table)


@dataclasses.dataclass(frozen=True)
class CurrentVersion:
    """What a sink serves for a date: its version id and the checksum of its rows."""

    version_id: str
    checksum: str


class PreparedLoad(abc.ABC):
    """A version written into a sink but not yet visible to its readers."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the version the current one for its date, in one atomic step."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the prepared version; the sink keeps serving what it served before."""


class Sink(abc.ABC):
    """A place the published recommendations are read from; ``name`` is its registry key (its module's name)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def current(self, day: dt.date) -> CurrentVersion | None:
        """The version served for ``day``, or None when the sink has nothing for it."""

    @abc.abstractmethod
    def prepare(self, publication: Publication) -> PreparedLoad:
        """Write ``publication`` without making it visible; raise ``SinkError`` if the sink cannot take it."""


CHECKSUM_COLUMNS = ("user_id", "item_id", "rank", "score")


def table_checksum(table: pd.DataFrame) -> str:
    """sha256 of the rows in (user_id, rank) order, every number written with its exact ``repr``.

    A sink that stores doubles as doubles (Parquet, SQLite REAL, PostgreSQL double precision) gives the
    same checksum when its rows are read back, so the sinks of one version can be compared.
    """
    ordered = table.sort_values(["user_id", "rank"], kind="stable")
    contributions = [c for c in ordered.columns if c.startswith("contribution_")]
    columns = [ordered[c].to_numpy() for c in (*CHECKSUM_COLUMNS, *contributions)]
    digest = hashlib.sha256()
    digest.update(("\t".join((*CHECKSUM_COLUMNS, *contributions)) + "\n").encode())
    for values in zip(*columns, strict=True):
        digest.update(("\t".join(_text(v) for v in values) + "\n").encode())
    return digest.hexdigest()


def _text(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)
