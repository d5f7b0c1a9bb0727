//! Write the simulated cohort of `../shared/anchors/r-scale/bench.R` as CSV, deterministically
//! (seeded ChaCha8), for the R side-by-side (`benches/scripts/side_by_side.sh`).
//!
//! ```text
//! cargo run --release -p galley-stats --example bench_data -- N N_TREATED OUT.csv [SEED]
//! ```
//! Columns: age,sex,grade,x4,x5,time,status,group,treat (see `benches/common/mod.rs`).

#[path = "../benches/common/mod.rs"]
mod common;

use std::io::{BufWriter, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: bench_data N N_TREATED OUT.csv [SEED]");
        std::process::exit(2);
    }
    let n: usize = args[0].parse().expect("N must be a whole number");
    let nt: usize = args[1].parse().expect("N_TREATED must be a whole number");
    let seed: u64 = args
        .get(3)
        .map_or(1, |s| s.parse().expect("SEED must be a whole number"));
    let cohort = common::simulate(n, nt, seed);
    let file = std::fs::File::create(&args[2]).unwrap_or_else(|e| panic!("{}: {e}", args[2]));
    let mut out = BufWriter::with_capacity(1 << 20, file);
    cohort.write_csv(&mut out).expect("write CSV");
    out.flush().expect("write CSV");
    eprintln!("wrote {n} rows ({nt} treated, seed {seed}) to {}", args[2]);
}
