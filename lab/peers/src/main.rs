//! `gc-peers`: the suite's workloads on the other Rust garbage collectors, so the lab can put
//! gc-core beside them in the same run.
//!
//! ```sh
//! cargo run --release -p gc-peers -- <gc-arena|dumpster|rust-gc|sandpit> binary-trees [DEPTH]
//! cargo run --release -p gc-peers -- <peer> gcbench [--stretch-depth 18] [--long-lived-depth 16] [--array 500000] [--max-depth 16]
//! cargo run --release -p gc-peers -- <peer> msgbuf [--window 200000] [--pushes 10000000]
//! cargo run --release -p gc-peers -- <peer> treechurn [--live-mib 64] [--ops 5000]
//! ```
//!
//! Each workload is written once ([`workloads`]) against [`Peer`], the few operations it needs
//! from a collector (build a tree and drop it, keep one, check the kept data), and each peer
//! implements those operations the way its documentation says a user should: in the mutation
//! scopes its API asks for, with the write barrier or cell it asks for, collecting when it says.
//! The output is the gc-core examples' (`binary_trees`, `gcbench`; msgbuf and treechurn print
//! a line of their own): the same lines, which the lab compares for binary-trees, then a
//! `key=value` line (`mode wall_ms rss_peak_mib`, `gc_cycles` where the collector counts them,
//! and for msgbuf and treechurn the latency keys `lat_p50_us` … `lat_max_us`, with the data file
//! `latency.csv` where the lab asks for it).
//!
//! The peers are crates.io's gc-arena 0.7, dumpster 1.2 (its thread-local `unsync` flavour),
//! rust-gc (`gc` 0.5) and sandpit 0.5, each with its default features and settings.

mod arena;
mod dumpster_peer;
mod handles;
mod rust_gc;
mod sandpit_peer;
mod workloads;

use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;

/// What a workload needs from a collector. Three shapes of tree node: the benchmarks game's
/// *pair* (two child pointers, built bottom up, never changed), GCBench's *Boehm node* (two
/// child pointers and two `i32`s, built top down by storing children into empty nodes, or
/// bottom up) and treechurn's *churn node* (two child pointers and two `u64`s, built bottom
/// up); and msgbuf's 1 KiB buffers.
pub trait Peer {
    /// Build `n` pair trees of depth `d` bottom up, count each one's nodes, drop them; returns
    /// the sum of the counts.
    fn pairs(&mut self, d: u32, n: u64) -> u64;
    /// Build a pair tree of depth `d` and keep it until [`Peer::check_kept_pairs`].
    fn keep_pairs(&mut self, d: u32);
    /// The kept pair tree's node count.
    fn check_kept_pairs(&mut self) -> u64;
    /// Build `n` Boehm trees of depth `d` top down and drop them.
    fn boehm_top_down(&mut self, d: u32, n: u64);
    /// Build `n` Boehm trees of depth `d` bottom up and drop them.
    fn boehm_bottom_up(&mut self, d: u32, n: u64);
    /// Keep a Boehm tree of depth `d` built top down, and an array of `len` doubles with
    /// `a[i] = 1/i`, until [`Peer::check_kept_boehm`].
    fn keep_boehm(&mut self, d: u32, len: usize);
    /// The kept Boehm tree's node count and the array's element `probe`.
    fn check_kept_boehm(&mut self, probe: usize) -> (u64, f64);
    /// msgbuf: a window of `window` slots; push `i` allocates a new [`MSG_BYTES`]-byte buffer
    /// (zeroes, `i` in its first 8 bytes) and stores it in slot `i % window`, at most
    /// [`SCOPE_PUSHES`] pushes per mutation scope. Each push's latency, from the end of the one
    /// before, goes into `lat` in ns. Returns the sum of the window's buffers' first bytes.
    fn msgbuf(&mut self, window: usize, pushes: usize, lat: &mut Histogram<u64>) -> u64;
    /// treechurn: `trees` churn trees of depth [`CHURN_DEPTH`] kept (tree `k` from seed `k`);
    /// then `ops` times tree `rng.gen_range(0..trees)` replaced by a new one (seed: the
    /// operation's number), one tree per mutation scope, each operation's latency into `lat`
    /// in ns. Returns Σ `a ^ b` over the trees' roots.
    fn treechurn(&mut self, trees: usize, ops: usize, lat: &mut Histogram<u64>) -> u64;
    /// Collections so far, where the collector counts them.
    fn cycles(&self) -> Option<u64>;
}

