#!/usr/bin/env bash
# GPU check: the quick profile on CUDA with one xdist worker per GPU, then the JSON report.
#
#   bash benchmarks/gpu_check.sh [METHOD [PYTEST ARGS...]]   (default examples.retrain:unlearn)
#
# Extra arguments go to pytest, e.g. `-k knn36` to keep a slow method to one forget set.
#
# Runs from the repository root with the machine's own python3 and CUDA torch (a GPU machine
# here has no network: missing packages travel as wheels, see the device tool's README). The
# plugin itself is installed editable without build isolation, so nothing is downloaded.
set -euo pipefail
method="${1:-examples.retrain:unlearn}"
shift || true
python=${PYTHON:-python3}
if ! "$python" -c "import pytest_unlearn.conformance" 2>/dev/null; then
    "$python" -m pip install --quiet --no-deps --no-build-isolation -e .
fi
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
gpus=$("$python" -c "import torch; print(torch.cuda.device_count())")
echo "torch $("$python" -c 'import torch; print(torch.__version__)'), ${gpus} GPU(s)"
[ "$gpus" -ge 1 ] || { echo "no GPU visible to torch" >&2; exit 1; }
report="${OUT:-.}/gpu_report.json"
start=$(date +%s)
status=0
PYTHONUNBUFFERED=1 "$python" -m pytest --unlearn-method="$method" --unlearn-profile=quick \
    --unlearn-device=cuda -n "$gpus" --dist load --unlearn-report="$report" \
    -p no:cacheprovider "$@" || status=$?
echo "wall_seconds: $(( $(date +%s) - start ))"
"$python" - "$report" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for record in report["records"]:
    print(f"{record['test_id']:<40} {record['outcome']:<8} P95 {record['p95']!s:<8} "
          f"threshold {record['threshold']!s:<8} device {record['device']}")
PY
exit "$status"
