"""`routereval-sdk`: the command for Python router authors.

    routereval-sdk new NAME                     a router file to start from (NAME.py)
    routereval-sdk check ROUTER.py              run it in plain CPython, in seconds
    routereval-sdk build ROUTER.py -o R.wasm    make it a sandboxed component (componentize-py)

then `routereval-engine run --plugin R.wasm` scores it.
"""

import argparse
import importlib.util
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile
import time

from . import SDK_VERSION

PACKAGE_DIR = Path(__file__).resolve().parent
WIT_DIR = PACKAGE_DIR / "wit"
WORLD = "tensor-plugin"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="routereval-sdk",
        description="Write LLM routers in Python for routereval-engine's sandbox.",
        epilog="From nothing to a ranked result: routereval-sdk new my_router; "
        "routereval-sdk build my_router.py -o my_router.wasm; "
        "routereval-engine run --router knn --router best-on-train --router oracle "
        "--plugin my_router.wasm",
    )
    parser.add_argument("--version", action="version", version=SDK_VERSION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("new", help="write a router file to start from")
    p.add_argument("name", help="the router's name; writes NAME.py (a Python identifier)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("build", help="build a router file into a WebAssembly component")
    p.add_argument("router", help="the router's .py file")
    p.add_argument("-o", "--output", help="the component to write (default: ROUTER.wasm)")
    p.add_argument("--name", help="the name shown in results (default: the class's `name`)")

    p = sub.add_parser(
        "check",
        help="run a router in plain CPython against a stand-in host, on synthetic data",
        description="Runs create, fit and route in this Python, with a stand-in for the "
        "engine's tensors and kernels, on a seeded synthetic dataset (clusters of queries, "
        "each with its own best candidate), and prints the router's mu against best-on-train "
        "and the oracle. No build, no sandbox: a fast edit loop. Limits (fuel, memory, "
        "determinism) are only enforced by the engine.",
    )
    p.add_argument("router", help="the router's .py file")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter (repeatable); VALUE is read as int, float, bool or text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=300, help="training queries (default 300)")
    p.add_argument("--test", type=int, default=100, help="test queries (default 100)")
    p.add_argument("--dim", type=int, default=16, help="embedding dimension (default 16)")
    p.add_argument("--candidates", type=int, default=6, help="candidates m (default 6)")
    p.add_argument("--no-host-kernels", action="store_true",
                   help="the kernels answer none, as under the engine's --no-host-kernels")

    args = parser.parse_args(argv)
    try:
        return {"new": cmd_new, "build": cmd_build, "check": cmd_check}[args.command](args)
    except UserError as e:
        print(f"routereval-sdk {args.command}: {e}", file=sys.stderr)
        return 2


class UserError(Exception):
    pass


def cmd_new(args):
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name):
        raise UserError(f"`{args.name}` is not a Python identifier (use letters, digits and _)")
    out = Path(f"{args.name}.py")
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; choose another name or pass --force")
    template = (PACKAGE_DIR / "templates" / "router.py").read_text()
    cls = "".join(part.capitalize() for part in args.name.split("_")) or "MyRouter"
    out.write_text(template.replace("TemplateRouter", cls).replace("template-router", args.name.replace("_", "-")))
    print(f"wrote {out}: edit fit and route, then\n"
          f"  routereval-sdk check {out}\n"
          f"  routereval-sdk build {out} -o {args.name}.wasm\n"
          f"  routereval-engine run --router knn --router best-on-train --router oracle "
          f"--plugin {args.name}.wasm")
    return 0


