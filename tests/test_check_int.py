"""``digr.errors.check_int``: the one check behind every count-like setting."""

import numpy as np
import pytest

from digr.errors import DigrError, check_int


def test_integers_pass_and_come_back_as_int():
    assert check_int("n", 3) == 3
    got = check_int("n", np.int64(4))
    assert got == 4 and type(got) is int
    assert check_int("seed", 0, minimum=0) == 0


@pytest.mark.parametrize("value", [0, -1, 2.0, 2.5, "3", None, True, float("nan")])
def test_anything_else_is_one_clear_error(value):
    with pytest.raises(DigrError, match=r"^n must be a positive integer, got "):
        check_int("n", value)


def test_the_message_names_the_bound():
    with pytest.raises(DigrError, match="must be a non-negative integer, got -1"):
        check_int("seed", -1, minimum=0)
    with pytest.raises(DigrError, match="must be an integer >= 2, got 1"):
        check_int("states", 1, minimum=2)


def test_config_fields_that_used_to_raise_type_errors():
    """A string or None for a count no longer escapes as a TypeError/ValueError traceback."""
    from digr.distill.config import DistillConfig
    from digr.models.cnn import PolicyConfig, pooled_student_config

    with pytest.raises(DigrError, match="igr_topk"):
        DistillConfig(igr_topk=None).validate()
    base = PolicyConfig(obs_shape=(3, 64, 64), n_actions=4, convs=((8, 8, 8, 0),), hidden=16)
    with pytest.raises(DigrError, match="input_pool"):
        pooled_student_config(base, "4")


def test_an_upper_bound_is_named_in_the_message():
    assert check_int("k", 4, maximum=4) == 4
    for bad in (5, 0, "2"):
        with pytest.raises(DigrError, match=r"k must be an integer in \[1, 4\], got "):
            check_int("k", bad, maximum=4)
