import numpy as np
import pytest

from es_hpc.core.shaping import centered_rank, raw, shape, zscore
from es_hpc.core.update import coefficients


def test_zscore():
    r = np.array([0.0, 0.5, 1.0, 0.5])
    z = zscore(r)
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    assert np.array_equal(zscore(np.full(5, 0.3)), np.zeros(5))


def test_centered_rank_with_ties():
    w = centered_rank(np.array([0.1, 0.9, 0.5, 0.5]))
    assert w.tolist() == pytest.approx([-0.5, 0.5, 0.0, 0.0])
    assert centered_rank(np.array([3.0, 1.0, 2.0])).tolist() == pytest.approx([0.5, -0.5, 0.0])
    assert centered_rank(np.array([2.0])).tolist() == [0.0]


def test_raw_and_dispatch():
    r = np.array([0.25, 0.75])
    assert np.array_equal(raw(r), r)
    assert np.array_equal(shape(r, "zscore"), zscore(r))


def test_coefficients_forms_and_signs():
    r = np.array([1.0, 0.0, 1.0, 1.0])
    signs = np.array([1, -1, 1, -1], dtype=np.int8)
    eq1 = coefficients(r, signs, sigma=0.01, alpha=0.1, shaping="raw", update_form="eq1")
    assert eq1.tolist() == pytest.approx([0.1 / (4 * 0.01) * x for x in [1, 0, 1, -1]])
    qiu = coefficients(r, signs, sigma=0.01, alpha=0.1, shaping="raw", update_form="qiu")
    assert qiu.tolist() == pytest.approx([0.1 / 4 * x for x in [1, 0, 1, -1]])


def test_nan_reward_is_an_error():
    with pytest.raises(FloatingPointError, match="member 2"):
        coefficients(np.array([0.0, 1.0, np.nan]), np.ones(3, np.int8), sigma=1, alpha=1, shaping="raw", update_form="eq1")
