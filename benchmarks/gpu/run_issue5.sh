#!/usr/bin/env bash
# Issue 5's measurements in one go on the GPU machine (one device call, about 9 minutes on defaults):
#   1. random-weight checkpoints of the Llama-3-8B and Qwen2.5-0.5B shapes (make_random_checkpoint.py) under $CKPT_DIR
#   2. per shape: baselines.py (HF generate / forward, plain PyTorch loop, HBM roofline), then GpuBench perf reading them
#   3. with 2+ GPUs: GpuBench transfer (KV transfer vs raw copy), ttft across the two GPUs (the transfer's cost to the first
#      and second token), ipc and two-process (a prefill process and a decode process, one GPU each; GPU-direct needs
#      DISAGG_NATIVE_DIR), then the serving sweep (long workload, three configurations)
# Every JSON, PNG and log goes to OUT_DIR; a table of all targets is printed at the end (and written to summary.txt).
#
# usage: benchmarks/gpu/run_issue5.sh GPUBENCH [OUT_DIR]
#   GPUBENCH  the self-contained publish of benchmarks/Disagg.GpuBench: its folder or the Disagg.GpuBench file in it
#   OUT_DIR   default: $OUT
# Environment (default):
#   DISAGG_COMMIT      the commit being measured, written into every result (git rev-parse HEAD where there is a .git)
#   CKPT_DIR           where checkpoints are made or reused (/tmp/disagg-ckpt)
#   SHAPES             shapes for baselines + perf ("llama3-8b qwen2.5-0.5b")
#   RUN_PERF           1: baselines.py and GpuBench perf per shape (1)
#   RUN_TRANSFER       1 / 0 / auto: GpuBench transfer, auto = when 2+ GPUs (auto)
#   RUN_TTFT           1 / 0 / auto: GpuBench ttft cuda:0 -> cuda:1 on TTFT_SHAPES, auto = when 2+ GPUs (auto)
#   TTFT_SHAPES        shapes for ttft ("qwen2.5-0.5b llama3-8b"); TTFT_PROMPT_TOKENS (2048)
#   RUN_TWO_PROCESS    1 / 0 / auto: GpuBench ipc and two-process on SERVE_SHAPE, auto = when 2+ GPUs (auto)
#   RUN_SERVE          1 / 0 / auto: the serving sweep, auto = when 2+ GPUs (auto)
#   SERVE_SHAPE        model shape for serving (llama3-8b)
#   SERVE_WORKLOADS    "long" and/or "chat" (long)
#   SERVE_RATES        offered request rates, comma-separated (2,6)
#   SERVE_REQUESTS     requests per run (20)
#   SLO_TTFT_MS, SLO_ITL_MS, SLO_ITL_STAT   the objective for goodput (1500, 60, p90)
#   PERF_ARGS, BASELINE_ARGS, SERVE_ARGS    extra arguments for GpuBench perf, baselines.py, GpuBench serve
#   BUDGET_S           a step that would start after this many seconds is skipped, and every step is cut off there (540)
set -uo pipefail

BENCH=${1:?usage: run_issue5.sh GPUBENCH [OUT_DIR]}
OUT_DIR=${2:-${OUT:?give OUT_DIR or set OUT}}
[ -d "$BENCH" ] && BENCH="$BENCH/Disagg.GpuBench"
[ -x "$BENCH" ] || { echo "error: $BENCH is not an executable Disagg.GpuBench" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
mkdir -p "$OUT_DIR/logs"
export DISAGG_COMMIT=${DISAGG_COMMIT:-$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)}
CKPT_DIR=${CKPT_DIR:-/tmp/disagg-ckpt}
SHAPES=${SHAPES:-"llama3-8b qwen2.5-0.5b"}
SERVE_SHAPE=${SERVE_SHAPE:-llama3-8b}
BUDGET_S=${BUDGET_S:-540}
START=$(date +%s)
GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || true

stamp() { echo "[$(date -u +%H:%M:%S) +$(( $(date +%s) - START ))s] $*"; }

# step NAME COMMAND...: runs COMMAND with its output in logs/NAME.log, within what is left of the budget.
step() {
  local name=$1; shift
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -le 10 ]; then stamp "SKIP $name (budget of ${BUDGET_S}s spent)"; echo "$name skipped" >> "$OUT_DIR/steps.txt"; return 1; fi
  stamp "start $name"
  timeout --kill-after=15 "$left" "$@" > "$OUT_DIR/logs/$name.log" 2>&1
  local rc=$?
  stamp "done  $name rc=$rc"
  echo "$name rc=$rc" >> "$OUT_DIR/steps.txt"
  [ "$rc" -ne 0 ] && tail -n 15 "$OUT_DIR/logs/$name.log"
  return "$rc"
}

