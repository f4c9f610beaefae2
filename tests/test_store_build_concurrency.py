"""Concurrent builds of the same local store: one process builds, the others wait and read it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_CHILD = """
import hashlib, sys, torch
from pathlib import Path
from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.store import load_or_build
torch.set_num_threads(1)
log_path = Path(sys.argv[2])

def log(message):
    if "building" in message:
        with log_path.open("a") as handle:
            handle.write(message + "\\n")

ensembles = load_or_build(get_benchmark("digits-mlp"), 2, Path(sys.argv[1]), log=log)
print(hashlib.sha256(ensembles.pretrained_margins.numpy().tobytes()).hexdigest())
"""


def test_four_processes_build_the_store_exactly_once(tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(cache), str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0] * 4, [err for _, err in results]
    assert len(log.read_text().splitlines()) == 1
    assert len({out.strip() for out, _ in results}) == 1
    leftovers = [p.name for p in (cache / "digits-mlp").iterdir() if ".building-" in p.name]
    assert leftovers == []
