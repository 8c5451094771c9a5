#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run (a borrowed GPU machine with torch but no spotter):
#   1. the CUDA tests and the engine's tests with the model on the GPU (pytest, device auto = cuda),
#   2. `spotter listen` replays on cuda and on cpu: the same detections,
#   3. `spotter bench` on cuda, and torch against ONNX Runtime on cuda and cpu (benchmarks/bench_runtimes.py;
#      the onnx CUDA rows need onnxruntime-gpu on the machine),
#   4. the benchmark scripts with their GPU rows (benchmarks/run_all.py),
#   5. with TRAIN_DATA=DIR (a small corpus in Speech Commands layout carried along): `spotter train` on the
#      GPU (--redraw-unknown), a fine-tune of it (--init), `spotter eval` on cuda, and batched stream scoring
#      (spotter tune --device-type cuda) against the CPU's.
# Missing pure-Python dependencies travel as wheels in .whl/ (see README "Benchmarks"):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl nnaudio soundfile textual librosa ...
# Results go to $OUT (default: device-check/): log.txt and the benchmark JSON/PNG.
# TESTS and BENCHMARK choose a subset, e.g. TESTS="tests/test_device.py" BENCHMARK=bench_streaming.py (none: no benchmarks).
set -u
OUT=${OUT:-device-check}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "device_check: wheels did not install" | tee -a "$LOG"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
step() { echo; echo "=== $* ($(date +%T))"; }
{
  step "machine"
  nvidia-smi -L
  python3 -c "import torch, nnAudio, pytorch_lightning as pl; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'lightning', pl.__version__)"

  step "tests on the GPU"
  timeout 240 python3 -m pytest -q -p no:cacheprovider -m "not slow" ${TESTS:-tests/test_device.py tests/test_model.py \
    tests/test_features.py tests/test_pipeline.py tests/test_checkpoint.py tests/test_tuning.py} 2>&1 | tail -25

  step "listen: cuda vs cpu"
  for dev in cuda cpu; do
    python3 -m spotter listen --wav examples/keywords.wav --json --device-type "$dev" 2>&1 > "/tmp/listen-$dev.jsonl"
    echo "$dev: $(grep -c '"detection"' "/tmp/listen-$dev.jsonl") detections: $(grep -o '"keyword": "[a-z]*", "time": [0-9.]*' "/tmp/listen-$dev.jsonl" | tr '\n' ' ')"
    tail -1 "/tmp/listen-$dev.jsonl"
  done

  step "spotter bench on cuda"
  python3 -m spotter bench --device-type cuda 2>&1 | tail -5

  step "runtimes: torch and onnx on cuda and cpu, batch 1 and batched"
  python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" 2>&1
  timeout 300 python3 benchmarks/bench_runtimes.py --out "$OUT" 2>&1

  if [ "${BENCHMARK:-run_all.py}" != none ]; then
    step "benchmarks (CPU and GPU rows)"
    timeout 300 python3 "benchmarks/${BENCHMARK:-run_all.py}" --out "$OUT" 2>&1
  fi
  if [ -n "${TRAIN_DATA:-}" ]; then
    step "train on the GPU: $TRAIN_DATA"
    timeout 300 python3 -m spotter train --data "$TRAIN_DATA" --model bcresnet-3 --epochs ${TRAIN_EPOCHS:-30} \
      --batch-size 32 --warmup-epochs 2 --redraw-unknown --accelerator gpu --devices 1 --out /tmp/gpu-train --no-progress 2>&1 | tail -8
    timeout 120 python3 -m spotter train --data "$TRAIN_DATA" --model bcresnet-3 --epochs 2 --warmup-epochs 0 \
      --batch-size 32 --lr 0.01 --init /tmp/gpu-train/model.pt --accelerator gpu --devices 1 --out /tmp/gpu-ft --no-progress 2>&1 | tail -4
    for dev in cuda cpu; do
      python3 -m spotter eval /tmp/gpu-train/model.pt --data "$TRAIN_DATA" --device-type $dev --json 2>/dev/null \
        | python3 -c "import json,sys; r=json.load(sys.stdin); print('$dev eval:', r['n'], 'clips, accuracy', round(r['accuracy'],4), 'loss', round(r['loss'],4))"
    done
    cp /tmp/gpu-train/metrics.json "$OUT/train-metrics.json" 2>/dev/null
    step "batched stream scoring: cuda vs cpu"
    for dev in cuda cpu; do
      ( TIMEFORMAT="$dev: %R s"; time python3 -m spotter tune --device-type $dev --top 2 examples/keywords.wav 2>&1 | tail -3 )
    done
  fi
  step "done"
} 2>&1 | tee -a "$LOG"
