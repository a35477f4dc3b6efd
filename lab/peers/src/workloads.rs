//! The workloads, written once against [`Peer`]: the same steps and output lines as the gc-core
//! examples `binary_trees` and `gcbench`.

use std::time::Instant;

use hdrhistogram::Histogram;

use crate::{CHURN_DEPTH, Peer, SCOPE_BUDGET, tree_size};

const MIN_DEPTH: u32 = 4;

/// Trees per call: as many as fit in one mutation scope's budget, at least one.
fn batch(d: u32) -> u64 {
    (SCOPE_BUDGET / tree_size(d)).max(1)
}

/// The benchmarks game's binary-trees: a stretch tree of depth `depth + 1` built, checked and
/// dropped; a long-lived tree of depth `depth`; for d = 4, 6, …, depth, 2^(depth − d + 4) trees
/// of depth d built, checked and dropped; the long-lived tree checked.
pub fn binary_trees(p: &mut dyn Peer, depth: u32) {
    let stretch = depth + 1;
    println!(
        "stretch tree of depth {stretch}\t check: {}",
        p.pairs(stretch, 1)
    );
    p.keep_pairs(depth);
    for d in (MIN_DEPTH..=depth).step_by(2) {
        let n = 1u64 << (depth - d + MIN_DEPTH);
        let mut check = 0;
        let mut done = 0;
        while done < n {
            let k = batch(d).min(n - done);
            check += p.pairs(d, k);
            done += k;
        }
        println!("{n}\t trees of depth {d}\t check: {check}");
    }
    println!(
        "long lived tree of depth {depth}\t check: {}",
        p.check_kept_pairs()
    );
}

/// GCBench's parameters.
#[derive(clap::Args)]
pub struct GcBenchArgs {
    /// Depth of the stretch tree (also sets how many trees each depth builds).
    #[arg(long, default_value_t = 18)]
    stretch_depth: u32,
    /// Depth of the long-lived tree.
    #[arg(long, default_value_t = 16)]
    long_lived_depth: u32,
    /// Doubles in the long-lived array.
    #[arg(long, default_value_t = 500_000)]
    array: usize,
    /// The deepest temporary trees (from depth 4, in steps of 2).
    #[arg(long, default_value_t = 16)]
    max_depth: u32,
}

impl GcBenchArgs {
    /// The parameters' own constraints (as the gc-core example checks them).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_depth < MIN_DEPTH || self.stretch_depth < self.max_depth || self.array < 2 {
            return Err(format!(
                "need 4 ≤ --max-depth ≤ --stretch-depth ≤ 30 and --array ≥ 2 \
                 (got {}, {}, {})",
                self.max_depth, self.stretch_depth, self.array
            ));
        }
        if self.stretch_depth > 30 || self.long_lived_depth > 30 {
            return Err("depths above 30 do not fit in memory".into());
        }
        Ok(())
    }

    /// The `key=value` figures that describe the run.
    pub fn keys(&self) -> String {
        format!(
            "stretch_depth={} long_lived_depth={} max_depth={}",
            self.stretch_depth, self.long_lived_depth, self.max_depth
        )
    }
}

/// GCBench (Ellis and Kovac, adapted by Boehm): a stretch tree built bottom up and dropped; a
/// long-lived tree built top down and a long-lived array; for d = 4, 6, …, max, as many trees of
/// depth d as make twice the stretch tree's nodes, built top down, then as many bottom up, each
/// dropped; the long-lived data checked.
pub fn gcbench(p: &mut dyn Peer, a: &GcBenchArgs) {
    println!(
        "Stretching memory with a binary tree of depth {}",
        a.stretch_depth
    );
    p.boehm_bottom_up(a.stretch_depth, 1);
    println!(
        "Creating a long-lived binary tree of depth {}",
        a.long_lived_depth
    );
    println!("Creating a long-lived array of {} doubles", a.array);
    p.keep_boehm(a.long_lived_depth, a.array);
    for d in (MIN_DEPTH..=a.max_depth).step_by(2) {
        let n = 2 * tree_size(a.stretch_depth) / tree_size(d);
        println!("Creating {n} trees of depth {d}");
        for top_down in [true, false] {
            let t = Instant::now();
            let mut done = 0;
            while done < n {
                let k = batch(d).min(n - done);
                if top_down {
                    p.boehm_top_down(d, k);
                } else {
                    p.boehm_bottom_up(d, k);
                }
                done += k;
            }
            println!(
                "\t{} construction took {} ms",
                if top_down { "Top down" } else { "Bottom up" },
                t.elapsed().as_millis()
            );
        }
    }
    let probe = 1000.min(a.array - 1).max(1);
    let (count, at_probe) = p.check_kept_boehm(probe);
    assert!(
        count == tree_size(a.long_lived_depth) && at_probe == 1.0 / probe as f64,
        "the long-lived data did not survive"
    );
}

/// msgbuf's parameters (the gc-core harness's defaults).
#[derive(clap::Args)]
pub struct MsgbufArgs {
    /// Messages kept alive (the window).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    /// Messages pushed in all.
    #[arg(long, default_value_t = 10_000_000)]
    pushes: u64,
}

/// msgbuf, as the gc-core example `msgbuf` runs it; returns its `key=value` figures (the push
/// latency distribution as `lat_*`, and `latency.csv` where the lab asked).
pub fn msgbuf(p: &mut dyn Peer, a: &MsgbufArgs) -> String {
    let mut lat = Histogram::<u64>::new(3).expect("3 significant digits are valid");
    let sum = p.msgbuf(a.window as usize, a.pushes as usize, &mut lat);
    println!("window sum: {sum}");
    format!(
        "window={} pushes={} {}",
        a.window,
        a.pushes,
        gc_examples::lab_data::latency(&lat, 1.0)
    )
}

/// treechurn's parameters (the gc-core harness's defaults; one mutator).
#[derive(clap::Args)]
pub struct TreechurnArgs {
    /// Live heap to keep, in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    live_mib: u64,
    /// Operations in all (each replaces one tree).
    #[arg(long, default_value_t = 5000)]
    ops: u64,
}

/// treechurn, as the gc-core example `treechurn` runs it with one mutator (as many trees: a
/// node counted as 32 bytes); returns its `key=value` figures.
pub fn treechurn(p: &mut dyn Peer, a: &TreechurnArgs) -> String {
    let tree_bytes = tree_size(CHURN_DEPTH) * 32;
    let trees = ((a.live_mib << 20).div_ceil(tree_bytes)).max(1) as usize;
    let mut lat = Histogram::<u64>::new(3).expect("3 significant digits are valid");
    let sum = p.treechurn(trees, a.ops as usize, &mut lat);
    println!("treechurn live_mib={} trees={trees} sum={sum}", a.live_mib);
    format!(
        "live_mib={} ops={} {}",
        a.live_mib,
        a.ops,
        // Recorded in nanoseconds, as gc-core's harness and Go's twin do.
        gc_examples::lab_data::latency(&lat, 1.0)
    )
}
