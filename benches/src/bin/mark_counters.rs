//! Hardware counters per marked object: CPU time (a software counter), cycles, instructions, last-level-cache references and
//! misses, L1 data-cache read misses and data-TLB read misses, counted over full collections of
//! one of `gc_benches`' heap shapes.
//!
//! `cargo run --release -p gc-benches --bin mark_counters -- SHAPE [--span-marking]
//! [--workers N] [--collections K] [--ring N] [--depth D] [--concurrent] [--software]` with SHAPE one of `random`, `in-order`, `ring`,
//! `arrays` (`--ring`: buffers in the ring, default 16 384; `--depth`: trees of 2^D − 1 nodes,
//! default 2^20 − 1); `--concurrent`: each collection a cycle of concurrent marking (the
//! mutator idle) instead of a stop-the-world one, with the workers the configuration gives it
//! (`--workers` sets the stop-the-world workers only); `--software` counts CPU time only (for machines without hardware counters);
//! `scripts/mark_counters.sh` runs every shape and marker. Needs hardware counters that a
//! process may count on itself (`perf_event_paranoid` ≤ 2, and a machine or VM that exposes
//! the PMU); without them it says which counter it could not open and exits with status 2.
//!
//! The counters are opened before the heap, with `inherit`, so they count the collector's and
//! mark workers' threads too; they are enabled only around each `collect()` (after the previous
//! cycle's sweep is finished), so building the heap is not counted. What is counted is the
//! whole collection: root scanning, marking, the pauses, and the sweep of spans that are all
//! live. For the tree shapes marking is nearly all of it.
//!
//! Prints one `key=value` line: the shape, marker, workers, objects (for `arrays`, the pointers
//! scanned), collections, the median mark phase per collection (`CycleRecord::mark`) and each
//! counter per marked object (per pointer for `arrays`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use gc_benches::{
    ARRAYS, NODES, NodeRoot, RING, build_arrays, build_ring, build_tree_of, heap_with,
};
use gc_core::GcCell;

/// The first fields of the kernel's `struct perf_event_attr` (its size version 1, 72 bytes);
/// the kernel reads `size` bytes and treats the rest as zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
}

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_TYPE_SOFTWARE: u32 = 1;
const SW_TASK_CLOCK: u64 = 1;
const PERF_TYPE_HW_CACHE: u32 = 3;
const HW_CPU_CYCLES: u64 = 0;
const HW_INSTRUCTIONS: u64 = 1;
const HW_CACHE_REFERENCES: u64 = 2;
const HW_CACHE_MISSES: u64 = 3;
/// `PERF_COUNT_HW_CACHE_{L1D,DTLB} | OP_READ << 8 | RESULT_MISS << 16`.
const L1D_READ_MISS: u64 = 1 << 16;
const DTLB_READ_MISS: u64 = 3 | (1 << 16);
// perf_event_attr flag bits.
const DISABLED: u64 = 1 << 0;
const INHERIT: u64 = 1 << 1;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
// read_format: the count is followed by the times enabled and running (to scale multiplexing).
const FORMAT_TIMES: u64 = 1 | 2;
// ioctls: _IO('$', 0), _IO('$', 1), _IO('$', 3).
const IOC_ENABLE: libc::c_ulong = 0x2400;
const IOC_DISABLE: libc::c_ulong = 0x2401;

/// One counter on this process and (through `inherit`) every thread it starts afterwards.
struct Counter {
    name: &'static str,
    fd: OwnedFd,
}

impl Counter {
    fn open(name: &'static str, kind: u32, config: u64) -> io::Result<Counter> {
        let attr = PerfEventAttr {
            kind,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config,
            read_format: FORMAT_TIMES,
            flags: DISABLED | INHERIT | EXCLUDE_KERNEL | EXCLUDE_HV,
            ..Default::default()
        };
        // SAFETY: `attr` is a valid, initialised `perf_event_attr` prefix whose `size` field
        // says how many bytes the kernel may read; pid 0 / cpu -1 counts this process on any
        // CPU; group -1 and flags 0 ask for a standalone counter. The call reads `attr` only
        // during the syscall.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                0 as libc::pid_t,
                -1 as libc::c_int,
                -1 as libc::c_int,
                0 as libc::c_ulong,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a new file descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        Ok(Counter { name, fd })
    }

    fn ioctl(&self, request: libc::c_ulong) {
        // SAFETY: `fd` is a perf event descriptor; ENABLE/DISABLE take no argument and act on
        // the counter and its inherited copies in the threads started since.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), request, 0) };
        assert_eq!(r, 0, "{}: ioctl: {}", self.name, io::Error::last_os_error());
    }

    /// The count so far, summed over the inherited copies and scaled by the fraction of the
    /// enabled time the counter was running (the PMU multiplexes when counters outnumber it).
    fn read(&self) -> f64 {
        let mut v = [0u64; 3];
        // SAFETY: `v` is 24 writable bytes, what `read_format` = value, time enabled, time
        // running makes the kernel write.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), v.as_mut_ptr().cast(), 24) };
        assert_eq!(n, 24, "{}: read: {}", self.name, io::Error::last_os_error());
        if v[2] == 0 {
            0.0
        } else {
            v[0] as f64 * v[1] as f64 / v[2] as f64
        }
    }
}

