"""A stand-in for the engine's `tensors` host interface, in plain Python, for running a router
in CPython (`routereval-sdk check`) without building a component.

It keeps the engine's semantics (handles, shapes, f32/f64 storage, ties to the lower index,
sums in f64 in order) but not its speed or its sandbox: use it on small data, then build. The
kernels can be switched off (`set_kernels(False)`) to exercise a router's pure-Python paths,
as the engine's `--no-host-kernels` policy does.
"""

from array import array
from enum import Enum
import math
import sys


class Dtype(Enum):
    F32 = 0
    F64 = 1


class TensorShape:
    def __init__(self, rows, cols, dtype):
        self.rows, self.cols, self.dtype = rows, cols, dtype


_TABLE = []
_KERNELS = [True]
LOG = []


def reset():
    """Forgets every tensor (a new evaluation)."""
    _TABLE.clear()
    LOG.clear()


def set_kernels(on):
    _KERNELS[0] = bool(on)


def log(level, message):
    LOG.append(f"[{level}] {message}")


def _hold(rows, cols, dtype, values):
    if len(values) != rows * cols:
        raise ValueError(f"{len(values)} values for a {rows} x {cols} tensor")
    _TABLE.append((rows, cols, dtype, values))
    return len(_TABLE) - 1


def _get(kernel, t):
    if not isinstance(t, int) or t < 0 or t >= len(_TABLE) or _TABLE[t] is None:
        raise ValueError(
            f"{kernel}: tensor {t} does not exist (never made, or dropped); handles are "
            "valid only in the evaluation that made them"
        )
    return _TABLE[t]


def put(rows, cols, dtype, values):
    """Holds `values` (a sequence of floats) as a tensor; the engine does this for the splits."""
    code = "f" if dtype == Dtype.F32 else "d"
    return _hold(rows, cols, dtype, array(code, values))


def shape(t):
    rows, cols, dtype, _ = _get("shape", t)
    return TensorShape(rows, cols, dtype)


def read(t, start, end):
    rows, cols, _, values = _get("read", t)
    if not 0 <= start <= end <= rows:
        raise ValueError(f"read: rows {start}..{end} of tensor {t}, which has {rows} rows")
    out = values[start * cols : end * cols]
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def write(rows, cols, dtype, data):
    width = 4 if dtype == Dtype.F32 else 8
    if len(data) != rows * cols * width:
        raise ValueError(
            f"write: {len(data)} bytes for a {rows} x {cols} tensor of {width}-byte values, "
            f"expected {rows * cols * width}"
        )
    values = array("f" if dtype == Dtype.F32 else "d")
    values.frombytes(bytes(data))
    if sys.byteorder != "little":
        values.byteswap()
    return _hold(rows, cols, dtype, values)


def drop(t):
    if isinstance(t, int) and 0 <= t < len(_TABLE):
        _TABLE[t] = None


def _f32(kernel, t):
    rows, cols, dtype, values = _get(kernel, t)
    if dtype != Dtype.F32:
        raise ValueError(f"{kernel}: tensor {t} holds f64 values; this kernel takes f32")
    return rows, cols, values


def l2_normalise_rows(t):
    if not _KERNELS[0]:
        return None
    rows, cols, values = _f32("l2-normalise-rows", t)
    out = array("f", values)
    for i in range(rows):
        row = out[i * cols : (i + 1) * cols]
        norm = math.sqrt(sum(v * v for v in row))
        if norm > 0:
            inv = 1.0 / norm
            out[i * cols : (i + 1) * cols] = array("f", (v * inv for v in row))
    return _hold(rows, cols, Dtype.F32, out)


def _dots(kernel, a, b):
    n, k, va = _f32(kernel, a)
    p, k2, vb = _f32(kernel, b)
    if k != k2:
        raise ValueError(f"{kernel}: tensor {a} is {n} x {k} and tensor {b} is {p} x {k2}")
    brows = [vb[j * k : (j + 1) * k] for j in range(p)]
    for i in range(n):
        arow = va[i * k : (i + 1) * k]
        yield [sum(x * y for x, y in zip(arow, brow)) for brow in brows]


def matmul_abt(a, b):
    if not _KERNELS[0]:
        return None
    out = array("f")
    n = 0
    for row in _dots("matmul-abt", a, b):
        out.extend(row)
        n += 1
    p = _get("matmul-abt", b)[0]
    return _hold(n, p, Dtype.F32, out)


def top_k_dot(a, b, k):
    if not _KERNELS[0]:
        return None
    found = []
    for row in _dots("top-k-dot", a, b):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        found.extend(order[: min(k, len(row))])
    return found


def gather_mean(t, index, k):
    if not _KERNELS[0]:
        return None
    rows, cols, _, values = _get("gather-mean", t)
    if k == 0 or len(index) % k:
        raise ValueError(f"gather-mean: {len(index)} indices are not runs of k = {k}")
    out = array("d")
    inv = 1.0 / k
    for start in range(0, len(index), k):
        acc = [0.0] * cols
        for r in index[start : start + k]:
            if not 0 <= r < rows:
                raise ValueError(f"gather-mean: row {r} of tensor {t}, which has {rows} rows")
            for j, v in enumerate(values[r * cols : (r + 1) * cols]):
                acc[j] += v
        out.extend(v * inv for v in acc)
    return _hold(len(index) // k, cols, Dtype.F64, out)


def column_means(t):
    if not _KERNELS[0]:
        return None
    rows, cols, _, values = _get("column-means", t)
    sums = [0.0] * cols
    for i in range(rows):
        for j, v in enumerate(values[i * cols : (i + 1) * cols]):
            sums[j] += v
    n = float(max(rows, 1))
    return _hold(1, cols, Dtype.F64, array("d", (s / n for s in sums)))


def softmax_rows(t):
    if not _KERNELS[0]:
        return None
    rows, cols, _, values = _get("softmax-rows", t)
    out = array("f")
    for i in range(rows):
        out.extend(softmax_list(values[i * cols : (i + 1) * cols]))
    return _hold(rows, cols, Dtype.F32, out)


def argmax_rows(t):
    if not _KERNELS[0]:
        return None
    rows, cols, _, values = _get("argmax-rows", t)
    return [argmax_list(values[i * cols : (i + 1) * cols]) for i in range(rows)]


def one_hot(index, cols):
    if not _KERNELS[0]:
        return None
    out = array("f", bytes(4 * len(index) * cols))
    for i, c in enumerate(index):
        if not 0 <= c < cols:
            raise ValueError(f"one-hot: index {c} is out of range for {cols} columns")
        out[i * cols + c] = 1.0
    return _hold(len(index), cols, Dtype.F32, out)


from ._pure import argmax_list, softmax_list  # noqa: E402  (shared with the SDK)
