# R side of the side-by-side benchmark: the analyses of ../shared/anchors/r-scale/bench.R, timed on
# the CSV galley reads (written by `cargo run --release -p galley-stats --example bench_data`).
# Usage: Rscript benches/r/bench_csv.R DATA.csv [RUNS [MATCH_RUNS]]
#   RUNS (default 3) repetitions of each kernel, MATCH_RUNS (default 1) of matchit (148 s at 1e6).
# Prints one line per kernel: "R <kernel> <median s> <min s> <cpu median s> <runs>", as the
# galley side does (examples/bench_run.rs), then "R peak_rss_mib <MiB>" (VmHWM) and the estimates.
suppressPackageStartupMessages({library(survival); library(MatchIt)})
a <- commandArgs(trailingOnly = TRUE)
path <- a[1]
runs <- if (length(a) >= 2) as.integer(a[2]) else 3L
match_runs <- if (length(a) >= 3) as.integer(a[3]) else 1L

t0 <- proc.time()[["elapsed"]]
d <- read.csv(path, colClasses = c("numeric", "integer", "integer", "numeric", "integer",
                                   "numeric", "integer", "integer", "integer"))
load <- proc.time()[["elapsed"]] - t0
cat(sprintf("R %-16s %.4f %.4f %.4f %d\n", "load_csv", load, load, load, 1L))
cat(sprintf("%s: %d rows, %d treated\n", path, nrow(d), sum(d$treat)), file = stderr())

tm <- function(label, k, expr) {
  f <- substitute(expr)
  wall <- numeric(k); cpu <- numeric(k); out <- NULL
  for (i in seq_len(k)) {
    st <- system.time(out <- eval(f, parent.frame()))  # gcFirst = TRUE
    wall[i] <- st[["elapsed"]]; cpu[i] <- st[["user.self"]] + st[["sys.self"]]
  }
  cat(sprintf("R %-16s %.4f %.4f %.4f %d\n", label, median(wall), min(wall), median(cpu), k))
  invisible(out)
}
km <- tm("km", runs, survfit(Surv(time, status) ~ group, data = d))
lr <- tm("logrank", runs, survdiff(Surv(time, status) ~ group, data = d))
cx <- tm("cox", runs, coxph(Surv(time, status) ~ age + sex + grade + x4 + x5, data = d))
gl <- tm("logistic", runs, glm(treat ~ age + sex + grade + x4 + x5, family = binomial, data = d))
m <- tm("matching", match_runs,
        matchit(treat ~ age + sex + grade + x4 + x5, data = d, method = "nearest", ratio = 4))

hwm <- grep("^VmHWM:", readLines("/proc/self/status"), value = TRUE)
cat(sprintf("R peak_rss_mib %.1f\n", as.numeric(strsplit(trimws(sub("VmHWM:", "", hwm)), " ")[[1]][1]) / 1024))

# What was computed, to compare with galley's printout.
e <- function(...) cat(..., "\n", file = stderr())
e("km: median survival by group", paste(summary(km)$table[, "median"], collapse = " "))
e(sprintf("logrank: chisq %.4f", lr$chisq))
e("cox: coef", paste(sprintf("%.6f", coef(cx)), collapse = " "), sprintf("(%d iterations)", cx$iter))
e("logistic: coef", paste(sprintf("%.6f", coef(gl)), collapse = " "), sprintf("(%d iterations)", gl$iter))
e(sprintf("matching: %d treated matched, %d controls matched", sum(m$treat == 1 & m$weights > 0),
          sum(m$treat == 0 & m$weights > 0)))