def load_module(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.suffix != ".py":
        raise UserError(f"{path}: a router is a .py file")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", path.stem):
        raise UserError(f"{path}: the file name must be a Python module name (letters, digits, _)")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def cmd_build(args):
    router = Path(args.router)
    module = load_module(router)  # fails here, with a Python traceback, before a long build
    from ._guest import find_router

    try:
        find_router(module)
    except SystemExit as e:
        raise UserError(str(e)) from None
    out = Path(args.output or router.with_suffix(".wasm"))
    tool = shutil.which("componentize-py") or _beside_python("componentize-py")
    if tool is None:
        raise UserError("componentize-py is not installed: pip install componentize-py==0.25.1 "
                        "(pip install ./sdk/python installs it)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="routereval-sdk-") as tmp:
        tmp = Path(tmp)
        # Only what the component needs goes on its path: componentize-py bundles the
        # directories it is given.
        shutil.copytree(PACKAGE_DIR, tmp / "routereval_sdk",
                        ignore=shutil.ignore_patterns("__pycache__", "wit", "templates"))
        shutil.copy(router, tmp / router.name)
        name = repr(args.name) if args.name else "None"
        (tmp / "routereval_app.py").write_text(
            f"import {router.stem} as _user\n"
            "from routereval_sdk._guest import export\n"
            f"TensorRouter = export(_user, name={name})\n"
        )
        cmd = [tool, "-d", str(WIT_DIR), "-w", WORLD, "componentize", "routereval_app",
               "-p", str(tmp), "-o", str(out.resolve())]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise UserError(f"componentize-py failed (exit {done.returncode}) building {router}")
    size = out.stat().st_size
    print(f"built {out} ({size / 2**20:.1f} MiB, {time.monotonic() - started:.1f} s): "
          f"routereval-engine run --router knn --router best-on-train --router oracle --plugin {out}")
    return 0


def _beside_python(name):
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def _parse_param(text):
    if "=" not in text:
        raise UserError(f"--param {text}: expected KEY=VALUE")
    key, value = text.split("=", 1)
    for conv in (int, float):
        try:
            return key, conv(value)
        except ValueError:
            pass
    if value in ("true", "false"):
        return key, value == "true"
    return key, value


def synthetic(seed, n_train, n_test, dim, m):
    """A seeded dataset with structure a router can learn: queries in `m` clusters, cluster c
    best answered by candidate c; plus a candidate-wide skill so best-on-train is not blind."""
    import random

    rng = random.Random(seed)
    centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(m)]
    skill = [0.35 + 0.3 * rng.random() for _ in range(m)]

    def sample(n):
        emb, scores = [], []
        for _ in range(n):
            c = rng.randrange(m)
            emb.append([x + rng.gauss(0, 0.6) for x in centres[c]])
            scores.append([1.0 if rng.random() < (0.9 if j == c else skill[j] * 0.6) else 0.0
                           for j in range(m)])
        return emb, scores

    return sample(n_train), sample(max(n_train // 5, 1)), sample(n_test)


def cmd_check(args):
    from . import _standin, Params, Queries, Routing, Split, Tensor, describe_exception
    from ._guest import find_router

    module = load_module(args.router)
    try:
        cls = find_router(module)
    except SystemExit as e:
        raise UserError(str(e)) from None
    _standin.reset()
    _standin.set_kernels(not args.no_host_kernels)
    started = time.monotonic()
    (tr_e, tr_s), (va_e, va_s), (te_e, te_s) = synthetic(
        args.seed, args.train, args.test, args.dim, args.candidates)
    names = [f"model-{j}" for j in range(args.candidates)]

    def split(e, s):
        return Split(Tensor.from_rows(e), Tensor.from_rows(s), [], names)

    stage = "create"
    try:
        given = dict(_parse_param(p) for p in args.param)
        router = cls(Params(cls.defaults, given, args.seed))
        stage = "fit"
        router.fit(split(tr_e, tr_s), split(va_e, va_s))
        stage = "route"
        out = router.route(Queries(Tensor.from_rows(te_e), []))
    except UserError:
        raise
    except Exception as exc:
        kind, message = describe_exception(exc)
        print(f"`{stage}` failed: router_error ({kind}): {message}", file=sys.stderr)
        return 1
    problems = validate(out, len(te_e), args.candidates)
    for line in _standin.LOG:
        print(f"log: {line}")
    if problems:
        for p in problems:
            print(f"invalid output: {p}", file=sys.stderr)
        return 1
    belief = out.belief.tolist()
    choices = out.choices if out.choices is not None else [
        max(range(len(r)), key=lambda j: (r[j], -j)) for r in belief]
    mu = sum(te_s[i][c] for i, c in enumerate(choices)) / len(te_s)
    means = [sum(col) / len(tr_s) for col in zip(*tr_s)]
    best = max(range(len(means)), key=lambda j: (means[j], -j))
    bot = sum(r[best] for r in te_s) / len(te_s)
    oracle = sum(max(r) for r in te_s) / len(te_s)
    print(f"{cls.__name__} ({getattr(cls, 'name', None) or module.__name__}): mu {mu:.4f} on "
          f"{len(te_s)} synthetic test queries (best-on-train {bot:.4f}, oracle {oracle:.4f}); "
          f"output valid; {time.monotonic() - started:.2f} s in CPython "
          f"(host kernels {'off' if args.no_host_kernels else 'on'})")
    return 0


def validate(out, n, m):
    from . import Routing

    if not isinstance(out, Routing):
        return [f"route returned {type(out).__name__}, not routereval_sdk.Routing"]
    problems = []
    if out.belief.shape != (n, m):
        problems.append(f"belief is {out.belief.rows} x {out.belief.cols}, expected {n} x {m}")
        return problems
    for i, row in enumerate(out.belief.tolist()):
        if any(v != v or v < 0 for v in row) or abs(sum(row) - 1) > 1e-3:
            problems.append(f"belief row {i} is not a probability distribution: {row[:8]}")
            break
    if out.choices is not None:
        if len(out.choices) != n:
            problems.append(f"{len(out.choices)} choices for {n} queries")
        elif any(not 0 <= c < m for c in out.choices):
            problems.append(f"a choice is out of range for {m} candidates")
    return problems


if __name__ == "__main__":
    sys.exit(main())
