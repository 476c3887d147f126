"""Pure-Python helpers shared by the SDK and the stand-in host."""

import math


def argmax_list(values):
    """The first index of the largest value; NaN is never the largest; 0 for no values."""
    best, best_v = 0, None
    for i, v in enumerate(values):
        if v != v:
            continue
        if best_v is None or v > best_v:
            best, best_v = i, v
    return best


def softmax_list(values):
    """Softmax in f64, the maximum subtracted first."""
    values = [float(v) for v in values]
    if not values:
        return []
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]
