#!/usr/bin/env bash
# The prepared GPU check of issue 3: pretrain vlp-tiny on CUDA with bf16 autocast, timed, then
# evaluated on the same bars as the CPU run. Run from the repo root on a CUDA machine:
#   OUT=/tmp/gpu bash benchmarks/gpu_pretrain.sh
# Writes logs, metrics and the trained model to $OUT/gpu.tar.gz.
set -uo pipefail
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
OUT=${OUT:-/tmp/gpu}
mkdir -p "$OUT"
# packages the machine lacks (pycocoevalcap's BLEU and CIDEr scorers), carried in .gpu/site
[ -d .gpu/site ] && export PYTHONPATH=$PWD/.gpu/site
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'cpus', __import__('os').cpu_count())"
run() {  # name, seconds allowed, train options…
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 -m vlp train --out "runs/$name" --device cuda --no-progress "$@" 2>&1 | tee "$OUT/$name.log" | grep -v '^{"step": [0-9]*, "time_s"' | tail -n 30
}
# vlp-tiny on one GPU: batches of 256, data drawn by 12 worker processes
run gpu-tiny 290 --batch-size 256 --steps 2600 --lr 3e-3 --warmup 150 --eval-every 650 --eval-scenes 100 --final-eval 500 --workers 12
tar czf "$OUT/gpu.tar.gz" runs/gpu-*/metrics.jsonl runs/gpu-*/loss.png runs/gpu-*/model runs/gpu-*/checkpoint/model 2>/dev/null
ls -la "$OUT"
