#!/usr/bin/env bash
# The GPU check (issue #18): every GPU figure of benchmarks/run.py on one GPU within 8 minutes, with no
# network (random DiT-XL/2-shaped weights, the bundled digits), written to results/benchmarks-gpu.md.
# Extra arguments go to run.py (e.g. --out elsewhere, --budget 600).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
exec python benchmarks/run.py --device cuda --budget 480 --skip-e2e --out results/benchmarks-gpu.md "$@"
