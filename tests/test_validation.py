"""One rule per kind of argument (nc_keras.validation), with one answer everywhere."""

import numpy as np
import pytest

from nc_keras import models, ufm, validation
from nc_keras.collapse import CollapseStatistics
from nc_keras.layers import SimplexETF, simplex_etf


@pytest.mark.parametrize("value, expected", [(3, 3), (3.0, 3), (np.int64(4), 4), (np.float32(2), 2)])
def test_class_count_takes_whole_numbers(value, expected):
    assert validation.class_count(value) == expected
    assert type(validation.class_count(value)) is int


@pytest.mark.parametrize("value, message", [
    (2.7, "must be an integer; got 2.7"),
    (1, "must be an integer >= 2; got 1"),
    ("3", "must be an integer; got '3'"),
    (True, "must be an integer; got True"),
    (float("nan"), "must be an integer; got nan"),
    (None, "must be an integer; got None"),
])
def test_class_count_refuses_the_rest(value, message):
    with pytest.raises(ValueError, match="num_classes " + message):
        validation.class_count(value)


def test_every_entry_point_gives_the_same_answer_for_3_0_and_2_7():
    # 3.0 is 3 classes everywhere ...
    assert CollapseStatistics(3.0).num_classes == 3
    assert ufm.class_counts(3.0, 2).tolist() == [2, 2, 2]
    assert simplex_etf(3.0, 4).shape == (4, 3)
    assert SimplexETF(3.0).units == 3
    model = models.mlp(3.0, width=4, depth=1, input_shape=(2,))
    assert model.get_layer("classifier").kernel.shape == (4, 3)
    # ... and 2.7 a ValueError naming the argument everywhere.
    for build in (lambda: CollapseStatistics(2.7), lambda: ufm.class_counts(2.7, 2),
                  lambda: simplex_etf(2.7, 4), lambda: models.mlp(2.7, input_shape=(2,))):
        with pytest.raises(ValueError, match=r"num_classes must be an integer; got 2\.7"):
            build()
    with pytest.raises(ValueError, match=r"units \(the number of classes K\) must be an integer"):
        SimplexETF(2.7)


def test_positive_and_nonnegative():
    assert validation.positive(2, "rate") == 2.0
    assert validation.nonnegative(0, "decay") == 0.0
    for wrong in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rate must be finite and > 0"):
            validation.positive(wrong, "rate")
    with pytest.raises(ValueError, match="decay must be finite and >= 0"):
        validation.nonnegative(-1e-9, "decay")
    with pytest.raises(ValueError, match="decay must be a number; got '1'"):
        validation.nonnegative("1", "decay")


def test_labels_one_rule():
    np.testing.assert_array_equal(validation.labels([0, 2, 1], 3), [0, 2, 1])
    np.testing.assert_array_equal(validation.labels(np.array([[1], [0]]), 3), [1, 0])
    np.testing.assert_array_equal(validation.labels(np.array([2.0, 0.0]), 3), [2, 0])
    np.testing.assert_array_equal(validation.labels(np.eye(3)[[2, 0]], 3), [2, 0])
    assert validation.labels([1, 2], 3).dtype == np.int64
    cases = [
        (([0, 3], 3), r"1 label\(s\) outside \[0, 3\)"),
        (([-1, 0], 3), r"outside \[0, 3\), e.g. \[-1\]"),
        (([0.5, 1.0], 3), r"labels must be whole numbers \(integers, or floats such as 2.0\); got dtype float64 with 1 other"),
        ((np.full((2, 3), 1 / 3), 3), "exact one-hot"),
        ((np.zeros((2, 2, 2), int), 3), r"labels must have shape \(N,\)"),
        (([0, 1], 3, 3), r"one entry per sample \(3\); got 2"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            validation.labels(*arguments)
