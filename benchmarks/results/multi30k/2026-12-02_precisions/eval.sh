#!/usr/bin/env bash
# BLEU of one checkpoint on Multi30k test2016 at each precision, before (old tree) and after (this tree).
set -e
M=/work/shared/data/multi30k; RUN=/work/m30k/run; CK=$RUN/best.safetensors; OUT=/work/m30k/eval; mkdir -p $OUT
cd /work/main

for tree in before main; do
  src=/tmp/before/src; [ $tree = main ] && src=/work/main/src
  for p in float32 int8 bfloat16; do
    if [ $tree = before ]; then
      case $p in float32) flag="";; int8) flag="--int8";; bfloat16) continue;; esac
    else flag="--precision $p"; fi
    PYTHONPATH=$src python -m transformer evaluate -c $CK --src $M/test2016.en --ref $M/test2016.de --device cpu $flag \
      -o $OUT/test2016_${tree}_$p.de --json > $OUT/test2016_${tree}_$p.json
    python -c "import json; d=json.load(open('$OUT/test2016_${tree}_$p.json')); print('$tree', '$p', d['bleu'], d.get('bleu_lowercase'), round(d['seconds'],1), 's')"
  done
done
