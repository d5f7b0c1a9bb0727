#!/usr/bin/env bash
# galley vs R on the same data: the analyses of ../shared/anchors/r-scale/bench.R (Kaplan-Meier by
# group, log-rank, Cox Efron with 5 covariates, logistic IRLS, 1:4 nearest-neighbour propensity
# matching) on one CSV, timed in each tool, with galley/R ratios and the targets of issue 7.
#
#   benches/scripts/side_by_side.sh [N [N_TREATED [RUNS [MATCH_RUNS]]]]
#
# Defaults: 1000000 patients, 10000 treated, 5 runs of each kernel (medians), 1 run of R's
# matchit (about 1.5 minutes at a million). Needs R with survival and MatchIt (Debian:
# r-base-core r-cran-survival r-cran-matchit). A benchmark, not a test: CI does not run it.
# Data and raw outputs go to $BENCH_DIR (default /tmp/galley-bench).
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${1:-1000000}
NT=${2:-10000}
RUNS=${3:-5}
MATCH_RUNS=${4:-1}
DIR=${BENCH_DIR:-/tmp/galley-bench}
mkdir -p "$DIR"
CSV="$DIR/cohort-$N-$NT.csv"

command -v Rscript >/dev/null || {
    echo "Rscript not found: apt-get install -y r-base-core r-cran-survival r-cran-matchit" >&2
    exit 1
}
cargo build --release -q -p galley-stats --example bench_data --example bench_run
run() { cargo run --release -q -p galley-stats --example "$@"; }
[ -s "$CSV" ] || run bench_data -- "$N" "$NT" "$CSV"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/ {print $2}') GiB"
echo "load before: $(uptime | sed 's/.*load average: //')"
# Peak memory of the whole analysis run once (load + every kernel once), then the timings.
run bench_run -- "$CSV" 1 2>/dev/null | grep peak_rss | sed 's/galley peak_rss_mib/galley_single_pass_peak_rss_mib/' >"$DIR/galley.txt"
run bench_run -- "$CSV" "$RUNS" 2>"$DIR/galley.err" >>"$DIR/galley.txt"
echo "load between: $(uptime | sed 's/.*load average: //')"
Rscript benches/r/bench_csv.R "$CSV" "$RUNS" "$MATCH_RUNS" >"$DIR/r.txt" 2>"$DIR/r.err"
echo "load after: $(uptime | sed 's/.*load average: //')"

echo
echo "n = $N, $NT treated; medians of $RUNS runs (R matchit: $MATCH_RUNS); wall seconds"
awk -v n="$N" '
    FNR == 1 { file++ }
    file == 1 && $1 == "galley" { g[$2] = $3; gc[$2] = $5 }
    file == 1 && $1 == "galley_single_pass_peak_rss_mib" { gpeak1 = $2 }
    file == 2 && $1 == "R" { r[$2] = $3; rc[$2] = $5 }
    END {
        split("km logrank cox logistic matching", ks, " ")
        target["km"] = 0.25; target["logrank"] = 0.15; target["cox"] = 0.7
        target["logistic"] = 0.45; target["matching"] = 1.5
        printf "%-10s %10s %10s %9s %8s %8s %6s %6s\n", "kernel", "galley s", "R s", "galley/R", "R/galley", "target", "abs", ">=10x"
        for (i = 1; i <= 5; i++) {
            k = ks[i]
            ratio = (r[k] > 0) ? g[k] / r[k] : 0
            speedup = (g[k] > 0) ? r[k] / g[k] : 0
            tenx = (speedup >= 10) ? "pass" : "FAIL"
            if (n == 1000000) {
                ok = (g[k] < target[k]) ? "pass" : "FAIL"
                printf "%-10s %10.4f %10.4f %9.4f %7.1fx %7.2fs %6s %6s\n", k, g[k], r[k], ratio, speedup, target[k], ok, tenx
            } else {
                # The targets (absolute and 10x) are stated for a million patients only.
                printf "%-10s %10.4f %10.4f %9.4f %7.1fx %8s %6s %6s\n", k, g[k], r[k], ratio, speedup, "-", "-", "-"
            }
        }
        printf "%-10s %10.4f %10s   (propensity score already fitted)\n", "nn only", g["matching_nn_only"], ""
        printf "%-10s %10.4f %10.4f\n", "load csv", g["load_csv"], r["load_csv"]
    }' "$DIR/galley.txt" "$DIR/r.txt"
gpeak1=$(awk '$1 == "galley_single_pass_peak_rss_mib" {print $2}' "$DIR/galley.txt")
gpeak=$(awk '$1 == "galley" && $2 == "peak_rss_mib" {print $3}' "$DIR/galley.txt")
rpeak=$(awk '$1 == "R" && $2 == "peak_rss_mib" {print $3}' "$DIR/r.txt")
awk -v a="$gpeak1" -v b="$gpeak" -v r="$rpeak" 'BEGIN {
    printf "peak RSS: galley %.0f MiB (whole analysis once; %.0f MiB after %s), R %.0f MiB; target < 512 MiB: %s\n",
        a, b, "the repeated runs", r, (a < 512) ? "pass" : "FAIL" }'
echo
echo "estimates (galley, then R):"
grep -E '^(cox|logistic|logrank|matching)' "$DIR/galley.err" || true
grep -E '^(cox|logistic|logrank|matching)' "$DIR/r.err" || true
