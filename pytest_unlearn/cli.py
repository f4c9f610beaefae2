"""The command line for stores, outside pytest.

    python -m pytest_unlearn list
    python -m pytest_unlearn build digits-mlp --out stores/digits-mlp --models 100
    python -m pytest_unlearn verify stores/digits-mlp      # or file://... or https://...

Exit status 0 on success, 1 when a store fails verification or cannot be fetched, 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .benchmarks import available_benchmarks, get_benchmark
from .store import StoreError, build_store, default_cache_dir


def _list(args: argparse.Namespace) -> int:
    for name in available_benchmarks():
        bench = get_benchmark(name)
        forget = ", ".join(f"{fs.name} ({fs.kind})" for fs in bench.forget_sets)
        print(f"{name}: {bench.description}")
        print(f"    forget sets: {forget}")
    return 0


def _build(args: argparse.Namespace) -> int:
    try:
        bench = get_benchmark(args.benchmark)
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    if args.models < 2:
        print(f"error: --models must be at least 2, got {args.models}", file=sys.stderr)
        return 2
    out = build_store(bench, args.models, Path(args.out), device=args.device, log=print)
    print(f"store written to {out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .store.fetch import materialize
    from .store.manifest import verify_directory

    source = args.source
    try:
        if Path(source).is_dir():
            problems = verify_directory(Path(source))
        else:
            local = materialize(source, Path(args.cache_dir), log=print)
            problems = verify_directory(local)
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    print(f"OK {source}: every file matches the manifest")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_unlearn", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the benchmarks this installation can build").set_defaults(run=_list)
    build = commands.add_parser("build", help="train a benchmark's ensembles into a store directory")
    build.add_argument("benchmark")
    build.add_argument("--out", required=True, help="the store directory to write")
    build.add_argument("--models", type=int, default=100, help="ensemble size (default 100)")
    build.add_argument("--device", default="cpu")
    build.set_defaults(run=_build)
    verify = commands.add_parser("verify", help="check every file of a store against its manifest")
    verify.add_argument("source", help="a store directory, file:// or http(s):// URL")
    verify.add_argument("--cache-dir", default=str(default_cache_dir()))
    verify.set_defaults(run=_verify)
    args = parser.parse_args(argv)
    return args.run(args)
