#!/usr/bin/env bash
# The issue-17 GPU check: build the quick-profile cifar10-resnet9 store from an empty cache on
# one GPU, then evaluate examples.finetune and examples.retrain on it; prints build time,
# models per hour, accuracy, KLoM floors and verdicts (benchmarks/cifar10_gpu_check.py).
#
#   bash benchmarks/cifar10_gpu_check.sh            # needs CUDA and the CIFAR-10 archive
#   bash benchmarks/cifar10_gpu_check.sh --smoke    # CPU, miniature data: checks the script
#
# The archive is fetched from its official URL, or read from PYTEST_UNLEARN_CIFAR10.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/cifar10_gpu_check.py "$@"
