"""EASE's inverse of the regularised Gram matrix."""

import subprocess
import sys

import numpy as np
import pytest

from fusion_tasks.models.ease import _spd_inverse


def test_the_inverse_is_exactly_symmetric_and_inverts_the_matrix():
    rng = np.random.default_rng(0)
    x = (rng.random((400, 120)) < 0.1).astype("float32")
    gram = x.T @ x + 5.0 * np.eye(120, dtype="float32")
    inverse = _spd_inverse(gram.copy(order="F"))
    assert inverse.dtype == np.float32
    np.testing.assert_array_equal(inverse, inverse.T)
    np.testing.assert_allclose(inverse @ gram, np.eye(120), atol=1e-4)
    np.testing.assert_allclose(inverse, np.linalg.inv(gram.astype("float64")), rtol=1e-4, atol=1e-6)


def test_a_matrix_that_is_not_positive_definite_is_refused():
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        _spd_inverse(np.array([[1.0, 2.0], [2.0, 1.0]], dtype="float32"))


def test_the_first_fit_in_a_process_has_the_same_bits_as_the_next():
    """threadpoolctl limits only the BLAS libraries already loaded: SciPy's, loaded by the first inverse,
    once ran that inverse on every core, so a date's rerun in a new process changed a fold's EASE scores
    in the seventh digit and the republished table differed from the first one."""
    script = """
import hashlib
import numpy as np, scipy.sparse as sp
from fusion_tasks.models.ease import EASERecommender
from types import SimpleNamespace
x = sp.random(3000, 600, density=0.04, random_state=1, format="csr")
x.data[:] = 1.0
data = SimpleNamespace(interactions=x, item_known=np.ones(600, dtype=bool), n_items=600)  # what fit reads
print(*(hashlib.sha256(EASERecommender(l2=50.0).fit(data).weights_.tobytes()).hexdigest() for _ in range(2)))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    first, second = out.stdout.split()
    assert first == second


def test_mirroring_the_lower_triangle_gives_a_symmetric_matrix_with_the_same_lower_triangle() -> None:
    from fusion_tasks.models.ease import _mirror_lower

    rng = np.random.default_rng(0)
    for n in (1, 5, 256, 257, 600):  # within one block, exactly one, and a last partial block
        matrix = rng.random((n, n)).astype("float32")
        expected = np.tril(matrix) + np.tril(matrix, -1).T
        np.testing.assert_array_equal(_mirror_lower(matrix.copy(), block=256), expected)
