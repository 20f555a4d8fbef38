"""The exact top-n columns of every row of a score matrix, in about one pass over it.

``np.argpartition`` over a users x items block costs far more than the matrix product that made the scores
(a selection per row, with many equal scores in the sparse models). ``top_n`` reads the block once for the
maxima of its chunks of ``chunk`` columns: the n-th largest chunk maximum ``t`` of a row bounds its n-th
largest score from below, so only the scores at or above ``t`` can be in the row's top n. A second pass
compares the block with ``t`` and picks those few cells; the ones above ``t`` (at most ``(n - 1) * chunk``: they
lie in the n - 1 chunks whose maximum is above ``t``) are sorted, and scores equal to ``t`` fill what is left in
column order. A chunk is a stride of the row, not a run of it (columns ``g, g + G, g + 2G, ...`` for
``G = columns // chunk`` chunks): its maxima are then elementwise maxima of whole contiguous runs, several times
faster than reducing short runs; the columns from ``G * chunk`` on are one more chunk.

When the chunks that reach ``t`` are a small share of a row (``n * chunk <= GATHER_SHARE * columns``: few places
among many items, as when tuning ranks a large catalogue for NDCG@10), their cells are gathered instead of
comparing the whole block: a gathered cell costs many compared ones (each is on its own cache line), so this
pays only when the share is that small.

A row where many chunks reach ``t`` (ties there: a sparse model's zeros) is read again on its own: above ``t``,
then the first columns equal to it; so what the comparison picks is bounded by ``n * (chunk + 1)`` a row.

Order, exactly: score descending, then column ascending; so ties are broken by the lower column, also at
the n-th place. ``-inf`` ranks last like any score (callers mask with it and drop those cells); NaN is not
allowed.
"""

from __future__ import annotations

import numpy as np

# below this many chunks per row, a plain sort of the row is as fast; at CHUNKS_PER_N chunks per place, t is
# close to the n-th largest score (few cells to pick), and their partition costs little beside the block
MIN_CHUNKS_PER_N = 4
CHUNKS_PER_N = 8
MAX_CHUNK = 64
# when the chunks that reach the threshold hold at most this share of a row (n * chunk of its columns), their cells
# are gathered instead of comparing the whole block with the threshold. Measured on 2 cores: 512 x 98,000 with
# n = 10 (1/153 of a row), 41 -> 24 ms; with n = 50 (1/31), 44 -> 56 ms; 512 x 30,000, n = 10 (1/47), 11 -> 12 ms
GATHER_SHARE = 1 / 64


def top_n(scores: np.ndarray, n: int, chunk: int | None = None) -> np.ndarray:
    """``(rows, min(n, columns))`` column indices of each row's largest scores, best first (see module)."""
    scores = np.asarray(scores)
    rows, columns = scores.shape
    n = min(n, columns)
    if chunk is None:
        chunk = min(MAX_CHUNK, columns // (CHUNKS_PER_N * max(n, 1)))
        if chunk < 2:
            chunk = min(MAX_CHUNK, columns // (MIN_CHUNKS_PER_N * max(n, 1)))
    if rows == 0 or n == 0 or chunk < 2 or columns // chunk < n:
        return _sorted_top(scores, n)
    groups = columns // chunk
    full = groups * chunk
    maxima = scores[:, :full].reshape(rows, chunk, groups).max(axis=1)
    if full < columns:
        maxima = np.concatenate([maxima, scores[:, full:].max(axis=1, keepdims=True)], axis=1)
    place = maxima.shape[1] - n
    threshold = np.partition(maxima, place, axis=1)[:, place]  # the n-th largest chunk maximum
    # the cells at or above t lie in the chunks whose maximum reaches it: a row with many such chunks (ties at
    # t, a sparse model's zeros) may have most of its cells there, and is read on its own; the others have at
    # most n * (chunk + 1) cells to pick, so what is picked stays a small multiple of n per row
    reach = maxima >= threshold[:, None]
    heavy = np.flatnonzero(reach.sum(axis=1) * chunk > n * (chunk + 1))
    out = np.empty((rows, n), dtype=np.int64)
    if n * chunk <= GATHER_SHARE * columns and scores.flags.c_contiguous:
        reach[heavy] = False
        _fill(out, *_gather(scores, threshold, reach, chunk, groups), n)
    else:
        light = np.setdiff1d(np.arange(rows), heavy, assume_unique=True) if len(heavy) else None
        block = scores if light is None else scores[light]
        flat = np.flatnonzero(block >= threshold[:, None] if light is None else block >= threshold[light, None])
        row, cols = np.divmod(flat, columns)
        _fill(out, row if light is None else light[row], cols, block.reshape(-1)[flat], n)
    for r in heavy:  # a loop over few rows costs less than their cells for all
        values, limit = scores[r], threshold[r]
        above = np.flatnonzero(values > limit)
        above = above[np.lexsort((above, -values[above]))][:n]
        out[r] = np.concatenate([above, np.flatnonzero(values == limit)[: n - len(above)]])
    return out


def _gather(scores: np.ndarray, threshold: np.ndarray, reach: np.ndarray, chunk: int,
            groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells at or above their row's threshold among the chunks that reach it (``reach``: rows x chunks), in
    (row, column) order: rows, columns and scores. Chunk g < G holds columns g + c G; the last one, full + c."""
    columns = scores.shape[1]
    full = groups * chunk
    row, group = np.nonzero(reach)
    cols = group[:, None] + np.arange(0, full, groups)
    tail = np.flatnonzero(group == groups)
    cols[tail] = full + np.arange(chunk)  # past the last column when the tail is shorter than a chunk
    cells = (row * columns)[:, None] + cols
    if full < columns:
        cells = cells[cols < columns]
    cells = cells.reshape(-1)
    values = scores.reshape(-1)[cells]
    keep = values >= np.repeat(threshold[row], chunk) if full == columns else values >= threshold[cells // columns]
    cells = np.sort(cells[keep])
    row, cols = np.divmod(cells, columns)
    return row, cols, scores.reshape(-1)[cells]


def _fill(out: np.ndarray, row: np.ndarray, cols: np.ndarray, values: np.ndarray, n: int) -> None:
    """Write into ``out`` the top n of the rows present in ``row``, from every cell ``(row, cols)`` of theirs at or
    above their threshold (at least n per row), given in (row, column) order: one stable sort by row, then score
    descending, keeps equal scores in column order. The rows stay where they were (they were sorted), so a row's
    top n are the first n of its run."""
    if not len(row):
        return
    bits = (values + np.float32(0)).astype(np.float32, copy=False).view(np.int32)  # + 0: -0.0 becomes 0.0
    ascending = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # an int32 in the order of the floats
    key = (row.astype(np.int64) << 32) | (np.int64(0x7FFFFFFF) - ascending)
    cols = cols[np.argsort(key, kind="stable")]
    first = np.flatnonzero(np.concatenate([[True], row[1:] != row[:-1]]))  # where each present row's run starts
    out[row[first]] = cols[first[:, None] + np.arange(n)]


def _sorted_top(scores: np.ndarray, n: int) -> np.ndarray:
    columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((columns, -scores), axis=1)[:, :n].astype(np.int64)
