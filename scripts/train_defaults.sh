#!/usr/bin/env bash
# Train the two bundled default generators (sar2opt_geo/models/weights/) on CPU.
#
#   scripts/train_defaults.sh          full run: both models at once, 1 thread each, 38 min of training
#                                      + the final validation (<= 45 min each)
#   scripts/train_defaults.sh quick    a few minutes each (placeholder weights)
#   scripts/train_defaults.sh resume   continue the SAR model of a finished full run for 35 more minutes
#                                      on 2 threads (--resume: same config, exact continuation), export
#                                      the best epoch (this is how the bundled s1vh_to_rgb was made)
#
# Data: the 40 co-registered Sentinel-1 VH / Sentinel-2 RGB pairs in
# ../shared/data/pairs/s1vh_s2rgb_epsg3395 (8-bit, linear / scene p99, clipped; 10 m).
# Validation: the easternmost tile columns of each of the 3 scenes (8 of 40 tiles),
# whole 1024 x 1024 tiles. The best epoch by validation PSNR is exported (--export) into
# sar2opt_geo/models/weights/. The exact command is recorded in each model card.
# These are deliberately small CPU runs (width 0.25, minutes, not the article's 100
# epochs on a GPU): read the cards' metrics beside the constant-colour baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-full}
if [ "$MODE" = resume ]; then
  DATA=${SAR2OPT_DATA:-../shared/data}/pairs/s1vh_s2rgb_epsg3395
  SAR2OPT=${SAR2OPT:-.venv/bin/sar2opt}
  RUN=${RUN:-runs/defaults-resume/s1vh_to_rgb}
  if [ ! -e "$RUN/checkpoints/state_last.pt" ]; then
    mkdir -p "$(dirname "$RUN")" && cp -r runs/defaults-full/s1vh_to_rgb "$RUN"
  fi
  exec "$SAR2OPT" train "$DATA" "$RUN" --mode sar --sar-band VH --width 0.25 --crop-size 256 --batch-size 8 \
    --epochs 100 --max-minutes 35 --crops-per-image 8 --augment --seed 0 --threads 2 --checkpoint-every 5 \
    --best-metric psnr --device cpu --progress none --name s1vh_to_rgb \
    --description "Sentinel-1 VH (linear sigma0 / scene p99) -> Sentinel-2 true colour; small CPU training on 32 Los Angeles/Texas tiles" \
    --resume --export sar2opt_geo/models/weights/s1vh_to_rgb.safetensors
fi
DATA=${SAR2OPT_DATA:-../shared/data}/pairs/s1vh_s2rgb_epsg3395
RUNS=${RUNS:-runs/defaults-$MODE}
SAR2OPT=${SAR2OPT:-.venv/bin/sar2opt}
WEIGHTS=sar2opt_geo/models/weights

case "$MODE" in
  quick) BUDGET="--epochs 100 --max-minutes 4 --crops-per-image 2" ;;
  full)  BUDGET="--epochs 100 --max-minutes 38 --crops-per-image 8" ;;
  *) echo "usage: $0 [quick|full|resume]" >&2; exit 2 ;;
esac

COMMON="--width 0.25 --crop-size 256 --batch-size 8 $BUDGET --augment --seed 0 --threads 1 \
--checkpoint-every 5 --best-metric psnr --device cpu --progress none"

mkdir -p "$RUNS"
# shellcheck disable=SC2086
nohup "$SAR2OPT" train "$DATA" "$RUNS/s1vh_to_rgb" --mode sar --sar-band VH $COMMON \
  --name s1vh_to_rgb --description "Sentinel-1 VH (linear sigma0 / scene p99) -> Sentinel-2 true colour; small CPU training on 32 Los Angeles/Texas tiles" \
  --export "$WEIGHTS/s1vh_to_rgb.safetensors" > "$RUNS/s1vh_to_rgb.log" 2>&1 &
SAR_PID=$!
# shellcheck disable=SC2086
nohup "$SAR2OPT" train "$DATA" "$RUNS/gray_to_rgb" --mode colorize $COMMON \
  --name gray_to_rgb --description "gray (0.299 R + 0.587 G + 0.114 B of p99-scaled bands) -> RGB colourisation; small CPU training on the optical halves of 32 Los Angeles/Texas tiles" \
  --export "$WEIGHTS/gray_to_rgb.safetensors" > "$RUNS/gray_to_rgb.log" 2>&1 &
GRAY_PID=$!
echo "training s1vh_to_rgb (pid $SAR_PID) and gray_to_rgb (pid $GRAY_PID); logs in $RUNS/*.log"
wait "$SAR_PID" "$GRAY_PID"
