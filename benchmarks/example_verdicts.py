"""Record the verdicts the plugin's own CI expects from every example (quick profile, N=16).

    python benchmarks/example_verdicts.py [--cache-dir DIR]

Runs each example in ``examples/`` through the suite exactly as
``tests/test_examples_methods.py`` does (digits-mlp, quick profile, N=16, one torch thread)
and writes ``tests/data/example_verdicts.json``: per method, the verdict of every case whose
P95 KLoM lies more than ``MARGIN`` (relative) from its threshold. Cases closer than that are
listed as borderline and not compared, since float differences between CPUs could flip them;
the others flipping means a change to the suite changed a verdict. Rerun this script (and
review the diff) when such a change is intended.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from results_table import METHODS  # the examples, in the results table's order

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "tests" / "data" / "example_verdicts.json"
MODELS = 16
MARGIN = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ev16")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import pytest

    from pytest_unlearn.report.json_report import load_report

    torch.set_num_threads(1)
    expected: dict[str, dict[str, object]] = {"models": MODELS, "margin": MARGIN}
    for method in METHODS:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            pytest.main(
                [
                    f"--unlearn-method=examples.{method}:unlearn",
                    "--unlearn-profile=quick",
                    f"--unlearn-models={MODELS}",
                    f"--unlearn-cache-dir={args.cache_dir}",
                    f"--unlearn-report={report}",
                    "--unlearn-threads=1",
                    "-p",
                    "no:cacheprovider",
                    "-q",
                ]
            )
            records = load_report(report)["records"]
        verdicts, borderline = {}, []
        for record in records:
            distance = abs(record["p95"] - record["threshold"]) / record["threshold"]
            if distance > MARGIN:
                verdicts[record["test_id"]] = record["verdict"]
            else:
                borderline.append(record["test_id"])
        expected[method] = {"verdicts": verdicts, "borderline": borderline}
        print(f"{method}: {verdicts} borderline {borderline}")
    OUTPUT.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
