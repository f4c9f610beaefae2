"""The command line for stores and reports, outside pytest.

    python -m pytest_unlearn list
    python -m pytest_unlearn build digits-mlp --out stores/digits-mlp --models 100
    python -m pytest_unlearn build cifar10-resnet9 --device cuda --models 50   # into the cache
    python -m pytest_unlearn verify stores/digits-mlp      # or file://, https://, hf://...
    python -m pytest_unlearn publish stores/digits-mlp hf://datasets/my-lab/digits-mlp-store
    python -m pytest_unlearn import-easydub EasyDUB-dataset --out stores/easydub --models 100
    python -m pytest_unlearn compare main.json pr.json     # a Markdown table of the reports
    python -m pytest_unlearn merge shard-*.json --out all.json
    python -m pytest_unlearn check-report unlearn-report.json   # fit to gate on?
    python -m pytest_unlearn options                       # the --unlearn-* options (Markdown)

Exit status 0 on success, 1 when a store fails verification, cannot be fetched or cannot be
written (a full disk, an unwritable directory), 2 on a usage error (a bad argument, a device
this machine does not have, an ``--out`` that holds something other than a store). Every
error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .benchmarks import available_benchmarks, get_benchmark
from .benchmarks.spec import DataUnavailable
from .store import StoreError, build_store, default_cache_dir, load_or_build
from .store.builder import MAX_MODELS, unbuildable_message
from .store.data_files import provide_data
from .store.manifest import OutputRefused

USAGE = 2
FAILED = 1


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (``prog: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _error(message: object) -> None:
    lines = str(message).strip().splitlines() or [""]
    # One line: a multi-line problem list becomes "first; second; ...".
    print(f"error: {'; '.join(line.strip() for line in lines)}", file=sys.stderr)


def _list(args: argparse.Namespace) -> int:
    for name in available_benchmarks():
        bench = get_benchmark(name)
        forget = ", ".join(f"{fs.name} ({fs.kind})" for fs in bench.declared_forget_sets)
        print(f"{name}: {bench.description}")
        print(f"    forget sets: {forget}")
    return 0


def _ensemble_size(raw: str) -> int:
    """argparse type for --models: an integer from 2 to MAX_MODELS (usage error, exit 2,
    otherwise)."""
    try:
        models = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {raw[:40]!r}") from None
    if models < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {models}")
    if models > MAX_MODELS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_MODELS}, got {models}: every member is held in memory "
            "while the ensembles train, and the build takes time in proportion"
        )
    return models


def _device_problem(raw: str) -> str | None:
    """Why ``--device raw`` cannot build here (one line), or None when it can."""
    import torch

    try:
        device = torch.device(raw)
    except (RuntimeError, ValueError, TypeError) as error:
        return f"--device {raw!r} is not a torch device ({_first_line(error)})"
    if device.type == "meta":
        return "--device meta holds no data; use cpu or a GPU"
    try:
        torch.empty(1, device=device)
    except Exception as error:  # AssertionError (torch built without CUDA), RuntimeError, ...
        return (
            f"--device {raw} is not available on this machine ({_first_line(error)}); "
            "use --device cpu"
        )
    return None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def _build(args: argparse.Namespace) -> int:
    try:
        bench = get_benchmark(args.benchmark)
    except KeyError as error:
        _error(error.args[0])
        return USAGE
    if not bench.buildable:
        _error(unbuildable_message(bench))
        return USAGE
    problem = _device_problem(args.device)
    if problem is not None:
        _error(problem)
        return USAGE
    cache = Path(args.cache_dir)
    try:
        # Data the benchmark downloads (CIFAR-10) is fetched into the cache first, verified.
        bench = provide_data(bench, cache / "data", log=print)
        if args.out is None:
            # Into the cache, where a pytest run with the same --unlearn-cache-dir finds it.
            load_or_build(bench, args.models, cache, device=args.device, log=print)
            out = cache / bench.name / bench.fingerprint()
        else:
            out = build_store(bench, args.models, Path(args.out), device=args.device, log=print)
    except OutputRefused as error:
        _error(error)
        return USAGE
    except (StoreError, DataUnavailable, OSError) as error:
        _error(error)
        return FAILED
    print(f"store written to {out}")
    if args.out is None:
        print(
            f"pytest --unlearn-benchmark={bench.name} --unlearn-models={args.models} "
            f"--unlearn-cache-dir={cache} ... uses it"
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .store.fetch import materialize
    from .store.reader import verify_directory

    source = args.source
    try:
        if Path(source).is_dir():
            problems = verify_directory(Path(source))
        else:
            local = materialize(source, Path(args.cache_dir), log=print)
            problems = verify_directory(local)
    except (StoreError, OSError) as error:
        _error(error)
        return FAILED
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    print(f"OK {source}: every file matches the manifest")
    return 0


def _default_built_with(manifest: Any) -> str:
    """The command that builds a store like ``manifest``'s (``publish --built-with`` overrides)."""
    try:
        buildable = get_benchmark(manifest.benchmark).buildable
    except KeyError:
        buildable = True
    if buildable:
        return (
            f"python -m pytest_unlearn build {manifest.benchmark} --out STORE "
            f"--models {manifest.n_models}"
        )
    return (
        f"python -m pytest_unlearn import-easydub SOURCE --out STORE --models {manifest.n_models}"
    )


