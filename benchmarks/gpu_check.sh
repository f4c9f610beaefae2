#!/usr/bin/env bash
# GPU check, in two parts (CHECK=all, the default; CHECK=conformance or CHECK=workers: one):
#
#  conformance: the quick profile on CUDA with one xdist worker per GPU, then the JSON report.
#  workers:     method calls per second of examples.finetune at 1, 2 and 4 xdist workers per
#               GPU and the ratios to 1 per GPU, then the margins' evaluation time per model,
#               batched vs per-model (benchmarks/bench_workers_per_gpu.py; WORKERS_ARGS adds
#               its options, e.g. WORKERS_ARGS="--models 50 --per-gpu 1,2").
#
#   bash benchmarks/gpu_check.sh [METHOD [PYTEST ARGS...]]   (default examples.retrain:unlearn)
#   DEVICE=cpu bash benchmarks/gpu_check.sh                  (smoke mode, no GPU needed)
#
# METHOD and the extra arguments go to the conformance part's pytest, e.g. `-k knn36` to keep a
# slow method to one forget set. DEVICE=cpu runs both parts on the CPU with tiny settings
# (N=4; the figures mean nothing there): it only checks that the script works.
#
# Runs from the repository root with the machine's own python3 and CUDA torch (a GPU machine
# here has no network: missing packages travel as wheels, see the device tool's README). The
# plugin itself is installed editable without build isolation, so nothing is downloaded.
set -euo pipefail
method="${1:-examples.retrain:unlearn}"
shift || true
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
check=${CHECK:-all}
case "$check" in all | conformance | workers) ;; *) echo "CHECK=$check: all, conformance or workers" >&2; exit 2 ;; esac
if ! "$python" -c "import pytest_unlearn.conformance" 2>/dev/null; then
    "$python" -m pip install --quiet --no-deps --no-build-isolation -e .
fi
if [ "$device" = cpu ]; then
    echo "smoke mode on the CPU: tiny settings, figures not representative of a GPU"
    gpus=1
    tiny=(--unlearn-models=4 --unlearn-threads=1)
else
    nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
    gpus=$("$python" -c "import torch; print(torch.cuda.device_count())")
    [ "$gpus" -ge 1 ] || { echo "no GPU visible to torch" >&2; exit 1; }
    tiny=()
fi
devices="${gpus} GPU(s)"
[ "$device" != cpu ] || devices="the CPU"
echo "torch $("$python" -c 'import torch; print(torch.__version__)'), ${devices}"
status=0
if [ "$check" != workers ]; then
    report="${OUT:-.}/gpu_report.json"
    start=$(date +%s)
    PYTHONUNBUFFERED=1 "$python" -m pytest --unlearn-method="$method" --unlearn-profile=quick \
        --unlearn-device="$device" -n "$gpus" --dist load --unlearn-report="$report" \
        -p no:cacheprovider ${tiny[@]+"${tiny[@]}"} "$@" || status=$?
    echo "wall_seconds: $(( $(date +%s) - start ))"
    "$python" - "$report" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for record in report["records"]:
    print(f"{record['test_id']:<40} {record['outcome']:<8} P95 {record['p95']!s:<8} "
          f"threshold {record['threshold']!s:<8} device {record['device']}")
PY
fi
if [ "$check" != conformance ]; then
    # shellcheck disable=SC2086  # WORKERS_ARGS is a list of options
    PYTHONUNBUFFERED=1 "$python" benchmarks/bench_workers_per_gpu.py --device "$device" \
        ${WORKERS_ARGS:-} || status=$?
fi
exit "$status"
