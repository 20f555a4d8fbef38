"""The exact top-n columns of every row of a score matrix, in about one pass over it.

``np.argpartition`` over a users x items block costs far more than the matrix product that made the scores
(a selection per row, with many equal scores in the sparse models). ``top_n`` reads the block once for the
maxima of its chunks of ``chunk`` columns: the n-th largest chunk maximum ``t`` of a row bounds its n-th
largest score from below, so only the chunks whose maximum reaches ``t`` can hold the row's top n. Those
few chunks are gathered; the scores above ``t`` (at most ``n * chunk`` per row) are sorted, and scores
equal to ``t`` fill what is left in column order.

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
        widest = min(MAX_CHUNK, columns // (MIN_CHUNKS_PER_N * max(n, 1)))
        chunk = 1 << (widest.bit_length() - 1) if widest > 0 else 0  # a power of two: maxima by halving
    if rows == 0 or n == 0 or chunk < 2 or columns // chunk < n:
        return _sorted_top(scores, n)
    full = columns // chunk * chunk
    blocks = scores[:, :full].reshape(rows, full // chunk, chunk)  # a view: splitting the column axis
    tail = np.full((rows, 1, chunk), -np.inf, dtype=scores.dtype)  # the last columns, padded to one chunk
    tail[:, 0, :columns - full] = scores[:, full:]
    maxima = np.concatenate([_last_axis_max(blocks), tail.max(axis=2)], axis=1)
    threshold = -np.partition(-maxima, n - 1, axis=1)[:, n - 1]  # the n-th largest chunk maximum
    # the chunks that can hold a top-n score, row by row and in column order
    row, which = np.nonzero(maxima >= threshold[:, None])
    in_tail = which == blocks.shape[1]
    values = np.empty((len(row), chunk), dtype=scores.dtype)
    values[~in_tail] = blocks[row[~in_tail], which[~in_tail]]
    values[in_tail] = tail[row[in_tail], 0]
    values = values.ravel()
    cols = (which[:, None] * chunk + np.arange(chunk)).ravel()
    row = np.repeat(row, chunk)
    limit = threshold[row]
    above = values > limit
    tied = (values == limit) & (cols < columns)
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
    out = np.empty((rows, n), dtype=np.int64)
    out[a_row, a_slot] = a_col
    out[t_row[keep], t_slot[keep]] = t_col[keep]
    return out


def _last_axis_max(blocks: np.ndarray) -> np.ndarray:
    """``blocks.max(axis=2)``, by halving the last axis while its length is even: an elementwise maximum of two
    halves runs over whole rows, about twice as fast here as numpy's reduction over a short last axis."""
    while blocks.shape[2] > 1 and blocks.shape[2] % 2 == 0:
        half = blocks.shape[2] // 2
        blocks = np.maximum(blocks[:, :, :half], blocks[:, :, half:])
    return blocks.max(axis=2)


def _position_in_row(row: np.ndarray, rows: int) -> np.ndarray:
    """The position of each entry among the entries of its row (``row`` sorted)."""
    starts = np.searchsorted(row, np.arange(rows))
    return np.arange(len(row)) - starts[row]


def _sorted_top(scores: np.ndarray, n: int) -> np.ndarray:
    columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((columns, -scores), axis=1)[:, :n].astype(np.int64)
