#!/usr/bin/env bash
# Whole-process build benchmarks of the example study (hyperfine from Debian's packages), then the
# watch-mode rebuilds in one process (examples/bench_rebuild.rs). The load average is printed before
# each measurement: the machine is shared, so time when it is low.
#   benches/scripts/build_bench.sh              # galley only
#   TYPST=typst benches/scripts/build_bench.sh  # and Typst alone on the generated manuscript.typ
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q --bin galley --example bench_rebuild
G="$PWD/target/release/galley"
W=$(mktemp -d)
cp -r study/croome2016 "$W/croome2016"
OUT="$W/out"
load() { echo "== $1 (load: $(cut -d' ' -f1-3 /proc/loadavg))"; }

# 1. Cold: empty output folder every run (no cache, everything computed and typeset).
load "cold build"
hyperfine -N --warmup 3 --runs 20 --prepare "rm -rf $OUT" \
  "$G build $W/croome2016 --out $OUT" --export-json "$W/cold.json"

# 2. Nothing changed: the cache answers every block, typesetting and writing are skipped.
"$G" build "$W/croome2016" --out "$OUT" >/dev/null 2>&1
load "no change"
hyperfine -N --warmup 3 --runs 30 "$G build $W/croome2016 --out $OUT" --export-json "$W/nochange.json"

# 3. One sentence of prose edited between runs: blocks from the cache, prose re-rendered, re-typeset.
F="$W/croome2016/manuscript/discussion.md"
load "prose edit"
hyperfine -N --warmup 2 --runs 20 \
  --prepare "sed -i 's/^In this cohort, /In this series, /; t; s/^In this series, /In this cohort, /' $F" \
  "$G build $W/croome2016 --out $OUT" --export-json "$W/prose.json"

# 4. One block edited between runs (the Kaplan-Meier figure's axis breaks): that block re-runs, its
#    figure is redrawn, the rest comes from the cache, re-typeset.
B="$W/croome2016/manuscript/results.md"
load "block edit"
hyperfine -N --warmup 2 --runs 20 \
  --prepare "sed -i 's/^break_interval = 24$/break_interval = 12/; t; s/^break_interval = 12$/break_interval = 24/' $B" \
  "$G build $W/croome2016 --out $OUT" --export-json "$W/block.json"

# 5. Typst alone on the generated sources (same fonts: the Typst CLI's embedded ones).
if [ -n "${TYPST:-}" ]; then
  "$G" build "$W/croome2016" --out "$OUT" >/dev/null 2>&1
  load "typst alone"
  hyperfine -N --warmup 3 --runs 20 \
    "$TYPST compile --ignore-system-fonts $OUT/croome2016/manuscript.typ $W/typst.pdf" --export-json "$W/typst.json"
fi

# 6. Watch mode: rebuilds in one process, as `galley watch` runs them.
load "watch-mode rebuilds (in process)"
target/release/examples/bench_rebuild 20 study/croome2016
# Medians (the targets are medians of whole-process runs).
if command -v jq >/dev/null; then
  for f in cold nochange prose block typst; do
    if [ -f "$W/$f.json" ]; then
      jq -r --arg f "$f" '.results[0] | "\($f): median \((.median * 10000 | round) / 10) ms, mean \((.mean * 10000 | round) / 10), min \((.min * 10000 | round) / 10)"' "$W/$f.json"
    fi
  done
fi
echo "results in $W"
