"""routereval-sdk for Python: write an LLM router in Python, run it sandboxed in
routereval-engine.

A router is a subclass of `Router` with `fit` and `route`; `routereval-sdk build ROUTER.py -o
ROUTER.wasm` makes it a WebAssembly component of the `tensor-plugin` world of
`routereval:router@1.1.0`, which `routereval-engine run --plugin ROUTER.wasm` scores. The
engine keeps the data (the splits are host-held tensors, read as bytes when needed) and
offers native kernels (`top_k_dot`, `matmul_abt`, ...); the helpers here use them when the
sandbox policy allows and compute in pure Python otherwise. See README.md.
"""

from array import array
import math
import traceback

from . import _backend, _pure
from ._backend import Dtype, IN_SANDBOX

__version__ = "0.1.0"

#: Reported by the component's `info`, shown in the engine's results.
SDK_VERSION = f"routereval-sdk-python {__version__}"

__all__ = [
    "FitError",
    "InvalidInput",
    "InvalidParams",
    "Params",
    "Queries",
    "RouteError",
    "Router",
    "RouterError",
    "Routing",
    "SDK_VERSION",
    "Split",
    "Tensor",
    "argmax",
    "argmax_rows",
    "column_means",
    "gather_mean",
    "l2_normalise_rows",
    "log",
    "matmul_abt",
    "one_hot",
    "softmax",
    "softmax_rows",
    "top_k_dot",
]


# --- errors -----------------------------------------------------------------------------


class RouterError(Exception):
    """A failure the router reports; its `kind` is the engine's `router-error` kind."""

    kind = "other"


class InvalidParams(RouterError):
    """Hyperparameters the router cannot use (unknown key, wrong type, out of range)."""

    kind = "invalid-params"


class InvalidInput(RouterError):
    """Data the router cannot use (an empty split, mismatched dimensions)."""

    kind = "invalid-input"


class FitError(RouterError):
    """Training failed."""

    kind = "fit"


class RouteError(RouterError):
    """Routing failed."""

    kind = "route"


def describe_exception(exc):
    """(kind, message) for an exception raised by a router: a `RouterError`'s own kind, and
    `panic` for anything else (a bug), with the traceback in the message either way."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    if isinstance(exc, RouterError):
        return exc.kind, f"{exc}\n{text}"
    return "panic", f"{type(exc).__name__}: {exc}\n{text}"


def log(message, level="info"):
    """Writes a line to the evaluation's log (`level`: error, warn, info or debug)."""
    if level not in ("error", "warn", "info", "debug"):
        level = "info"
    _backend.log(level, str(message))


# --- tensors ----------------------------------------------------------------------------


class Tensor:
    """A matrix the engine holds (a handle), `rows x cols` of f32 or f64.

    Read values with `values()` / `row(i)` (memoryviews of the engine's bytes, no per-value
    objects until indexed) or `tolist()`. Make one with `Tensor.from_rows` or
    `Tensor.from_values`.
    """

    __slots__ = ("handle", "rows", "cols", "dtype")

    def __init__(self, handle):
        s = _backend.tensors.shape(handle)
        self.handle = handle
        self.rows, self.cols = s.rows, s.cols
        self.dtype = "f32" if s.dtype == Dtype.F32 else "f64"

    def __repr__(self):
        return f"Tensor({self.rows} x {self.cols} {self.dtype}, handle {self.handle})"

    def __len__(self):
        return self.rows

    @property
    def shape(self):
        return (self.rows, self.cols)

    @classmethod
    def from_values(cls, values, rows, cols, dtype="f32"):
        """A tensor from `rows * cols` values, row-major (any sequence of numbers)."""
        code = _code(dtype)
        data = values if isinstance(values, array) and values.typecode == code else array(code, values)
        if len(data) != rows * cols:
            raise InvalidInput(f"{len(data)} values for a {rows} x {cols} tensor")
        return cls(_backend.tensors.write(rows, cols, _dtype(dtype), _le_bytes(data)))

    @classmethod
    def from_rows(cls, rows, dtype="f32"):
        """A tensor from a list of equal-length rows."""
        rows = list(rows)
        cols = len(rows[0]) if rows else 0
        flat = array(_code(dtype))
        for i, r in enumerate(rows):
            if len(r) != cols:
                raise InvalidInput(f"row {i} has {len(r)} values, row 0 has {cols}")
            flat.extend(r)
        return cls.from_values(flat, len(rows), cols, dtype)

    def values(self, start=0, end=None):
        """Rows `start..end` (default all) as one flat memoryview of floats."""
        end = self.rows if end is None else end
        raw = _backend.tensors.read(self.handle, start, end)
        return memoryview(_native_order(raw, self.dtype)).cast(_code(self.dtype))

    def row(self, i):
        """Row `i` as a memoryview of floats."""
        return self.values(i, i + 1)

    def tolist(self):
        """The rows as lists of Python floats (one object per value: mind the cost)."""
        flat = self.values()
        c = self.cols
        return [list(flat[i * c : (i + 1) * c]) for i in range(self.rows)]

    def drop(self):
        """Frees the engine's copy now (it is freed with the evaluation anyway)."""
        _backend.tensors.drop(self.handle)