struct Args {
    shape: String,
    span_marking: bool,
    workers: Option<usize>,
    collections: usize,
    software: bool,
    ring: usize,
    nodes: usize,
    concurrent: bool,
}

fn args() -> Args {
    let mut a = Args {
        shape: String::new(),
        span_marking: false,
        workers: None,
        collections: 20,
        software: false,
        ring: RING,
        nodes: NODES,
        concurrent: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--span-marking" => a.span_marking = true,
            "--software" => a.software = true,
            "--ring" => a.ring = it.next().and_then(|v| v.parse().ok()).unwrap_or(RING),
            "--depth" => {
                let d: u32 = it.next().and_then(|v| v.parse().ok()).expect("--depth D");
                assert!((2..=26).contains(&d), "--depth from 2 to 26");
                a.nodes = 1 << d;
            }
            "--concurrent" => a.concurrent = true,
            "--workers" => a.workers = it.next().and_then(|v| v.parse().ok()),
            "--collections" => a.collections = it.next().and_then(|v| v.parse().ok()).unwrap_or(20),
            s if !s.starts_with('-') => a.shape = s.to_string(),
            s => panic!("unknown flag {s}"),
        }
    }
    a
}

fn main() {
    let a = args();
    // CPU time (a software counter, so it works everywhere) and the hardware ones.
    let mut events = vec![("cpu_ns", PERF_TYPE_SOFTWARE, SW_TASK_CLOCK)];
    events.extend_from_slice(&[
        ("cycles", PERF_TYPE_HARDWARE, HW_CPU_CYCLES),
        ("instructions", PERF_TYPE_HARDWARE, HW_INSTRUCTIONS),
        ("llc_refs", PERF_TYPE_HARDWARE, HW_CACHE_REFERENCES),
        ("llc_misses", PERF_TYPE_HARDWARE, HW_CACHE_MISSES),
        ("l1d_misses", PERF_TYPE_HW_CACHE, L1D_READ_MISS),
        ("dtlb_misses", PERF_TYPE_HW_CACHE, DTLB_READ_MISS),
    ]);
    if a.software {
        events.truncate(1);
    }
    let mut counters = Vec::new();
    for (name, kind, config) in events {
        match Counter::open(name, kind, config) {
            Ok(c) => counters.push(c),
            Err(e) => {
                eprintln!("mark_counters: cannot open the {name} counter: {e}");
                std::process::exit(2);
            }
        }
    }
    let h = heap_with(a.workers, a.span_marking, a.concurrent);
    // Keep the mutator (and so the shape) alive for the collections.
    let (objects, mut collect): (usize, Box<dyn FnMut()>) = match a.shape.as_str() {
        "random" | "in-order" => {
            let mut m = h.mutator::<NodeRoot>(|_| GcCell::new(None));
            build_tree_of(&mut m, a.shape == "random", a.nodes);
            (a.nodes - 1, Box::new(move || m.collect()))
        }
        "ring" => {
            let mut m = build_ring(&h, a.ring);
            (a.ring + 1, Box::new(move || m.collect()))
        }
        "arrays" => {
            let mut m = build_arrays(&h);
            // Per pointer scanned: the arrays' 273 objects hold a million edges.
            (ARRAYS.0 * ARRAYS.1, Box::new(move || m.collect()))
        }
        s => panic!("unknown shape {s:?} (random, in-order, ring, arrays)"),
    };
    let mut marks = Vec::new();
    collect(); // a first cycle, uncounted: sweeps the building's spans once
    for _ in 0..a.collections {
        h.finish_sweep();
        h.take_cycle_records();
        counters.iter().for_each(|c| c.ioctl(IOC_ENABLE));
        collect();
        counters.iter().for_each(|c| c.ioctl(IOC_DISABLE));
        marks.extend(h.take_cycle_records().iter().map(|r| r.mark));
    }
    marks.sort();
    let median: Duration = marks.get(marks.len() / 2).copied().unwrap_or_default();
    let marker = if a.span_marking {
        "span-local"
    } else {
        "depth-first"
    };
    let workers = a.workers.map_or("all".to_string(), |w| w.to_string());
    let mut line = format!(
        "shape={}{} marker={marker} workers={workers} objects={objects} collections={} cycles={} mark_ms={:.3}",
        a.shape,
        if a.shape == "ring" {
            format!("-{}", a.ring)
        } else {
            String::new()
        },
        a.collections,
        if a.concurrent {
            "concurrent"
        } else {
            "stop-the-world"
        },
        median.as_secs_f64() * 1e3
    );
    let marked = (objects * a.collections) as f64;
    for c in &counters {
        line += &format!(" {}_per_obj={:.3}", c.name, c.read() / marked);
    }
    // Grey batches handed between markers in the last collection (work balancing).
    line += &format!(" shared_batches={}", h.stats().mark_shared_batches);
    println!("{line}");
    drop(collect);
    drop(h);
}
