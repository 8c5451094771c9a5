#!/usr/bin/env bash
# Train the fixed vs trainable front-end table (docs/training.md): linear, BC-ResNet-1 and BC-ResNet-3, each
# with the fixed front end, a trainable Mel filterbank, trainable STFT kernels, or both; three seeds each.
# Every model is scored on the held-out voices of its training engines (the corpus' test split) and on
# Flite, an engine it never heard: the selection persons (slt, awb), which chose the front-end recipe,
# and the test persons (rms, kal16, kal), which only report.
#
#   spotter data synth --out data/synth150 --per-word 150 --seed 2
#   spotter data synth --out data/flite40 --per-word 40 --engines flite --seed 7
#   bash scripts/results_table.sh            # then: python scripts/results_table.py
#
# Runs go to runs/table-MODEL-FRONTEND-sSEED; a finished run is not trained again. Two runs train side by
# side with one thread each (faster than one run on two threads for models this small).
# SEEDS="0 1 2" MODELS="linear bcresnet-1 bcresnet-3" FRONTENDS="fixed mel stft both" override the grid;
# FRONTENDS=melmatrix MODELS="linear bcresnet-1" adds the raw-matrix filterbank, FRONTENDS="stftfrozen stftdecay"
# MODELS=bcresnet-3 the STFT control and the L2-SP pull (docs/experiments/configs).
#
# Paired fine-tunes: FRONTENDS="then-fixed then-mel then-band then-stft then-both then-window" continue each
# seed's fixed run (runs/table-MODEL-fixed-sSEED, trained first when missing) for a few epochs with that front end
# trainable (train/configs/table-MODEL-then-*.yaml, --init): the same network, data order and augmentation
# draws, so the trainable run differs from then-fixed by what its front end learns. With data/flite200
# (spotter data synth --out data/flite200 --per-word 200 --engines flite --seed 8: five times the takes of
# the same persons) every run is scored on it too.
set -euo pipefail
cd "$(dirname "$0")/.."
spotter=${SPOTTER:-.venv/bin/spotter}
python=${PYTHON:-.venv/bin/python}
seeds=${SEEDS:-0 1 2}
models=${MODELS:-linear bcresnet-1 bcresnet-3}
frontends=${FRONTENDS:-fixed mel stft both}

# Flite persons as two folders of links each: selection and test (data/flite40, and data/flite200 if made).
$python - <<'EOF'
from pathlib import Path

for src, prefix in ((Path("data/flite40"), "flite-"), (Path("data/flite200"), "flite-200-")):
    if not (src / "corpus.json").exists():
        continue
    for name, persons in ((prefix + "sel", ("slt", "awb")), (prefix + "test", ("rms", "kal16", "kal"))):
        out = Path("data") / name
        for wav in src.glob("*/*.wav"):
            if not wav.parent.name.startswith("_") and wav.name.split("-")[1] in persons:
                link = out / wav.parent.name / wav.name
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink():
                    link.symlink_to(wav.resolve())
        noise = out / "_background_noise_"
        if not noise.is_symlink():
            noise.symlink_to((src / "_background_noise_").resolve())
EOF

one_run() {  # MODEL FRONTEND SEED
  local run=runs/table-$1-$2-s$3 init=()
  [[ $2 == then-* ]] && init=(--init "runs/table-$1-fixed-s$3/model.pt")  # a paired fine-tune of the fixed run
  if [ ! -f "$run/model.pt" ]; then
    mkdir -p runs
    local config="table-$1-$2.yaml"  # a shipped config, or an experiment's (the raw matrix: FRONTENDS=melmatrix)
    [ -f "docs/experiments/configs/$config" ] && config="docs/experiments/configs/$config"
    OMP_NUM_THREADS=1 $spotter train --config "$config" --seed "$3" --out "$run" --no-progress "${init[@]}" \
      > "$run.log" 2>&1
  fi
  local parts=(sel test)
  [ -d data/flite-200-sel ] && parts+=(200-sel 200-test)
  for part in "${parts[@]}"; do
    [ -f "$run/flite-$part.json" ] || OMP_NUM_THREADS=1 $spotter eval "$run/model.pt" --data "data/flite-$part" \
      --split all --protocol --json > "$run/flite-$part.json"
  done
  echo "$run done"
}

# The runs from scratch first, then the paired fine-tunes (each starts from its seed's fixed run).
bases=() paired=()
for seed in $seeds; do
  for model in $models; do
    for fe in $frontends; do
      base="$model $fe $seed"
      if [[ $fe == then-* ]]; then
        paired+=("$base")
        base="$model fixed $seed"
      fi
      [[ " ${bases[*]-} " == *" $base "* ]] || bases+=("$base")
    done
  done
done
lanes() {  # two lanes, each every second job of the list given
  local list=("$@")
  lane() { for ((i = $1; i < ${#list[@]}; i += 2)); do one_run ${list[$i]}; done; }
  lane 0 & lane 1 & wait
}
lanes "${bases[@]}"
[ ${#paired[@]} -eq 0 ] || lanes "${paired[@]}"
