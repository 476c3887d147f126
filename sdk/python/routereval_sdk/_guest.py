"""The component side: what `routereval-sdk build` exports. componentize-py makes a new
`TensorRouter` object for every exported call, so the router lives here, in the module, for
the whole evaluation (the engine makes a fresh instance per evaluation)."""

from . import (
    SDK_VERSION,
    Params,
    Queries,
    Router,
    RouteError,
    Routing,
    Split,
    Tensor,
    describe_exception,
)

try:  # Bundled into the component at build time (these modules exist only there).
    from componentize_py_types import Err  # type: ignore[import-not-found]
    from wit_world.exports.tensor_router import TensorRouting  # type: ignore[import-not-found]
    from wit_world.imports import types  # type: ignore[import-not-found]
except ImportError:  # plain CPython: `routereval-sdk check` uses find_router only
    Err = TensorRouting = types = None

_STATE = {"class": None, "router": None, "name": None}

_KINDS = {
    "invalid-params": "INVALID_PARAMS",
    "invalid-input": "INVALID_INPUT",
    "fit": "FIT",
    "route": "ROUTE",
    "panic": "PANIC",
    "other": "OTHER",
}


def find_router(module):
    """The one `Router` subclass defined in `module` (or named by its `ROUTER` attribute)."""
    chosen = getattr(module, "ROUTER", None)
    if chosen is not None:
        return chosen
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Router) and v is not Router
        and v.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise SystemExit(
            f"{module.__name__}: expected one subclass of routereval_sdk.Router, found {names}; "
            "set ROUTER = YourClass in the file to choose"
        )
    return found[0]


def _param_value(v):
    # componentize-py's variant cases are dataclasses with a `value` field.
    return v.value


def _fail(kind, message):
    return Err(types.RouterError(kind=getattr(types.ErrorKind, _KINDS[kind]), message=message))


def _guarded(call):
    try:
        return call()
    except Exception as exc:  # every exception becomes a router-error, never a trap
        raise _fail(*describe_exception(exc)) from None


def export(module, name=None):
    """The class componentize-py exports for `module`'s router."""
    cls = find_router(module)
    _STATE["class"] = cls
    _STATE["name"] = name or cls.name or module.__name__

    class TensorRouter:
        def info(self):
            return types.PluginInfo(name=_STATE["name"], sdk_version=SDK_VERSION)

        def create(self, seed, params):
            def make():
                given = {p.key: _param_value(p.value) for p in params}
                _STATE["router"] = cls(Params(cls.defaults, given, seed))

            _guarded(make)

        def fit(self, train, val):
            def run():
                _STATE["router"].fit(_split(train), _split(val))

            _guarded(lambda: _need_router() and run())

        def route(self, queries):
            def run():
                _need_router()
                out = _STATE["router"].route(Queries(Tensor(queries.embeddings), queries.prompts))
                if not isinstance(out, Routing):
                    raise RouteError(
                        f"route returned {type(out).__name__}; return routereval_sdk.Routing(belief, choices)"
                    )
                return TensorRouting(belief=out.belief.handle, choices=out.choices)

            return _guarded(run)

    return TensorRouter


def _need_router():
    if _STATE["router"] is None:
        raise RouteError("`create` was not called first")
    return True


def _split(s):
    return Split(Tensor(s.embeddings), Tensor(s.scores), s.prompts, s.candidates)
