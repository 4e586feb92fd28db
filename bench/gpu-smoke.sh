#!/usr/bin/env bash
# The GPU check of tartan, in one run on a machine with one NVIDIA GPU, its driver, the CUDA
# toolkit (NVRTC and headers: tartan compiles its kernels at run time) and PyTorch with
# transformers, and no network. It needs the checkout and gpu-payload/ (bench/gpu-pack.sh);
# paths are relative to the repository root; every result goes to $OUT:
#
#   OUT=/some/folder bench/gpu-smoke.sh
#
#   parity.json                 CPU vs GPU logits, loss and encoder gradients (16 x 128, dropout off)
#   parity-bf16.json            the same, the GPU in bf16 (train.precision) against the CPU in f32
#   tartan-{step,meta}-{32x128,64x512}-{f32,bf16}.json   tartan's timings
#   torch-{step,meta}-...json   PyTorch's, same steps, same GPU, same run (torch-all.*: the process)
#   {tartan,torch}-base-step-64x512-{f32,bf16}.json   the fine-tune step of a roberta-base-shaped
#                               model with random weights (gpu_smoke.py base; torch-base.*: the process)
#   train-{finetune,meta-tartan}-200.json   200-step ChemProt runs: dev/test accuracy, seconds
#   train-finetune-200-bf16.json            the fine-tune in bf16 (last: skipped if time runs out)
#   *.mem                        peak GPU memory in use while that part ran (nvidia-smi, MiB)
#   summary.md, summary.json     the table: times, tartan/PyTorch ratios, MFU, memory
#   env.txt, log.txt, *.err      the machine, the timeline, each part's stderr
#
# Every part has a time cap and the whole run, unpacking included, stays within SMOKE_BUDGET_S
# seconds (default 440, under 8 minutes); a part that fails or runs out of time is recorded as
# such and the rest go on. SMOKE_PARTS, a bash regex, runs only the parts whose names match it
# (to re-run what failed: SMOKE_PARTS='^(parity|train-finetune-200)$').
# PEAK_TFLOPS (default 989, the H200 SXM's dense bf16 tensor-core peak from NVIDIA's spec sheet)
# is what MFU is measured against.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
budget=${SMOKE_BUDGET_S:-440}
pay=gpu-payload
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { echo "[+$((SECONDS - t0))s] $*" | tee -a "$OUT/log.txt" >&2; }

# run NAME CAP CMD...: CMD's stdout to $OUT/NAME.json and stderr to $OUT/NAME.err, at most CAP
# seconds (less when the budget is nearly spent); the peak GPU memory in use meanwhile to
# $OUT/NAME.mem. A failure becomes a JSON line saying why.
run() {
  local name=$1 cap=$2 left start rc smi
  shift 2
  [[ $name =~ ${SMOKE_PARTS:-.} ]] || return 0
  left=$((budget - (SECONDS - t0) - 20))
  ((left < cap)) && cap=$left
  if ((cap < 10)); then
    log "$name: skipped, the time budget is spent"
    echo '{"error": "skipped: the time budget was spent"}' > "$OUT/$name.json"
    return
  fi
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$work/$name.smi" 2> /dev/null &
  smi=$!
  start=$SECONDS
  timeout "$cap" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  rc=$?
  kill "$smi" 2> /dev/null
  wait "$smi" 2> /dev/null
  sort -n "$work/$name.smi" | tail -1 > "$OUT/$name.mem"
  echo $((SECONDS - start)) > "$OUT/$name.wall"
  if ((rc != 0)); then
    local why="exit status $rc"
    ((rc == 124)) && why="stopped after its ${cap} s cap"
    python3 -c 'import json, sys; print(json.dumps({"error": sys.argv[1], "stderr_tail": open(sys.argv[2], errors="replace").read()[-3000:]}))' \
      "$why" "$OUT/$name.err" >> "$OUT/$name.json"
  fi
  log "$name: exit $rc after $((SECONDS - start)) s"
}

t0=$SECONDS
[[ -f $pay/tartan.xz ]] || { echo "no $pay/: make it with bench/gpu-pack.sh and carry it" >&2; exit 1; }
log "unpacking"
xz -dc "$pay/tartan.xz" > "$work/tartan" && chmod +x "$work/tartan"
tar -C "$work" -xJf "$pay/minilm-f16.tar.xz"
tar -C "$work" -xJf "$pay/chemprot.tar.xz"
python3 bench/gpu_smoke.py expand "$work/minilm-f16" "$work/minilm"
bin=$work/tartan model=$work/minilm task=$work/chemprot
export SMOKE_MODEL=$model

