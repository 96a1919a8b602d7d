"""JSON as the benchmarks write it: strict JSON, so a figure that could not be measured
(NaN, infinity: no samples) is ``null``, never the ``NaN`` that JSON parsers refuse."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float in it (however nested) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """``value`` as indented, strict JSON (non-finite floats as null)."""
    return json.dumps(finite(value), indent=2, allow_nan=False)
