"""Where tensors live: the engine's `tensors` interface inside the sandbox, or the stand-in
host (`_standin`) when the router runs in plain CPython (`routereval-sdk check`, unit tests).

Both offer the same functions with the same meaning; see `sdk/wit/router.wit`.
"""

try:  # Inside a component built by `routereval-sdk build`: componentize-py's bindings.
    from wit_world.imports import host as _host  # type: ignore[import-not-found]
    from wit_world.imports import tensors  # type: ignore[import-not-found]
    from wit_world.imports.tensors import Dtype  # type: ignore[import-not-found]

    IN_SANDBOX = True

    def log(level: str, message: str) -> None:
        _host.log(getattr(_host.Level, level.upper()), message)

except ImportError:  # Plain CPython.
    from . import _standin as tensors  # type: ignore[no-redef]
    from ._standin import Dtype  # type: ignore[assignment]

    IN_SANDBOX = False

    def log(level: str, message: str) -> None:
        tensors.log(level, message)


__all__ = ["Dtype", "IN_SANDBOX", "log", "tensors"]
