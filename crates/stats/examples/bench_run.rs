//! The whole analysis of `../shared/anchors/r-scale/bench.R` on a CSV written by `bench_data`:
//! load the data, run every kernel (Kaplan-Meier by group, log-rank, Cox Efron, logistic IRLS,
//! 1:4 propensity matching) `RUNS` times, print the median and minimum time of each, then the
//! process's peak resident memory (VmHWM from /proc/self/status).
//!
//! ```text
//! cargo run --release -p galley-stats --example bench_run -- DATA.csv [RUNS [KERNELS]]
//! ```
//! KERNELS (default all): a comma-separated subset of km,logrank,cox,logistic,matching, e.g. to
//! profile one of them under `perf record`.
//! Result lines start with `galley` and are read by `benches/scripts/side_by_side.sh`:
//! `galley <kernel> <median s> <min s> <cpu median s> <runs>` (wall times, then CPU time), then
//! `galley peak_rss_mib <MiB>`.

#[path = "../benches/common/mod.rs"]
mod common;

use common::kernels;
use std::time::Instant;

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of this process (user + system, all threads), in seconds. The kernels use every core
/// (rayon), so CPU time above wall time shows the parallel share, and CPU time well below twice
/// the wall time on two cores shows waiting (serial parts, or other processes on the machine).
fn cpu_seconds() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer it is given.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

struct Timing {
    median: f64,
    min: f64,
    cpu_median: f64,
    runs: usize,
}

/// Run `f` `runs` times: wall median and minimum, CPU median, and the last result.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Timing, T) {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let r = std::hint::black_box(f());
        wall.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
        last = Some(r);
    }
    let t = Timing {
        median: median(&mut wall),
        min: wall[0],
        cpu_median: median(&mut cpu),
        runs,
    };
    (t, last.unwrap())
}

/// Estimates to 6 decimals, "NA" where not estimable (as R prints them).
fn coefs(v: impl Iterator<Item = Option<f64>>) -> String {
    v.map(|c| c.map_or("NA".into(), |c| format!("{c:.6}")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(kernel: &str, t: &Timing) {
    println!(
        "galley {kernel:<16} {:.4} {:.4} {:.4} {}",
        t.median, t.min, t.cpu_median, t.runs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: bench_run DATA.csv [RUNS [KERNELS]]");
        std::process::exit(2);
    };
    let runs: usize = args
        .get(1)
        .map_or(5, |s| s.parse().expect("RUNS must be a whole number"));
    assert!(runs >= 1);
    let only: Option<Vec<&str>> = args.get(2).map(|s| s.split(',').collect());
    let want = |k: &str| only.as_ref().is_none_or(|o| o.contains(&k));

    let (t, c) = time(1, || {
        common::Cohort::read_csv(path).unwrap_or_else(|e| panic!("{e}"))
    });
    let n = c.len();
    let nt = c.treat.iter().filter(|&&t| t).count();
    eprintln!("{path}: {n} rows, {nt} treated");
    report("load_csv", &t);
    let ids = kernels::ids(n);

    if want("km") {
        let (t, km) = time(runs, || kernels::km(&c));
        report("km", &t);
        let medians: Vec<_> = km.groups.iter().map(|g| g.median).collect();
        eprintln!("km: median survival by group {medians:?}");
    }
    if want("logrank") {
        let (t, lr) = time(runs, || kernels::logrank_test(&c));
        report("logrank", &t);
        eprintln!("logrank: chisq {:.4}, p {:?}", lr.chisq, lr.p);
    }
    if want("cox") {
        let (t, fit) = time(runs, || kernels::cox_efron(&c));
        report("cox", &t);
        eprintln!(
            "cox: coef {} ({} iterations)",
            coefs(fit.terms.iter().map(|t| t.coef)),
            fit.iterations
        );
    }
    if want("logistic") {
        let (t, glm) = time(runs, || kernels::logistic(&c));
        report("logistic", &t);
        eprintln!(
            "logistic: coef {} ({} iterations)",
            coefs(glm.terms.iter().map(|t| t.coef)),
            glm.iterations
        );
    }
    if want("matching") {
        let (t, pm) = time(runs, || kernels::matching(&c, &ids));
        report("matching", &t);
        eprintln!(
            "matching: {} treated matched, {} controls matched",
            pm.n_treated_matched, pm.n_control_matched
        );
        // The matching step alone, on the fitted propensity score.
        let opts = kernels::match_options();
        let (t, _) = time(runs, || {
            galley_stats::matching::nearest_neighbor(&c.treat, &pm.model.fitted, &opts).unwrap()
        });
        report("matching_nn_only", &t);
    }

    let hwm = status_kib("VmHWM:").unwrap_or(0);
    println!("galley peak_rss_mib {:.1}", hwm as f64 / 1024.0);
}
