#!/usr/bin/env bash
# BLEU of the same checkpoint on test2016 with this tree (lineage attention), against the earlier "main" outputs.
set -e
M=/work/shared/data/multi30k; CK=/work/m30k/run/best.safetensors; OUT=/work/m30k/eval
cd "$(dirname "$0")/../../../.."  # the checkout
for p in float32 int8 bfloat16; do
  python -m transformer evaluate -c $CK --src $M/test2016.en --ref $M/test2016.de --device cpu --precision $p \
    -o $OUT/test2016_lineage_$p.de --json > $OUT/test2016_lineage_$p.json
  n=$(paste -d'\t' $OUT/test2016_lineage_$p.de $OUT/test2016_main_$p.de | awk -F'\t' '$1 != $2' | wc -l)
  python -c "import json; d=json.load(open('$OUT/test2016_lineage_$p.json')); print('lineage', '$p', d['bleu'], d.get('bleu_lowercase'), round(d['seconds'],1), 's', '$n differ from main')"
done
