#!/usr/bin/env bash
# Whole-process build benchmarks of the example study (hyperfine from Debian's packages).
#   benches/scripts/build_bench.sh            # galley only
#   TYPST=typst benches/scripts/build_bench.sh  # and Typst alone on the generated manuscript.typ
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
G="$PWD/target/release/galley"
W=$(mktemp -d)
cp -r study/croome2016 "$W/croome2016"
OUT="$W/out"

# 1. Cold: empty output folder every run (no cache, everything computed and typeset).
hyperfine -N --warmup 3 --runs 20 --prepare "rm -rf $OUT" \
  "$G build $W/croome2016 --out $OUT" --export-json "$W/cold.json"

# 2. Nothing changed: the cache answers every block, typesetting and writing are skipped.
"$G" build "$W/croome2016" --out "$OUT" >/dev/null 2>&1
hyperfine -N --warmup 3 --runs 30 "$G build $W/croome2016 --out $OUT" --export-json "$W/nochange.json"

# 3. One sentence of prose edited between runs: blocks from the cache, prose re-rendered, re-typeset.
F="$W/croome2016/manuscript/discussion.md"
hyperfine -N --warmup 2 --runs 20 \
  --prepare "sed -i 's/^In this cohort, /In this series, /; t; s/^In this series, /In this cohort, /' $F" \
  "$G build $W/croome2016 --out $OUT" --export-json "$W/prose.json"

# 4. Typst alone on the generated sources (same fonts: the Typst CLI's embedded ones).
if [ -n "${TYPST:-}" ]; then
  "$G" build "$W/croome2016" --out "$OUT" >/dev/null 2>&1
  hyperfine -N --warmup 3 --runs 20 \
    "$TYPST compile --ignore-system-fonts $OUT/croome2016/manuscript.typ $W/typst.pdf" --export-json "$W/typst.json"
fi
echo "results in $W"
