import math

import pytest

from sfm_events import legacy_memory_id


@pytest.mark.parametrize(
    "namespace, coordinate, expected",
    [
        ("default", [1, 2, 3], "default:(1.0, 2.0, 3.0)"),
        ("ns", (0.5,), "ns:(0.5,)"),
        ("ns", [1e-05, -0.0, 1e16], "ns:(1e-05, -0.0, 1e+16)"),
        ("ns", [0.1 + 0.2, 3], "ns:(0.30000000000000004, 3.0)"),
        ("ns", [], "ns:()"),
    ],
)
def test_the_legacy_key_without_data(namespace, coordinate, expected):
    assert legacy_memory_id(namespace, coordinate) == expected
    # The legacy store's own expression, as it keys kv_store.
    assert f"{namespace}:{repr(tuple(float(c) for c in coordinate))}:data" == expected + ":data"


@pytest.mark.parametrize(
    "coordinate, message",
    [
        ([1.0, math.nan], r"coordinate\[1\] must be finite"),
        ([math.inf], r"coordinate\[0\] must be finite"),
        ([1.0, "2"], r"coordinate\[1\] must be a number, got str"),
        ([True], r"coordinate\[0\] must be a number, got bool"),
        ([10**400], r"coordinate\[0\] is too large"),
        ("1,2,3", "must be a sequence of numbers"),
    ],
)
def test_refuses_what_json_cannot_carry(coordinate, message):
    with pytest.raises(ValueError, match=message):
        legacy_memory_id("ns", coordinate)