# NVRTC, which tartan's CUDA kernels are compiled with, from the toolkit or a pip wheel.
if ! ldconfig -p 2> /dev/null | grep -q 'libnvrtc\.so'; then
  for d in "${CUDA_PATH:-/usr/local/cuda}"/lib64 "${CUDA_PATH:-/usr/local/cuda}"/targets/*/lib \
    $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2> /dev/null); do
    lib=$(find "$d" -maxdepth 4 -name 'libnvrtc.so*' 2> /dev/null | head -1)
    [[ -n $lib ]] && export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" && break
  done
fi
{
  cat "$pay/MANIFEST"
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version 2>&1 | tail -2
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "CUDA_PATH=${CUDA_PATH:-}"
  lscpu | grep -E 'Model name|^CPU\(s\)'
} > "$OUT/env.txt" 2>&1
log "unpacked; $(head -1 "$OUT/env.txt")"

# No network there: transformers must not try the Hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
common=(--model "$model" --task "$task" --device cuda)

# verdict FILE LOGITS GRADS: adds pass/FAIL to a parity result, against those relative L2 tolerances.
verdict() {
  [[ -f $1 ]] || return 0 # skipped by SMOKE_PARTS
  python3 - "$@" << 'EOF'
import json, sys
path, tol_logits, tol_grads = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
lines = open(path).read().strip().splitlines()
r = json.loads(lines[-1]) if lines else {"error": "no output"}
if "logits_rel_l2" in r:
    ok = r["logits_rel_l2"] < tol_logits and r["grads_rel_l2"] < tol_grads
    r["verdict"] = "pass" if ok else "FAIL"
    r["tolerance"] = {"logits_rel_l2": tol_logits, "grads_rel_l2": tol_grads}
    open(path, "w").write(json.dumps(r) + "\n")
EOF
}

# CPU vs GPU first: whether the GPU's numbers mean anything.
run parity 90 "$bin" bench parity "${common[@]}" --batch 16 --len 128
# On tensor cores cubek-matmul computes f32 matmuls in TF32 (10-bit mantissa), so "f32" on the
# GPU is TF32's accuracy: on the H200, 2026-11-30, logits 5.3e-4 and gradients 1.6e-3 (pure f32
# would be ~1e-6 and ~1e-5). 2e-3 and 1e-2 pass TF32 and catch a wrong kernel or layout.
verdict "$OUT/parity.json" 2e-3 1e-2
run parity-bf16 60 "$bin" bench parity "${common[@]}" --batch 16 --len 128 --precision bf16
# bf16 against f32 on this batch, both on the CPU: 5.0e-3 (logits) and 1.5e-2 (gradients).
verdict "$OUT/parity-bf16.json" 2e-2 5e-2

# The parts run in the order of what matters most when the budget runs short: correctness,
# the fine-tune step against PyTorch, META-TARTAN's step, accuracy, then the larger model.
for kind in step meta; do
  for shape in 32x128 64x512; do
    b=${shape%x*} l=${shape#*x}
    for dtype in f32 bf16; do
      if [[ $kind == step ]]; then
        run "tartan-step-$shape-$dtype" 45 "$bin" bench step "${common[@]}" --precision "$dtype" --batch "$b" --len "$l" --reps 6
      else
        run "tartan-meta-$shape-$dtype" 60 "$bin" bench meta "${common[@]}" --precision "$dtype" --aux 1 --batch "$b" --len "$l" --reps 3
      fi
    done
  done
done
# One process for every PyTorch configuration (torch-all.json lists them; each also has its own file).
run torch-all 150 python3 bench/gpu_smoke.py torch --model "$model" --task "$task" --out "$OUT" --reps 6

# 200 optimizer steps on ChemProt with the TARTAN reference settings (configs/), evaluated on
# dev and test at steps 100 and 200. META-TARTAN's MLM-head warm-up is capped at 200 steps (the
# default, 1000, could take the part's whole cap). docs/BENCHMARKS.md has both on the CPU.
sets=(--set "model.name=$model" --set "task.train=$task/train.jsonl" --set "task.dev=$task/dev.jsonl"
  --set "task.test=$task/test.jsonl" --set train.max_steps=200 --set eval.every_steps=100)
run train-finetune-200 120 "$bin" train --config configs/chemprot-tartan-finetune.toml --device cuda \
  "${sets[@]}" --set "output_dir=$work/runs/finetune"
run train-meta-tartan-200 150 "$bin" train --config configs/chemprot-tartan-meta-tartan.toml --device cuda \
  "${sets[@]}" --set "output_dir=$work/runs/meta-tartan" \
  --set mlm_warmup.max_steps=200 --set "aux=[{name=\"tapt\", file=\"$task/train.txt\", batch_size=16, block_size=128}, {name=\"dapt\", file=\"$task/domain.1xTAPT.txt\", batch_size=16, block_size=128}]"
# MiniLM is small for an H200: the same fine-tune step with roberta-base's layer shapes.
# (A re-run of the base parts names base-model in SMOKE_PARTS too.)
run base-model 60 python3 bench/gpu_smoke.py base "$model" "$work/base"
for dtype in f32 bf16; do
  run "tartan-base-step-64x512-$dtype" 60 "$bin" bench step --model "$work/base" --task "$task" --device cuda \
    --precision "$dtype" --batch 64 --len 512 --reps 4
done
run torch-base 90 python3 bench/gpu_smoke.py torch --model "$work/base" --task "$task" --out "$OUT" --reps 4 \
  --kinds step --shapes 64x512 --tag base-

# The issue's bar for bf16: accuracy within 0.5 points of the f32 fine-tune above.
run train-finetune-200-bf16 120 "$bin" train --config configs/chemprot-tartan-finetune.toml --device cuda \
  "${sets[@]}" --set "output_dir=$work/runs/finetune-bf16" --set train.precision=bf16

SMOKE_BASE_MODEL=$work/base python3 bench/gpu_smoke.py summary "$OUT" > /dev/null
log "done; $OUT/summary.md"
cat "$OUT/summary.md"
