"""The id of a memory of the legacy SomaFractalMemory store.

The legacy store keys a memory ``f"{namespace}:{repr(coord)}:data"``, ``coord`` a tuple of Python floats; its id is
that key without ``:data``. The TypeScript side (``src/memory/legacy/memory-id.ts``) produces the same strings.
"""

from __future__ import annotations

import math
from typing import Iterable


def legacy_memory_id(namespace: str, coordinate: Iterable[float]) -> str:
    """``f"{namespace}:{repr(tuple(float(c) for c in coordinate))}"``, refusing what JSON cannot carry.

    Raises ``ValueError`` naming the element for NaN, ±Infinity, a bool, a non-number or an int too large for a float.
    """
    if not isinstance(namespace, str) or namespace == "":
        raise ValueError("namespace must be a non-empty string")
    if isinstance(coordinate, (str, bytes, dict)) or not hasattr(coordinate, "__iter__"):
        raise ValueError(f"coordinate must be a sequence of numbers, got {type(coordinate).__name__}")
    values = []
    for i, c in enumerate(coordinate):
        if isinstance(c, bool) or not isinstance(c, (int, float)):
            raise ValueError(f"coordinate[{i}] must be a number, got {type(c).__name__}")
        try:
            f = float(c)
        except OverflowError:
            raise ValueError(f"coordinate[{i}] is too large for a float") from None
        if not math.isfinite(f):
            raise ValueError(f"coordinate[{i}] must be finite, got {f!r} (JSON cannot carry NaN or Infinity)")
        values.append(f)
    return f"{namespace}:{tuple(values)!r}"
