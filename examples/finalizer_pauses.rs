//! finalizer_pauses: the termination pause of a heap with many objects registered for
//! finalization (`GcFinalizers`) and many weak references (`GcWeak`).
//!
//! ```sh
//! cargo run --release --example finalizer_pauses -- [--objects N] [--finalizers] [--weaks]
//!     [--cycles C] [--churn-mib M]
//! ```
//!
//! N live objects, each registered with a finalizer queue (`--finalizers`) and/or with a weak
//! reference to it (`--weaks`), stay alive while C cycles run (`Mutator::collect`); before
//! each, one new registered object is left to die, so that each cycle's first resurrection round
//! queues an object (and so also decides the weak references). What a cycle's mark termination
//! must decide about registrations and weak references is decided with the world stopped, and
//! the stop-the-world time is what this measures: the last line is `key=value` pairs, `objects
//! finalizers weaks cycles mark_termination_median_us mark_termination_max_us finalized`
//! (mark termination from the cycle records, exact, of the cycles that ran while the C were
//! measured; `finalized`: the objects queued and popped, which must be C). With `--churn-mib M`,
//! the mutator then allocates M MiB of garbage (16-byte objects, 10 000 a scope) while the
//! heap's own cycles run (with mark assists), and the line adds `churn_cycles
//! churn_mark_cpu_ms` (background, assist and idle-priority marking per cycle, from the cycle
//! records) `churn_mark_termination_median_us churn_mark_termination_max_us its_wait_us` (the
//! median and longest mark termination, and how much of the longest waited for the mutator to
//! reach a safepoint).

use gc_core::{Gc, GcFinalizers, GcVec, GcWeak, Heap, Mutator, Rootable, Trace};

/// The termination pause with many finalizer registrations and weak references.
#[derive(clap::Parser)]
#[command(name = "finalizer_pauses")]
struct Args {
    /// Live objects.
    #[arg(long, default_value_t = 100_000, value_parser = gc_examples::positive)]
    objects: usize,
    /// Register every live object with the finalizer queue.
    #[arg(long)]
    finalizers: bool,
    /// Keep a weak reference to every live object.
    #[arg(long)]
    weaks: bool,
    /// Cycles measured.
    #[arg(long, default_value_t = 10, value_parser = gc_examples::positive)]
    cycles: usize,
    /// MiB of garbage to allocate afterwards, while the heap's own cycles run.
    #[arg(long, default_value_t = 0)]
    churn_mib: usize,
}

#[derive(Trace)]
struct Obj {
    #[gc(skip)]
    id: usize,
}

#[derive(Trace)]
struct Root<'gc> {
    queue: GcFinalizers<'gc, Obj>,
    live: GcVec<'gc, Option<Gc<'gc, Obj>>>,
    weaks: GcVec<'gc, Option<GcWeak<'gc, Obj>>>,
}

fn main() {
    let a: Args = clap::Parser::parse();
    let heap = Heap::from_env().unwrap_or_else(|e| {
        eprintln!("finalizer_pauses: {e}");
        std::process::exit(2)
    });
    let mut m: Mutator<Rootable!['gc => Root<'gc>]> = heap.mutator(|mc| Root {
        queue: GcFinalizers::new(mc),
        live: GcVec::new(mc),
        weaks: GcVec::new(mc),
    });
    // Built in slices, so that no scope holds a cycle up for long.
    for start in (0..a.objects).step_by(10_000) {
        m.mutate(|mc, r| {
            for id in start..(start + 10_000).min(a.objects) {
                let o = Gc::new(mc, Obj { id });
                if a.finalizers {
                    r.queue.register(mc, o);
                }
                if a.weaks {
                    r.weaks.push(mc, Some(o.downgrade(mc)));
                }
                r.live.push(mc, Some(o));
            }
        });
    }
    m.collect();
    heap.take_cycle_records();
    let mut finalized = 0;
    for c in 0..a.cycles {
        m.mutate(|mc, r| r.queue.register(mc, Gc::new(mc, Obj { id: a.objects + c })));
        m.collect();
        finalized += m.mutate(|mc, r| {
            let mut n = 0;
            while let Some(o) = r.queue.pop(mc) {
                assert_eq!(o.id, a.objects + c, "only the dead object is finalized");
                n += 1;
            }
            n
        });
    }
    assert_eq!(finalized, a.cycles, "one dead object finalized a cycle");
    let mut pauses: Vec<u128> = heap
        .take_cycle_records()
        .iter()
        .map(|r| r.mark_termination.as_micros())
        .collect();
    pauses.sort_unstable();
    let mut line = format!(
        "objects={} finalizers={} weaks={} cycles={} mark_termination_median_us={} \
         mark_termination_max_us={} finalized={finalized}",
        a.objects,
        a.finalizers,
        a.weaks,
        pauses.len(),
        pauses[pauses.len() / 2],
        pauses[pauses.len() - 1],
    );
    if a.churn_mib > 0 {
        let per_scope = 10_000;
        let scopes = (a.churn_mib << 20) / (16 * per_scope);
        for _ in 0..scopes {
            m.mutate(|mc, _| {
                for i in 0..per_scope {
                    Gc::new(mc, Obj { id: i });
                }
            });
        }
        let records = heap.take_cycle_records();
        let n = records.len().max(1);
        let cpu: std::time::Duration = records
            .iter()
            .map(|r| r.background_cpu + r.assist_cpu + r.idle_cpu)
            .sum();
        let worst = records.iter().max_by_key(|r| r.mark_termination);
        let mut churn: Vec<u128> = records
            .iter()
            .map(|r| r.mark_termination.as_micros())
            .collect();
        churn.sort_unstable();
        line += &format!(
            " churn_cycles={} churn_mark_cpu_ms={:.2} churn_mark_termination_median_us={} \
             churn_mark_termination_max_us={} its_wait_us={}",
            records.len(),
            cpu.as_secs_f64() * 1e3 / n as f64,
            churn.get(churn.len() / 2).copied().unwrap_or(0),
            worst.map_or(0, |r| r.mark_termination.as_micros()),
            worst.map_or(0, |r| r.mark_termination_wait.as_micros()),
        );
    }
    println!("{line}");
}
