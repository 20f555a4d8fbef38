"""EASE's inverse of the regularised Gram matrix."""

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
