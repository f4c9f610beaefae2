"""Build the quick-profile cifar10-resnet9 store from an empty cache and evaluate two examples.

What it prints (one block per step; every figure measured in this run):

1. the CIFAR-10 archive: fetch (or local copy) and parse seconds;
2. the build: seconds, models trained, models per hour, one exact retraining's seconds;
3. accuracy on the validation split (CIFAR-10's test images) of the pretrained and the oracle
   models, mean over members, and the KLoM floors of the quick profile's forget cases;
4. ``examples.finetune`` and ``examples.retrain``: per case P95, floor, threshold, verdict,
   score, seconds per call, and the wall-clock time of each pytest run.

Usage::

    python benchmarks/cifar10_gpu_check.py                     # cuda, N=50, fresh cache
    python benchmarks/cifar10_gpu_check.py --smoke             # CPU, a tiny random archive

``--smoke`` runs the same steps on the CPU with a miniature CIFAR-10 in the official format
(300 training images, ResNet-9 widths 4-8-8-4, one epoch, 4 models), to check the script itself;
its figures mean nothing. The real run needs the archive: internet access, or
``PYTEST_UNLEARN_CIFAR10`` naming a local copy of ``cifar-10-binary.tar.gz``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_unlearn import benchmarks as registry  # noqa: E402
from pytest_unlearn.benchmarks.cifar10_resnet9 import FAST_RECIPE, CIFAR10ResNet9  # noqa: E402
from pytest_unlearn.benchmarks.spec import RemoteFile  # noqa: E402
from pytest_unlearn.harness.cases import conformance_cases  # noqa: E402
from pytest_unlearn.store import load_or_build  # noqa: E402
from pytest_unlearn.store.data_files import provide_data  # noqa: E402
from pytest_unlearn.store.manifest import read_manifest  # noqa: E402
from pytest_unlearn.training import ensemble_logits  # noqa: E402

NAME = "cifar10-resnet9"
METHODS = ("examples.finetune:unlearn", "examples.retrain:unlearn")


def _smoke_benchmark(folder: Path) -> CIFAR10ResNet9:
    """A miniature cifar10-resnet9 reading a random archive in the official format."""
    path = folder / "cifar-10-binary.tar.gz"
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        names = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
        for name in names:
            n = 60 if name != "test_batch.bin" else 100
            records = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
            records[:, 0] %= 10
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = records.nbytes
            tar.addfile(info, io.BytesIO(records.tobytes()))
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()

    class SmokeCIFAR(CIFAR10ResNet9):
        n_train, n_validation, widths = 300, 100, (4, 8, 8, 4)
        recipe = replace(FAST_RECIPE, epochs=1, batch_size=64, peak_epoch=0)
        archive = RemoteFile(url=f"file://{path}", filename=path.name, md5=md5)
        forget_size, sequential_requests = 20, (2, 5)

    os.environ["PYTEST_UNLEARN_CIFAR10"] = str(path)
    return SmokeCIFAR()


def _confident(margins: torch.Tensor, columns: torch.Tensor) -> float:
    """Mean over members of the share of points whose margin is positive: the true class
    outweighs all others together (p > 1/2), a lower bound on top-1 accuracy."""
    return float((margins[:, columns] > 0).float().mean())


def _top1(bench: CIFAR10ResNet9, params: dict[str, torch.Tensor], columns: torch.Tensor) -> float:
    """Mean top-1 accuracy of the stacked members on ``columns``."""
    data = bench.load_data()
    logits = ensemble_logits(bench.build_model, params, data.inputs[columns], points_at_once=2000)
    return float((logits.argmax(-1).cpu() == data.targets[columns]).float().mean())


def _shown(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", type=int, default=50, help="N (default 50: the quick profile)")
    parser.add_argument("--cache-dir", type=Path, help="default: a fresh temporary directory")
    parser.add_argument("--workers", type=int, default=4, help="pytest-xdist workers (-n)")
    parser.add_argument("--smoke", action="store_true", help="CPU, miniature data (see above)")
    args = parser.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="cifar10-gpu-check-"))
    xdist: list[str] = ["-n", str(args.workers), "--dist", "loadgroup"]
    if args.smoke:
        args.device, args.models, xdist = "cpu", 4, []  # in-process: the tiny registry is ours
        bench = _smoke_benchmark(cache)
        registry._REGISTRY = MappingProxyType({NAME: bench})
    else:
        bench = registry.get_benchmark(NAME)
    device = torch.device(args.device)
    print(f"== cifar10-resnet9 check: device {device}, N={args.models}, cache {cache}")
    if device.type == "cuda":
        print(f"   GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")

    started = time.perf_counter()
    ready = provide_data(bench, cache / "data", log=print)
    data = ready.load_data()
    print(f"== data: {len(data.targets)} images ready in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    ensembles = load_or_build(ready, args.models, cache, device=device, log=print)
    build_seconds = time.perf_counter() - started
    requests = sum(len(fs.requests) for fs in ready.forget_sets)
    trained = args.models * (1 + 2 * requests)
    store = cache / NAME / ready.fingerprint()
    print(
        f"== build: {trained} models in {build_seconds:.0f}s = "
        f"{trained * 3600 / build_seconds:.0f} models/hour; one exact retraining "
        f"{read_manifest(store).retrain_seconds}"
    )

    validation = data.validation_indices
    top1 = _top1(ready, ensembles.pretrained_params, validation)
    print(f"== validation accuracy (mean over {args.models} members): pretrained top-1 {top1:.4f}")
    print(
        "   share of images with margin > 0 (true class over p = 1/2; oracles store margins only):"
    )
    print(f"   pretrained            {_confident(ensembles.pretrained_margins, validation):.4f}")
    for (forget_set, request), halves in sorted(ensembles.oracles.items()):
        label = f"oracle {forget_set} req{request}"
        print(f"   {label:<21} {_confident(halves.half_a, validation):.4f}")

    quick = [c.id for c in conformance_cases([NAME], "quick", lambda name: ready)]
    for method in METHODS:
        report = cache / f"report-{method.split(':')[0].split('.')[-1]}.json"
        started = time.perf_counter()
        code = pytest.main(
            [
                f"--rootdir={REPO}",
                "-p",
                "no:cacheprovider",
                # This process imported the plugin before pytest could rewrite its asserts.
                "-W",
                "ignore::pytest.PytestAssertRewriteWarning",
                "-q",
                f"--unlearn-method={method}",
                f"--unlearn-benchmark={NAME}",
                f"--unlearn-device={device}",
                f"--unlearn-models={args.models}",
                "--unlearn-profile=quick",
                f"--unlearn-cache-dir={cache}",
                f"--unlearn-report={report}",
                *xdist,
            ]
        )
        seconds = time.perf_counter() - started
        records = json.loads(report.read_text())["records"] if report.exists() else []
        print(f"== {method}: pytest exit {int(code)} in {seconds:.0f}s ({len(quick)} quick cases)")
        header = f"{'case':<38} {'p95':>8} {'floor':>8} {'threshold':>8}  {'verdict':<8}"
        print(f"   {header}{'score':>6} s/call")
        for r in sorted(records, key=lambda r: str(r["nodeid"])):
            fields = [r.get(k) for k in ("p95", "floor", "threshold")]
            figures = " ".join(f"{v:8.4f}" if isinstance(v, float) else f"{'-':>8}" for v in fields)
            score, per_call = r.get("score"), r.get("method_seconds_per_model")
            print(
                f"   {r['test_id'] or r['nodeid']!s:<38} {figures}  "
                f"{r.get('verdict') or '-':<8}{_shown(score, 0):>6} {_shown(per_call, 2)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
