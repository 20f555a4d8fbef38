"""The exact top-n columns of every row of a score matrix, in about one pass over it.

``np.argpartition`` over a users x items block costs far more than the matrix product that made the scores
(a selection per row, with many equal scores in the sparse models). ``top_n`` reads the block once for the
maxima of its chunks of ``chunk`` columns: the n-th largest chunk maximum ``t`` of a row bounds its n-th
largest score from below, so only the chunks whose maximum reaches ``t`` can hold the row's top n. Those
few chunks are gathered; the scores above ``t`` (at most ``n * chunk`` per row) are sorted, and scores
equal to ``t`` fill what is left in column order. A chunk is a stride of the row, not a run of it
(columns ``g, g + G, g + 2G, ...`` for ``G = columns // chunk`` chunks): its maxima are then elementwise
maxima of whole contiguous runs, several times faster than reducing short runs.

Order, exactly: score descending, then column ascending; so ties are broken by the lower column, also at
the n-th place. ``-inf`` ranks last like any score (callers mask with it and drop those cells); NaN is not
allowed.
"""

from __future__ import annotations

import numpy as np

# below this many chunks per row, a plain sort of the row is as fast
MIN_CHUNKS_PER_N = 4
MAX_CHUNK = 64


def top_n(scores: np.ndarray, n: int, chunk: int | None = None) -> np.ndarray:
    """``(rows, min(n, columns))`` column indices of each row's largest scores, best first (see module)."""
    scores = np.asarray(scores)
    rows, columns = scores.shape
    n = min(n, columns)
    if chunk is None:
        chunk = min(MAX_CHUNK, columns // (MIN_CHUNKS_PER_N * max(n, 1)))
    if rows == 0 or n == 0 or chunk < 2 or columns // chunk < n:
        return _sorted_top(scores, n)
    groups = columns // chunk
    full = groups * chunk
    # chunk g holds the columns g, g + groups, g + 2 groups, ...: its maximum is an elementwise maximum of
    # ``chunk`` contiguous runs of a row (a fast reduction); the columns from ``full`` on are one more chunk
    maxima = scores[:, :full].reshape(rows, chunk, groups).max(axis=1)
    if full < columns:
        maxima = np.concatenate([maxima, scores[:, full:].max(axis=1, keepdims=True)], axis=1)
    threshold = -np.partition(-maxima, n - 1, axis=1)[:, n - 1]  # the n-th largest chunk maximum
    candidate = maxima >= threshold[:, None]
    # a row whose candidate chunks cover most of it (equal scores: a sparse model's zeros) is read whole
    heavy = candidate.sum(axis=1) * chunk * 2 > columns
    out = np.empty((rows, n), dtype=np.int64)
    if not heavy.all():
        row, cols = _columns_of(*np.nonzero(candidate & ~heavy[:, None]), rows, columns, chunk, groups)
        _fill(out, row, cols, scores[row, cols], threshold, n)
    for r in np.flatnonzero(heavy):  # few rows, each read whole: a loop costs less than cells for all
        values, limit = scores[r], threshold[r]
        above = np.flatnonzero(values > limit)
        above = above[np.lexsort((above, -values[above]))][:n]
        out[r] = np.concatenate([above, np.flatnonzero(values == limit)[: n - len(above)]])
    return out


def _fill(out: np.ndarray, row: np.ndarray, cols: np.ndarray, values: np.ndarray, threshold: np.ndarray,
          n: int) -> None:
    """Write into ``out`` the top n of the rows present in ``row``, from their cells ``(row, cols)`` at or above
    the row's ``threshold`` (every cell that can be in the top n), given in (row, column) order."""
    rows = len(out)
    limit = threshold[row]
    above = values > limit
    tied = values == limit
    # above the threshold: sorted, at most n per row kept
    a_row, a_col, a_val = row[above], cols[above], values[above]
    order = np.lexsort((a_col, -a_val, a_row))
    a_row, a_col = a_row[order], a_col[order]
    a_slot = _position_in_row(a_row, rows)
    keep = a_slot < n
    a_row, a_col, a_slot = a_row[keep], a_col[keep], a_slot[keep]
    taken = np.bincount(a_row, minlength=rows)
    # at the threshold: already in (row, column) order; the first ones fill each row
    t_row, t_col = row[tied], cols[tied]
    t_slot = _position_in_row(t_row, rows) + taken[t_row]
    keep = t_slot < n
    out[a_row, a_slot] = a_col
    out[t_row[keep], t_slot[keep]] = t_col[keep]


def _columns_of(row: np.ndarray, which: np.ndarray, rows: int, columns: int, chunk: int,
                groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (row, column) of the chunks ``(row, which)`` (sorted by row, then chunk; chunk ``groups`` is the
    last columns), in (row, column) order: within a row, column ``k * groups + g`` of chunk ``g`` comes k-th
    among its row's strided chunks, and the last columns follow them."""
    strided = which < groups
    per_row = np.bincount(row[strided], minlength=rows)
    tail_width = columns - groups * chunk
    has_tail = np.bincount(row[~strided], minlength=rows).astype(bool)
    sizes = per_row * chunk + has_tail * tail_width
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out_cols = np.empty(int(sizes.sum()), dtype=np.int64)
    s_row, s_which = row[strided], which[strided]
    first = np.searchsorted(s_row, np.arange(rows))  # each row's first strided chunk
    position = np.arange(len(s_row)) - first[s_row]
    k = np.arange(chunk)
    out_cols[(base[s_row] + position)[:, None] + k * per_row[s_row][:, None]] = k * groups + s_which[:, None]
    t_rows = np.flatnonzero(has_tail)
    if len(t_rows):
        j = np.arange(tail_width)
        out_cols[(base[t_rows] + per_row[t_rows] * chunk)[:, None] + j] = groups * chunk + j
    return np.repeat(np.arange(rows), sizes), out_cols


def _position_in_row(row: np.ndarray, rows: int) -> np.ndarray:
    """The position of each entry among the entries of its row (``row`` sorted)."""
    starts = np.searchsorted(row, np.arange(rows))
    return np.arange(len(row)) - starts[row]


def _sorted_top(scores: np.ndarray, n: int) -> np.ndarray:
    columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((columns, -scores), axis=1)[:, :n].astype(np.int64)
