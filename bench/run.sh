#!/usr/bin/env bash
# Runs every `tartan bench` workload in its own process (so each peak RSS is its own) and
# prints one JSON line per workload. Run on an idle machine:
#   cargo build --release && bench/run.sh [--smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/tartan
extra=("$@")
"$bin" bench step --reps 10 "${extra[@]}"
"$bin" bench forward --reps 10 "${extra[@]}"
"$bin" bench epoch "${extra[@]}"
"$bin" bench eval "${extra[@]}"
for k in 1 2 4; do
  "$bin" bench meta --aux "$k" --reps 3 "${extra[@]}"
done
"$bin" bench corpus --mb 100 "${extra[@]}"
