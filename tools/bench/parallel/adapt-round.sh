#!/usr/bin/env bash
# Where an adaptation round spends its time, with the student's training in process and on
# 2 worker threads (issue #10 item 3). Runs one `purify adapt` per worker setting through the
# four services, then segments and evaluates the target test cases.
#
#   tools/bench/parallel/adapt-round.sh RUN_DIR [SEED] [METHOD] [BENCHMARK]
#
# RUN_DIR is a finished `purify benchmark` folder (its data-s<SEED>/ and the source model
# source-ct-s<SEED> in artifacts/). Defaults: seed 1, method rl, benchmark ct-mr; the schedule is
# the benchmark's (2 rounds x 50 steps, batch 8). The artifacts are copied, so RUN_DIR is not
# changed. Prints per round the phase timings the trainer reports, and the organ-average Dice.
set -euo pipefail
run=${1:?usage: adapt-round.sh RUN_DIR [SEED] [METHOD] [BENCHMARK]}
seed=${2:-1}
method=${3:-rl}
benchmark=${4:-ct-mr}
target=${benchmark#ct-}
data="$run/data-s$seed"
for need in "$data/ct/dataset.json" "$data/$target/dataset.json" "$data/$target-eval/labelsTs" "$run/artifacts/models/source-ct-s$seed"; do
  [[ -e $need ]] || { echo "adapt-round.sh: $need not found (expected a finished purify benchmark folder with seed $seed and $benchmark)" >&2; exit 2; }
done
cd "$(dirname "$0")/../../.."
purify() { node tools/cli/bin/purify.js "$@"; }
scratch=$(mktemp -d /tmp/adapt-round-XXXXXX)
cp -a "$run/artifacts" "$scratch/artifacts"
echo "adapt-round: $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $benchmark seed $seed $method; scratch $scratch"

# `up` runs as node itself (not through the purify function) so that $! is the process to stop.
for workers in 1 0; do # 1 = in process, 0 = automatic (2 workers on wasm with >= 2 cores)
  out="$scratch/w$workers"
  mkdir -p "$out"
  PURIFY_TRAINER_TRAINING_WORKERS=$workers node tools/cli/bin/purify.js up --free-ports --run-dir "$out/run" --artifacts-dir "$scratch/artifacts" --ready-timeout-ms 120000 >"$out/up.log" 2>&1 &
  up=$!
  for _ in $(seq 1 120); do grep -qs trainer "$out/run/services.json" && break; sleep 1; done
  sleep 5
  model="bench-round-w$workers-$method-s$seed"
  purify adapt --source "$data/ct" --target "$data/$target" --method "$method" --out "$out/job" --rounds 2 --steps-per-round 50 --batch-size 8 \
    --seed "$seed" --init-model "source-ct-s$seed:1" --output-model "$model" --run-dir "$out/run" --json >"$out/adapt.json" 2>"$out/adapt.err"
  mkdir -p "$out/pred"
  for f in "$data/$target"/imagesTs/*.nii.gz; do
    id=$(basename "$f" .nii.gz)
    purify segment --model "$model" --input "$f" --out "$out/pred/${id%_0000}.nii.gz" --run-dir "$out/run" --json >/dev/null
  done
  purify evaluate --pred "$out/pred" --gt "$data/$target-eval/labelsTs" --labels 1,2,3,4 --json >"$out/eval.json"
  kill -INT "$up"
  wait "$up" || true
  node -e '
    const [adapt, evaluation, workers] = process.argv.slice(1);
    const a = require(adapt), e = require(evaluation);
    console.log(`training workers ${workers === "1" ? "1 (in process)" : "automatic"}: Dice ${e.organAverage.dice.toFixed(3)}`);
    for (const r of a.rounds) {
      const t = r.timingsMs, total = Object.values(t).reduce((x, y) => x + y, 0);
      console.log(`  round ${r.round}: ${Object.entries(t).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(", ")}; sum ${(total / 1000).toFixed(1)} s`);
    }' "$out/adapt.json" "$out/eval.json" "$workers"
done