# checkpoint SHAPE: sets CKPT to that shape's random checkpoint, making it unless it is there from an earlier run.
checkpoint() {
  CKPT="$CKPT_DIR/$1"
  [ -f "$CKPT/model.safetensors" ] || step "checkpoint-$1" python3 "$HERE/make_random_checkpoint.py" --shape "$1" --out "$CKPT"
}

wanted() { [ "$1" = 1 ] || { [ "$1" = auto ] && [ "$GPUS" -ge 2 ]; }; }

stamp "commit $DISAGG_COMMIT, $GPUS GPU(s), results in $OUT_DIR"
if [ "${RUN_PERF:-1}" = 1 ]; then
  for shape in $SHAPES; do
    checkpoint "$shape" || continue
    # shellcheck disable=SC2086 # extra arguments are meant to split
    step "baselines-$shape" python3 "$HERE/baselines.py" --model "$CKPT" --out "$OUT_DIR/baselines-$shape.json" ${BASELINE_ARGS:-}
    # shellcheck disable=SC2086
    step "perf-$shape" "$BENCH" perf --model "$CKPT" --baselines "$OUT_DIR/baselines-$shape.json" \
      --chart "$OUT_DIR/perf-$shape.png" --out "$OUT_DIR/perf-$shape.json" ${PERF_ARGS:-}
  done
fi
if wanted "${RUN_TRANSFER:-auto}"; then
  step transfer "$BENCH" transfer --src cuda:0 --dst cuda:1 --out "$OUT_DIR/transfer.json"
fi
if wanted "${RUN_TTFT:-auto}"; then
  for shape in ${TTFT_SHAPES:-qwen2.5-0.5b llama3-8b}; do
    checkpoint "$shape" || continue
    step "ttft-$shape" "$BENCH" ttft --model "$CKPT" --prefill cuda:0 --decode cuda:1 \
      --prompt-tokens "${TTFT_PROMPT_TOKENS:-2048}" --tokens 64 --out "$OUT_DIR/ttft-$shape.json"
  done
fi
if wanted "${RUN_TWO_PROCESS:-auto}"; then
  [ -n "${DISAGG_NATIVE_DIR:-}" ] || stamp "DISAGG_NATIVE_DIR is not set: ipc fails and two-process runs without its GPU-direct row"
  step ipc "$BENCH" ipc --prefill cuda:0 --decode cuda:1 --out "$OUT_DIR/ipc.json"
  if checkpoint "$SERVE_SHAPE"; then
    step "two-process-$SERVE_SHAPE" "$BENCH" two-process --model "$CKPT" --prefill cuda:0 --decode cuda:1 \
      --prompt-tokens "${TTFT_PROMPT_TOKENS:-2048}" --tokens 64 --out "$OUT_DIR/two-process-$SERVE_SHAPE.json"
  fi
fi
if wanted "${RUN_SERVE:-auto}"; then
  if checkpoint "$SERVE_SHAPE"; then
    for workload in ${SERVE_WORKLOADS:-long}; do
      # shellcheck disable=SC2086
      step "serve-$workload" "$BENCH" serve --model "$CKPT" --workload "$workload" --rates "${SERVE_RATES:-2,6}" \
        --requests "${SERVE_REQUESTS:-20}" --slo-ttft-ms "${SLO_TTFT_MS:-1500}" --slo-itl-ms "${SLO_ITL_MS:-60}" \
        --slo-itl-stat "${SLO_ITL_STAT:-p90}" --chart "$OUT_DIR/serve-$workload.png" --out "$OUT_DIR/serve-$workload.json" ${SERVE_ARGS:-}
    done
  fi
fi

stamp "targets:"
python3 - "$OUT_DIR" <<'EOF' | tee "$OUT_DIR/summary.txt"
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{os.path.basename(path)}: unreadable ({e})")
        continue
    for e in report.get("errors", []):
        print(f"{os.path.basename(path)}: error in {e['name']}: {e['error']}")
    for t in report.get("targets", []):
        b = t["baseline"]
        fmt = lambda v: "-" if v is None else f"{v:.4g}"
        verdict = {True: "MET", False: "not met", None: "n/a"}[t["met"]]
        print(f"{verdict:8} {t['name']}: {fmt(t['value'])} {t['unit']} (target {t['comparison']} {fmt(t['target'])}; "
              f"baseline {b['name']}: {fmt(b['value'])} {b['unit']})")
EOF
stamp "finished"
