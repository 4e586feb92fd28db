#!/usr/bin/env bash
# Makes gpu-payload/ (gitignored), what bench/gpu-smoke.sh needs on the GPU machine besides the
# checkout: that machine has no network and takes at most 64 MiB of carried files in all, so
# the payload is the stripped, xz-compressed CUDA build of tartan, all-MiniLM-L6-v2 with its
# weights in half precision (gpu-smoke.sh expands them to f32 there), and ChemProt (train, dev,
# test, and the TAPT and DAPT text), compressed.
#
#   cargo build --release --features cuda && bench/gpu-pack.sh
#
# TARTAN_BIN overrides the binary (default $CARGO_TARGET_DIR or target, then release/tartan),
# TARTAN_SHARED the data folder (default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TARTAN_BIN:-${CARGO_TARGET_DIR:-target}/release/tartan}
shared=${TARTAN_SHARED:-../shared}
out=gpu-payload
limit_mib=60 # of the 64 MiB carried; the rest is left for the checkout's own files

[[ -x $bin ]] || { echo "no binary at $bin: cargo build --release --features cuda" >&2; exit 1; }
# A CPU-only build says so when asked for CUDA; a CUDA build goes on to look for a driver.
if "$bin" eval --model /nonexistent --data /nonexistent --device cuda 2>&1 | grep -q "built without CUDA support"; then
  echo "$bin is a CPU-only build: cargo build --release --features cuda" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"

strip -o "$tmp/tartan" "$bin"
xz -T0 -6 -c "$tmp/tartan" > "$out/tartan.xz"

python3 bench/gpu_smoke.py half "$shared/models/all-MiniLM-L6-v2" "$tmp/minilm-f16"
tar -C "$tmp" -cf - minilm-f16 | xz -T0 -6 > "$out/minilm-f16.tar.xz"

mkdir "$tmp/chemprot"
cp "$shared"/datasets/chemprot/{train.jsonl,dev.jsonl,test.jsonl,train.txt,domain.1xTAPT.txt} "$tmp/chemprot/"
tar -C "$tmp" -cf - chemprot | xz -T0 -9 > "$out/chemprot.tar.xz"

{
  echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)')"
  echo "binary $bin, built $(date -r "$bin" -u +%FT%TZ)"
  (cd "$out" && sha256sum tartan.xz minilm-f16.tar.xz chemprot.tar.xz)
} > "$out/MANIFEST"

ls -l "$out"
total=$(du -sbc "$out" | tail -1 | cut -f1)
echo "payload: $((total / 1048576)) MiB (limit ${limit_mib} MiB)"
if ((total > limit_mib * 1048576)); then
  echo "the payload is over ${limit_mib} MiB: it would not fit beside the checkout in the 64 MiB carried" >&2
  exit 1
fi