def _floors(store: Path, manifest: Any) -> tuple[list[tuple[str, float, float]], str | None]:
    """Per conformance case of the store, the floor (oracle half B) and do-nothing (pretrained)
    P95 KLoM against oracle half A at the store's N; or no rows and why."""
    from .harness.cases import SPLITS, ConformanceCase, split_indices
    from .store import bind_forget_sets, read_ensembles
    from .verdicts import p95_klom

    try:
        bench = bind_forget_sets(get_benchmark(manifest.benchmark), store, manifest)
        ensembles = read_ensembles(bench, store, manifest.n_models, manifest=manifest)
        rows = []
        for (forget_set, request), halves in sorted(ensembles.oracles.items()):
            sequential = bench.forget_set(forget_set).sequential
            for split in SPLITS:
                case = ConformanceCase(bench.name, forget_set, split, request, sequential)
                columns = split_indices(bench, case)
                oracle = halves.half_a[:, columns]
                rows.append(
                    (
                        case.id,
                        p95_klom(halves.half_b[:, columns], oracle),
                        p95_klom(ensembles.pretrained_margins[:, columns], oracle),
                    )
                )
    except Exception as error:  # the card says why; publishing goes on
        return [], f"Not computed when this store was published ({_first_line(error)})."
    return sorted(rows), None


def _publish(args: argparse.Namespace) -> int:
    from .store import hub
    from .store.manifest import read_manifest
    from .store.reader import verify_directory

    try:
        repo = hub.parse_target(args.target)
        hub.client()
    except StoreError as error:
        _error(error)
        return USAGE
    store = Path(args.store)
    if not store.is_dir():
        _error(f"{store} is not a directory (give the store directory to publish)")
        return USAGE
    problems = verify_directory(store)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        _error(f"{store} does not verify; nothing was published")
        return FAILED
    manifest = read_manifest(store)
    floors: list[tuple[str, float, float]] = []
    note: str | None = "Not computed (`publish --no-floors`)."
    if not args.no_floors:
        print(f"computing the floors of {manifest.benchmark} at N={manifest.n_models}")
        floors, note = _floors(store, manifest)
    card = hub.dataset_card(
        manifest,
        repo=repo,
        built_with=args.built_with or _default_built_with(manifest),
        floors=floors,
        floors_note=note,
    )
    try:
        commit = hub.publish(store, args.target, card=card, verified=True, log=print)
    except (StoreError, OSError) as error:
        _error(error)
        return FAILED
    print(f"published {store} to {repo.url} at commit {commit}")
    print(f"pin it: --unlearn-store={repo.at(commit).url}")
    return 0


