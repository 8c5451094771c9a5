#!/usr/bin/env bash
# Train the README results table (linear vs BC-ResNet-1; fixed / trainable Mel / trainable STFT / both)
# and evaluate each model on the held-out test voices and on the never-heard flite engine.
#
#   spotter data synth --out data/synth150 --per-word 150 --seed 2
#   spotter data synth --out data/flite40 --per-word 40 --engines flite --seed 7
#   bash scripts/results_table.sh            # then: python scripts/results_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
spotter=${SPOTTER:-.venv/bin/spotter}
for model in linear bcresnet-1; do
  for fe in fixed mel stft both; do
    run=runs/table-$model-$fe
    [ -f "$run/model.pt" ] || $spotter train --config "table-$model-$fe.yaml" --no-progress > "$run.log" 2>&1
    $spotter eval "$run/model.pt" --data data/flite40 --split all --protocol --json > "$run/flite40.json"
    echo "$run done"
  done
done
