import numpy as np
import pytest

from clrepro import metrics

# A hand-made 3-task run: rows = after task i, columns = task j.
R = np.array([[0.8, 0.3, 0.2],
              [0.6, 0.9, 0.4],
              [0.5, 0.7, 0.95]])
B = np.array([0.1, 0.2, 0.25])


def test_acc_is_mean_of_last_row():
    assert metrics.acc(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)


def test_bwt_by_hand():
    # ((0.5 - 0.8) + (0.7 - 0.9)) / (T - 1)
    assert metrics.bwt(R) == pytest.approx(-0.25)


def test_fwt_uses_random_init_baseline():
    # ((R[0,1] - b1) + (R[1,2] - b2)) / (T - 1) = ((0.3 - 0.2) + (0.4 - 0.25)) / 2
    assert metrics.fwt(R, B) == pytest.approx(0.125)


def test_code_normalisation_scales_by_t_minus_1_over_t():
    assert metrics.bwt(R, "code") == pytest.approx(metrics.bwt(R) * 2 / 3)
    assert metrics.fwt(R, B, "code") == pytest.approx(metrics.fwt(R, B) * 2 / 3)
    with pytest.raises(ValueError):
        metrics.bwt(R, "bogus")


def test_weighted_final_accuracy_counts_examples():
    assert metrics.weighted_final_accuracy(R, [100, 100, 200]) == pytest.approx(
        (0.5 * 100 + 0.7 * 100 + 0.95 * 200) / 400)


def test_single_task_transfer_is_undefined():
    assert np.isnan(metrics.bwt(R[:1, :1]))