def _code(dtype):
    if dtype not in ("f32", "f64"):
        raise InvalidInput(f"dtype must be 'f32' or 'f64', not {dtype!r}")
    return "f" if dtype == "f32" else "d"


def _dtype(dtype):
    _code(dtype)
    return Dtype.F32 if dtype == "f32" else Dtype.F64


def _le_bytes(data):
    import sys

    if sys.byteorder != "little":
        data = array(data.typecode, data)
        data.byteswap()
    return data.tobytes()


def _native_order(raw, dtype):
    import sys

    if sys.byteorder == "little":
        return raw
    a = array(_code(dtype))
    a.frombytes(raw)
    a.byteswap()
    return a.tobytes()


# --- data -------------------------------------------------------------------------------


class Queries:
    """Queries to route: `embeddings` (`N x d` f32 Tensor) and `prompts` (empty when the
    dataset has none). Never scores."""

    def __init__(self, embeddings, prompts):
        self.embeddings = embeddings
        self.prompts = list(prompts)

    def __len__(self):
        return self.embeddings.rows

    @property
    def dim(self):
        return self.embeddings.cols


class Split(Queries):
    """A labelled split: `embeddings` (`N x d`), `scores` (`N x m` in [0, 1], one column per
    candidate), `prompts`, `candidates` (the `m` model names, in column order)."""

    def __init__(self, embeddings, scores, prompts, candidates):
        super().__init__(embeddings, prompts)
        self.scores = scores
        self.candidates = list(candidates)

    @property
    def num_candidates(self):
        return self.scores.cols


class Routing:
    """A router's answer: `belief`, an `N x m` Tensor whose rows are probability distributions
    (over the candidates), and optionally `choices`, `N` candidate indices (the engine takes
    each belief row's argmax when they are absent)."""

    def __init__(self, belief, choices=None):
        if not isinstance(belief, Tensor):
            raise RouteError(f"a Routing's belief must be a Tensor, not {type(belief).__name__}")
        self.belief = belief
        self.choices = None if choices is None else [int(c) for c in choices]


# --- parameters -------------------------------------------------------------------------


class Params:
    """A router's hyperparameters: the class's `defaults`, overridden by the run's values.
    Unknown keys are refused, and a value must have its default's type (an int is accepted
    where the default is a float). Read them as `params["k"]` or `params.k`."""

    def __init__(self, defaults, given, seed):
        self.seed = seed
        self._values = dict(defaults)
        for key, value in given.items():
            if key not in defaults:
                known = ", ".join(sorted(defaults)) or "none"
                raise InvalidParams(f"unknown parameter `{key}` (this router takes: {known})")
            want = defaults[key]
            ok = (
                isinstance(value, type(want))
                and not (isinstance(value, bool) and not isinstance(want, bool))
            ) or (isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool))
            if want is not None and not ok:
                raise InvalidParams(
                    f"parameter `{key}` is {type(value).__name__} {value!r}; it takes "
                    f"{type(want).__name__} (default {want!r})"
                )
            self._values[key] = float(value) if isinstance(want, float) else value

    def __getitem__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise InvalidParams(f"no parameter `{key}`") from None

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def items(self):
        return self._values.items()

    def __repr__(self):
        return f"Params({self._values!r}, seed={self.seed})"


class Router:
    """Subclass this. Set `name` (shown in results) and `defaults` (every hyperparameter with
    its default), then write `fit(self, train, val)` and `route(self, queries)`.

    One object lives for the whole evaluation: what `fit` stores on `self` is there in
    `route`. `self.params` holds the hyperparameters, `self.seed` the run's seed (derive all
    randomness from it). Raise `InvalidParams`, `InvalidInput`, `FitError` or `RouteError` to
    report a failure of that kind; any other exception is reported as a `panic` with its
    traceback.
    """

    name = None
    defaults = {}

    def __init__(self, params):
        self.params = params
        self.seed = params.seed

    def fit(self, train, val):
        raise FitError(f"{type(self).__name__} does not implement fit")

    def route(self, queries):
        raise RouteError(f"{type(self).__name__} does not implement route")


# --- helpers: host kernels when allowed, pure Python otherwise --------------------------


def argmax(values):
    """The index of the largest value, the first on ties; NaN never wins; 0 when empty."""
    return _pure.argmax_list(values)


def softmax(values):
    """Softmax of a sequence, in f64 with the maximum subtracted first: a list of floats."""
    return _pure.softmax_list(values)