def _parse_ids(raw: str, option: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; ValueError naming ``option`` otherwise."""
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"{option}: expected comma-separated forget set ids, got {raw!r}"
        ) from None
    if not ids:
        raise ValueError(f"{option}: expected at least one forget set id, got {raw!r}")
    return ids


def _parse_kinds(raw: str) -> dict[int, str]:
    """``"1=random,4=subpopulation"`` -> ``{1: "random", 4: "subpopulation"}``."""
    kinds: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, kind = (piece.strip() for piece in part.partition("="))
        if not sep or kind not in ("random", "subpopulation") or not key.isdigit():
            raise ValueError(
                f"--kinds: expected ID=random or ID=subpopulation, comma-separated, got {part!r}"
            )
        kinds[int(key)] = kind
    return kinds


def _import_easydub(args: argparse.Namespace) -> int:
    from .store.easydub_import import import_easydub

    try:
        forget_ids = (
            None if args.forget_sets is None else _parse_ids(args.forget_sets, "--forget-sets")
        )
        kinds = None if args.kinds is None else _parse_kinds(args.kinds)
    except ValueError as error:
        _error(error)
        return USAGE
    try:
        out = import_easydub(
            Path(args.source),
            Path(args.out),
            models=args.models,
            forget_ids=forget_ids,
            kinds=kinds,
            log=print,
        )
    except OutputRefused as error:
        _error(error)
        return USAGE
    except (StoreError, OSError) as error:
        _error(error)
        return FAILED
    print(f"store written to {out}; evaluate it with --unlearn-store={out}")
    return 0


def _load_reports(paths: Sequence[str]) -> list[tuple[str, dict]] | None:
    from .report.json_report import ReportSchemaError, load_report

    loaded = []
    for path in paths:
        try:
            loaded.append((Path(path).stem, load_report(path)))
        except (OSError, UnicodeDecodeError) as error:
            _error(f"cannot read report {path}: {error}")
            return None
        except ReportSchemaError as error:
            _error(error)
            return None
    return loaded


def _compare(args: argparse.Namespace) -> int:
    from .report.compare import ReportMismatch, compare_reports

    loaded = _load_reports(args.reports)
    if loaded is None:
        return USAGE
    try:
        print(compare_reports(loaded), end="")
    except ReportMismatch as error:
        _error(f"the reports cannot be compared: {error}")
        return USAGE
    return 0


def _merge(args: argparse.Namespace) -> int:
    import json

    from .atomic_files import write_atomically
    from .report.compare import ReportMismatch, merge_reports

    loaded = _load_reports(args.reports)
    if loaded is None:
        return USAGE
    try:
        merged = merge_reports(loaded)
    except ReportMismatch as error:
        _error(f"the reports cannot be merged: {error}")
        return USAGE
    try:
        write_atomically(Path(args.out), json.dumps(merged, indent=2, allow_nan=False) + "\n")
    except OSError as error:
        _error(f"cannot write {args.out}: {error}")
        return FAILED
    print(f"merged {len(loaded)} reports ({len(merged['records'])} records) into {args.out}")
    return 0


def _check_report(args: argparse.Namespace) -> int:
    from .report.json_report import check_report

    problems = check_report(args.report)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.report}: complete, every collected test recorded, exit status 0")
    return FAILED if problems else 0


def _options(args: argparse.Namespace) -> int:
    from .settings import options_table

    print(options_table(), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m pytest_unlearn", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the benchmarks this installation can build").set_defaults(
        run=_list
    )
    build = commands.add_parser(
        "build", help="train a benchmark's ensembles into a store directory"
    )
    build.add_argument("benchmark")
    build.add_argument(
        "--out",
        help="the store directory to write (default: into --cache-dir, where pytest runs "
        "with the same cache directory find it)",
    )
    build.add_argument(
        "--cache-dir",
        default=str(default_cache_dir()),
        help="the cache: downloaded data, and the store unless --out is given",
    )
    build.add_argument(
        "--models",
        type=_ensemble_size,
        default=100,
        help=f"ensemble size (default 100, at most {MAX_MODELS})",
    )
    build.add_argument("--device", default="cpu", help="where to train (default cpu)")
    build.set_defaults(run=_build)
    verify = commands.add_parser("verify", help="check every file of a store against its manifest")
    verify.add_argument("source", help="a store directory, file:// or http(s):// URL")
    verify.add_argument("--cache-dir", default=str(default_cache_dir()))
    verify.set_defaults(run=_verify)
    publish = commands.add_parser(
        "publish",
        help="verify a store and upload it with a dataset card to a Hugging Face dataset "
        "repository (needs pytest-unlearn[hub]); prints the commit to pin",
    )
    publish.add_argument("store", help="the store directory")
    publish.add_argument("target", help="hf://datasets/ORG/NAME (created if absent)")
    publish.add_argument(
        "--built-with",
        help="the command that built the store, for the card (default: the build command for "
        "its benchmark and N)",
    )
    publish.add_argument(
        "--no-floors",
        action="store_true",
        help="leave the floor and do-nothing figures out of the card (they read the ensembles)",
    )
    publish.set_defaults(run=_publish)
    easydub = commands.add_parser(
        "import-easydub",
        help="convert EasyDUB's CIFAR-10 release into a cifar10-resnet9 store (docs/easydub.md)",
    )
    easydub.add_argument("source", help="the EasyDUB dataset root (holds margins/, models/)")
    easydub.add_argument("--out", required=True, help="the store directory to write")
    easydub.add_argument(
        "--models",
        type=_ensemble_size,
        default=100,
        help="N: pretrained models, and oracles per half (default 100; clamped to what exists)",
    )
    easydub.add_argument(
        "--forget-sets", help="comma-separated EasyDUB forget set ids (default: all found)"
    )
    easydub.add_argument(
        "--kinds",
        help="label forget sets, e.g. 1=random,4=subpopulation (default: 1-3 random, "
        "4-10 subpopulation, as published)",
    )
    easydub.set_defaults(run=_import_easydub)
    compare = commands.add_parser(
        "compare",
        help="a Markdown table of JSON reports (scores, P95s, verdicts, regressions against the "
        "first)",
    )
    compare.add_argument("reports", nargs="+", help="--unlearn-report files, the reference first")
    compare.set_defaults(run=_compare)
    merge = commands.add_parser(
        "merge", help="join the JSON reports of sharded runs into one report"
    )
    merge.add_argument("reports", nargs="+", help="--unlearn-report files of the shards")
    merge.add_argument("--out", required=True, help="the merged report to write")
    merge.set_defaults(run=_merge)
    check = commands.add_parser(
        "check-report",
        help="exit 1 unless a JSON report is complete, records every test and says exit 0",
    )
    check.add_argument("report")
    check.set_defaults(run=_check_report)
    commands.add_parser(
        "options", help="the plugin's --unlearn-* options as a Markdown table (the README's)"
    ).set_defaults(run=_options)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except MemoryError:
        _error("out of memory: ask for fewer --models")
        return FAILED