/// msgbuf's message size.
pub const MSG_BYTES: usize = 1024;

/// msgbuf's pushes per mutation scope (the gc-core harness's).
pub const SCOPE_PUSHES: usize = 1000;

/// The depth of treechurn's trees (2047 nodes).
pub const CHURN_DEPTH: u32 = 10;

/// treechurn's random tree choices: the gc-core harness's generator and seed (its first
/// mutator's), so that both replace the same trees.
pub fn churn_rng() -> rand::rngs::SmallRng {
    rand::SeedableRng::seed_from_u64(0)
}

/// The message of push `i`.
pub fn message(buf: &mut [u8; MSG_BYTES], i: usize) {
    buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
}

/// Nodes in a tree of depth `d`.
pub const fn tree_size(d: u32) -> u64 {
    (1 << (d + 1)) - 1
}

/// The most nodes a workload builds in one mutation scope of a collector that has scopes
/// (gc-arena, sandpit): what the gc-core examples allow theirs.
pub const SCOPE_BUDGET: u64 = 1 << 14;

/// The Rust collectors the lab compares gc-core with.
#[derive(Clone, Copy, ValueEnum)]
enum Collector {
    /// gc-arena 0.7: incremental mark-sweep in arenas entered with `mutate`.
    GcArena,
    /// dumpster 1.2: reference counting with a cycle collector (thread-local flavour).
    Dumpster,
    /// rust-gc (`gc` 0.5): thread-local mark-sweep with rooting counts.
    RustGc,
    /// sandpit 0.5: generational mark-sweep in arenas entered with `mutate`.
    Sandpit,
}

#[derive(Subcommand)]
enum Workload {
    /// The benchmarks game's binary-trees.
    BinaryTrees {
        /// Depth of the long-lived tree (the stretch tree is one deeper); at least 6, as the
        /// gc-core example makes it, at most 27 (the checks are summed in 32 bits there).
        #[arg(default_value_t = 21, value_parser = clap::value_parser!(u32).range(0..=27))]
        depth: u32,
    },
    /// GCBench (Boehm's parameters are the defaults).
    Gcbench(workloads::GcBenchArgs),
    /// msgbuf: a window of 1 KiB messages, each push replacing the oldest.
    Msgbuf(workloads::MsgbufArgs),
    /// treechurn: a live heap of trees, one replaced per operation (one mutator).
    Treechurn(workloads::TreechurnArgs),
}

/// One of the suite's workloads on another Rust collector.
#[derive(Parser)]
#[command(name = "gc-peers")]
struct Args {
    /// The collector.
    #[arg(value_enum)]
    gc: Collector,
    #[command(subcommand)]
    workload: Workload,
}

fn main() {
    let args = Args::parse();
    let t0 = Instant::now();
    let mut peer: Box<dyn Peer> = match args.gc {
        Collector::GcArena => Box::new(arena::ArenaPeer::new()),
        Collector::Dumpster => Box::new(dumpster_peer::DumpsterPeer::default()),
        Collector::RustGc => Box::new(rust_gc::RustGcPeer::default()),
        Collector::Sandpit => Box::new(sandpit_peer::SandpitPeer::new()),
    };
    let mode = args
        .gc
        .to_possible_value()
        .expect("every peer has a name")
        .get_name()
        .to_string();
    let keys = match &args.workload {
        Workload::BinaryTrees { depth } => {
            let depth = (*depth).max(6);
            workloads::binary_trees(peer.as_mut(), depth);
            format!("depth={depth}")
        }
        Workload::Gcbench(a) => {
            if let Err(e) = a.validate() {
                eprintln!("gc-peers: {e}");
                std::process::exit(2);
            }
            workloads::gcbench(peer.as_mut(), a);
            a.keys()
        }
        Workload::Msgbuf(a) => workloads::msgbuf(peer.as_mut(), a),
        Workload::Treechurn(a) => workloads::treechurn(peer.as_mut(), a),
    };
    let wall = t0.elapsed();
    if matches!(args.workload, Workload::Gcbench(_)) {
        println!("Completed in {} ms.", wall.as_millis());
    }
    let cycles = peer
        .cycles()
        .map(|c| format!(" gc_cycles={c}"))
        .unwrap_or_default();
    println!(
        "mode={mode} {keys} wall_ms={} rss_peak_mib={:.1}{cycles}",
        wall.as_millis(),
        rss_peak_mib()
    );
}

/// Peak resident set size in MiB (`VmHWM`), 0 where `/proc` has none.
fn rss_peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