def l2_normalise_rows(t):
    """Each row of an f32 Tensor divided by its Euclidean norm (zero rows unchanged)."""
    h = _backend.tensors.l2_normalise_rows(t.handle)
    if h is not None:
        return Tensor(h)
    flat = t.values()
    out = array("f")
    c = t.cols
    for i in range(t.rows):
        row = flat[i * c : (i + 1) * c]
        norm = math.sqrt(math.fsum(v * v for v in row))
        out.extend(row if norm == 0 else [v / norm for v in row])
    return Tensor.from_values(out, t.rows, c)


def matmul_abt(a, b):
    """`a · bᵀ` of f32 Tensors (`n x k`, `p x k`): an `n x p` f32 Tensor."""
    h = _backend.tensors.matmul_abt(a.handle, b.handle)
    if h is not None:
        return Tensor(h)
    _same_cols("matmul_abt", a, b)
    fa, fb, k = a.values(), b.values(), a.cols
    brows = [fb[j * k : (j + 1) * k] for j in range(b.rows)]
    out = array("f")
    for i in range(a.rows):
        ar = fa[i * k : (i + 1) * k]
        out.extend(math.fsum(x * y for x, y in zip(ar, br)) for br in brows)
    return Tensor.from_values(out, a.rows, b.rows)


def top_k_dot(a, b, k):
    """For each row of `a`, the indices of the `k` rows of `b` with the largest dot products,
    largest first, ties to the lower index: a list of `n` lists of `min(k, p)` ints."""
    per_row = min(k, b.rows)
    flat = _backend.tensors.top_k_dot(a.handle, b.handle, k)
    if flat is None:
        _same_cols("top_k_dot", a, b)
        fa, fb, d = a.values(), b.values(), a.cols
        brows = [fb[j * d : (j + 1) * d] for j in range(b.rows)]
        flat = []
        for i in range(a.rows):
            ar = fa[i * d : (i + 1) * d]
            dots = [math.fsum(x * y for x, y in zip(ar, br)) for br in brows]
            flat.extend(sorted(range(b.rows), key=lambda j: (-dots[j], j))[:per_row])
    return [flat[i * per_row : (i + 1) * per_row] for i in range(a.rows)]


def gather_mean(t, index):
    """For each run of row indices in `index` (a list of equal-length lists), the mean of
    those rows of `t`, summed in f64 in order: an `n x cols` f64 Tensor."""
    k = len(index[0]) if index else 1
    flat_index = [int(i) for run in index for i in run]
    h = _backend.tensors.gather_mean(t.handle, flat_index, k)
    if h is not None:
        return Tensor(h)
    vals, c, inv = t.values(), t.cols, 1.0 / k
    out = array("d")
    for run in index:
        acc = [0.0] * c
        for r in run:
            for j, v in enumerate(vals[r * c : (r + 1) * c]):
                acc[j] += v
        out.extend(v * inv for v in acc)
    return Tensor.from_values(out, len(index), c, "f64")


def column_means(t):
    """The mean of each column over the rows, summed in f64 in row order: a list of floats."""
    h = _backend.tensors.column_means(t.handle)
    if h is not None:
        return list(Tensor(h).values())
    vals, c = t.values(), t.cols
    sums = [0.0] * c
    for i in range(t.rows):
        for j, v in enumerate(vals[i * c : (i + 1) * c]):
            sums[j] += v
    n = float(max(t.rows, 1))
    return [s / n for s in sums]


def softmax_rows(t):
    """The softmax of each row, computed in f64: an f32 Tensor (a belief)."""
    h = _backend.tensors.softmax_rows(t.handle)
    if h is not None:
        return Tensor(h)
    vals, c = t.values(), t.cols
    out = array("f")
    for i in range(t.rows):
        out.extend(softmax(vals[i * c : (i + 1) * c]))
    return Tensor.from_values(out, t.rows, c)


def argmax_rows(t):
    """The index of each row's largest value, the first on ties: a list of ints."""
    found = _backend.tensors.argmax_rows(t.handle)
    if found is not None:
        return list(found)
    vals, c = t.values(), t.cols
    return [argmax(vals[i * c : (i + 1) * c]) for i in range(t.rows)]


def one_hot(index, cols):
    """An `n x cols` f32 Tensor of one-hot rows, 1 at each index: a belief for hard choices."""
    index = [int(i) for i in index]
    for i in index:
        if not 0 <= i < cols:
            raise RouteError(f"one_hot: index {i} is out of range for {cols} columns")
    h = _backend.tensors.one_hot(index, cols)
    if h is not None:
        return Tensor(h)
    out = array("f", bytes(4 * len(index) * cols))
    for r, i in enumerate(index):
        out[r * cols + i] = 1.0
    return Tensor.from_values(out, len(index), cols)


def _same_cols(what, a, b):
    if a.cols != b.cols:
        raise InvalidInput(f"{what}: {a.rows} x {a.cols} against {b.rows} x {b.cols}")
