"""Methods that try to pass without unlearning, run through the suite: what each one scores.

    python benchmarks/bench_cheats.py [--models 30] [--python PATH] [--cache-dir DIR]

Each cheat below is written into a scratch directory and run as ``--unlearn-method`` on the
quick profile of digits-mlp (knn36 and the seq3x12 schedule: 12 cases), by the interpreter
``--python`` (default: this one), so the same script measures another installation of the
plugin too (for example an earlier commit's, to compare before and after a change). Printed
per cheat: how many cases passed, failed and were inconclusive, and the P95 with its
threshold on each case's forget split. ``retrain`` (exact unlearning, fresh seeds) is the
reference that should pass.

The cheats (docs/threat-model.md ties each to the test that covers it):

``pinned``          do nothing; two members' logits scaled by +1e4 and -1e4 (widen the bins)
``jittered``        do nothing; noise (sd 0.3) added to the last layer's weights
``scaled``          do nothing; every member's logits scaled by 1e4 (beyond the clip)
``temperature``     do nothing; logits divided by 3 (softer margins, nothing forgotten)
``constant``        all parameters zero: one output for every input
``patched_forward`` ships the pretrained parameters; its ``forward`` runs an exact retraining
``answer_key``      retrains with oracle half A's seeds: a copy of the models compared against
``half_retrain``    exact retraining on half of the members, do-nothing on the others
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

_RETRAIN = """
import torch
from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.training import model_seed

def retrained(model, retain, context, role=None, index=None):
    bench = get_benchmark(context.benchmark)
    if role is None:
        seed = context.seed
    else:
        seed = model_seed(bench.name, role, context.model_index)
    params = bench.train_members(retain.indices.cpu(), [seed])
    fresh = bench.build_model()
    fresh.load_state_dict({k: v[0] for k, v in params.items()})
    return fresh.to(context.device)
"""

CHEATS = {
    "retrain": _RETRAIN
    + """
def unlearn(model, forget, retain, context):
    return retrained(model, retain, context)
""",
    "pinned": """
import torch

def unlearn(model, forget, retain, context):
    if context.model_index < 2:
        sign = 1.0 if context.model_index == 0 else -1.0
        with torch.no_grad():
            model[2].weight.mul_(sign * 1e4)
            model[2].bias.mul_(sign * 1e4)
    return model
""",
    "jittered": """
import torch

def unlearn(model, forget, retain, context):
    generator = torch.Generator().manual_seed(context.seed)
    with torch.no_grad():
        model[2].weight.add_(0.3 * torch.randn(model[2].weight.shape, generator=generator))
    return model
""",
    "scaled": """
import torch

def unlearn(model, forget, retain, context):
    with torch.no_grad():
        model[2].weight.mul_(1e4)
        model[2].bias.mul_(1e4)
    return model
""",
    "temperature": """
import torch

def unlearn(model, forget, retain, context):
    with torch.no_grad():
        model[2].weight.div_(3.0)
        model[2].bias.div_(3.0)
    return model
""",
    "constant": """
import torch

def unlearn(model, forget, retain, context):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    return model
""",
    "patched_forward": _RETRAIN
    + """
def unlearn(model, forget, retain, context):
    shadow = retrained(model, retain, context)
    model.forward = shadow.forward
    return model
""",
    "answer_key": _RETRAIN
    + """
def unlearn(model, forget, retain, context):
    role = f"oracle-{context.forget_set}" + (
        f"-req{context.request_index + 1}" if context.forget_set.startswith("seq") else ""
    ) + "-a"
    return retrained(model, retain, context, role=role)
""",
    "half_retrain": _RETRAIN
    + """
def unlearn(model, forget, retain, context):
    return retrained(model, retain, context) if context.model_index % 2 else model
""",
}


def run(python: str, name: str, source: str, models: int, cache: Path, tmp: Path) -> list[dict]:
    (tmp / f"cheat_{name}.py").write_text(source)
    junit = tmp / f"{name}.xml"
    command = [
        python, "-m", "pytest", f"--unlearn-method=cheat_{name}:unlearn",
        f"--unlearn-models={models}", "--unlearn-profile=quick", f"--unlearn-cache-dir={cache}",
        "--unlearn-threads=1", f"--junitxml={junit}", "-p", "no:cacheprovider", "-q",
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
    if completed.returncode not in (0, 1):
        sys.exit(f"{name}: pytest exited {completed.returncode}\n{completed.stdout[-3000:]}")
    records = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "unlearn_case" not in props:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "inconclusive"
        else:
            outcome = "passed"
        failure = case.find("failure")
        violation = failure is not None and "contract violation" in (failure.get("message") or "")
        records.append({
            "case": props["unlearn_case"], "outcome": outcome, "violation": violation,
            "p95": props.get("unlearn_p95"), "threshold": props.get("unlearn_threshold"),
        })  # fmt: skip
    return sorted(records, key=lambda r: r["case"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("cheats", nargs="*", help=f"default: all of {', '.join(CHEATS)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        cache = args.cache_dir or tmp / "cache"
        print(f"interpreter {args.python}, N={args.models}, quick profile of digits-mlp")
        for name in args.cheats or CHEATS:
            records = run(args.python, name, CHEATS[name], args.models, cache, tmp)
            counts = {o: sum(r["outcome"] == o for r in records) for o in
                      ("passed", "failed", "inconclusive")}  # fmt: skip
            forget = "  ".join(
                f"{r['case'].removeprefix('digits-mlp-').removesuffix('-forget')} "
                f"{float(r['p95']):.2f}/{float(r['threshold']):.2f}"
                for r in records
                if r["case"].endswith("-forget") and r["p95"] is not None
            )
            violations = sum(r["violation"] for r in records)
            print(f"{name:<16} passed {counts['passed']:>2}  failed {counts['failed']:>2}  "
                  f"inconclusive {counts['inconclusive']:>2}"
                  + (f"  (contract violations {violations})" if violations else "")
                  + f"  | forget P95/threshold: {forget}")  # fmt: skip


if __name__ == "__main__":
    main()
