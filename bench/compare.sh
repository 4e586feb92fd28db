#!/usr/bin/env bash
# Same-run comparison of `tartan bench` with its PyTorch twins (bench/torch_bench.py): for each
# workload, rounds of tartan, PyTorch, tartan, PyTorch ... each run in its own process (so
# each peak RSS is its own), then a Markdown table of the medians over every timed repetition,
# their ratio and the peak RSS. Both sides get the same thread count. Installs ../torch-venv
# if it is missing; builds nothing.
#
#   cargo build --release && bench/compare.sh [--smoke] [--threads N] [--rounds N] [--reps N]
#                                             [--workloads step,forward,eval,meta1,meta2]
set -Eeuo pipefail
cd "$(dirname "$0")/.."

smoke=()
threads=$(nproc)
rounds=3
reps=""
workloads="step,forward,eval,meta1,meta2"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=(--smoke) ;;
    --threads) threads="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    --workloads) workloads="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

bin="${CARGO_TARGET_DIR:-target}/release/tartan"
if [ ! -x "$bin" ]; then
  echo "bench/compare.sh: $bin not found; run \`cargo build --release\` first" >&2
  exit 1
fi
venv=../torch-venv
if [ ! -x "$venv/bin/python" ]; then
  echo "installing PyTorch into $venv (about 3 minutes, 4.9 GB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install torch==2.13.0 transformers tokenizers
fi
shared="${TARTAN_SHARED:-../shared}"
data=(--model "$shared/models/all-MiniLM-L6-v2" --task "$shared/datasets/chemprot")

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
trap 'echo "bench/compare.sh: a run failed; its log:" >&2; tail -n 30 "$out/log" >&2' ERR

# run FILE THREADS tartan|torch ARGS...: one process, its JSON line appended to FILE.
run() {
  local file="$1" n="$2" side="$3"
  shift 3
  if [ "$side" = tartan ]; then
    RAYON_NUM_THREADS="$n" "$bin" bench "$@" "${data[@]}" "${smoke[@]}" 2>>"$out/log" | tail -n 1 >>"$out/$file"
  else
    OMP_NUM_THREADS="$n" MKL_NUM_THREADS="$n" "$venv/bin/python" bench/torch_bench.py "$@" --threads "$n" \
      "${data[@]}" "${smoke[@]}" 2>>"$out/log" | tail -n 1 >>"$out/$file"
  fi
}

reps_or() { echo "${reps:-$1}"; }

echo "tartan $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $threads threads, $rounds rounds${smoke:+, smoke sizes}; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for w in ${workloads//,/ }; do
  echo "== $w" >&2
  for ((r = 1; r <= rounds; r++)); do
    case "$w" in
      step | forward)
        run "$w.tartan" "$threads" tartan "$w" --reps "$(reps_or 5)"
        run "$w.torch" "$threads" torch "$w" --reps "$(reps_or 5)"
        if [ "$w" = step ] && [ "$threads" -gt 1 ]; then
          run step.tartan1 1 tartan step --reps "$(reps_or 5)"
        fi
        ;;
      eval)
        run eval.tartan "$threads" tartan eval
        run eval.torch "$threads" torch eval
        ;;
      meta1 | meta2)
        k="${w#meta}"
        run "$w.tartan" "$threads" tartan meta --aux "$k" --reps "$(reps_or 2)"
        run "$w.reference" "$threads" torch meta --aux "$k" --variant reference --reps "$(reps_or 2)"
        run "$w.cached" "$threads" torch meta --aux "$k" --variant cached --reps "$(reps_or 2)"
        ;;
      *) echo "bench/compare.sh: unknown workload $w" >&2; exit 2 ;;
    esac
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$venv/bin/python" - "$out" "$threads" "${smoke[@]}" <<'EOF'
import json, os, sys

out, threads = sys.argv[1], int(sys.argv[2])
size = "2 x 16" if "--smoke" in sys.argv else "16 x 128"


def runs(name):
    path = os.path.join(out, name)
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def summary(name):
    """Median seconds over every timed repetition of every run (eval: of each run's examples/s,
    turned into seconds per example), the peak RSS over the runs, and the repetitions."""
    rs = runs(name)
    if not rs:
        return None
    if "times" in rs[0]:
        times = [t for r in rs for t in r["times"]]
        return median(times), max(r["peak_rss_mb"] for r in rs) / 1024, len(times)
    return 1 / median([r["median"] for r in rs]), max(r["peak_rss_mb"] for r in rs) / 1024, len(rs)


def fmt(s, eval_):
    return f"{1 / s:.1f} ex/s" if eval_ else f"{s:.3f} s"


rows = [(f"fine-tune training step {size}", "step.tartan", "step.torch"),
        (f"forward only {size}", "forward.tartan", "forward.torch"),
        ("evaluation, ChemProt dev, batch 64", "eval.tartan", "eval.torch")]
for k in (1, 2):
    rows += [(f"META-TARTAN step, {k} aux, {size}, vs the reference algorithm", f"meta{k}.tartan", f"meta{k}.reference"),
             (f"META-TARTAN step, {k} aux, {size}, vs the reference with dev features cached", f"meta{k}.tartan",
              f"meta{k}.cached")]
print("Medians over every timed repetition; the ratio is tartan's time over PyTorch's (below 1: tartan is faster).\n")
print("| workload | tartan | PyTorch | tartan / PyTorch (time) | tartan peak RSS | PyTorch peak RSS | repetitions (tartan, PyTorch) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for label, a, b in rows:
    sa, sb = summary(a), summary(b)
    if not sa or not sb:
        continue
    ev = a.startswith("eval")
    print(f"| {label} | {fmt(sa[0], ev)} | {fmt(sb[0], ev)} | {sa[0] / sb[0]:.2f}x | {sa[1]:.2f} GB | {sb[1]:.2f} GB | {sa[2]}, {sb[2]} |")
versions = {r["torch"] for f in os.listdir(out) if f.endswith((".torch", ".reference", ".cached")) for r in runs(f)}
print(f"\nPyTorch {', '.join(sorted(versions))}, {threads} threads on both sides.")
one, many = summary("step.tartan1"), summary("step.tartan")
if one and many:
    print(f"tartan training step, 1 thread vs {threads}: {one[0]:.3f} s / {many[0]:.3f} s = {one[0] / many[0]:.2f}x")
EOF
