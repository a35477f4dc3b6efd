//! What the heap reports, gathered from each owner of a figure: `HeapStats`, the Go-named
//! metrics, and the per-cycle records (gctrace).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::gc::heap::Shared;
use crate::telemetry::gctrace::CycleRecord;
use crate::telemetry::metrics::{HeapStats, Metrics, Value};

/// A snapshot of the heap's figures (`Heap::stats`), read from each owner.
pub(crate) fn heap_stats(h: &Shared) -> HeapStats {
    let s = &h.stats;
    let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
    HeapStats {
        gc_cycles: s.cycles.load(Ordering::Relaxed),
        heap_live: h.mheap.counters.heap_live.load(Ordering::Relaxed),
        heap_marked: h.mheap.counters.heap_marked.load(Ordering::Relaxed),
        marked_objects: s.last_marked_objects.load(Ordering::Relaxed),
        mark_shared_batches: s.last_shared_batches.load(Ordering::Relaxed),
        heap_goal: h.pacer.heap_goal.load(Ordering::Relaxed),
        heap_trigger: h.pacer.trigger.load(Ordering::Relaxed),
        mapped_bytes: h.mheap.arena.mapped_bytes(),
        in_use_bytes: h.mheap.page_use().0,
        objects_allocated: h.mheap.counters.objects_allocated.load(Ordering::Relaxed),
        objects_freed: s.objects_freed.load(Ordering::Relaxed),
        bytes_freed: s.bytes_freed.load(Ordering::Relaxed),
        pauses: s.pauses.load(Ordering::Relaxed),
        pause_total: d(&s.pause_total_ns),
        pause_max: d(&s.pause_max_ns),
        last_pause: d(&s.last_pause_ns),
        mark_total: d(&s.mark_total_ns),
        cycle_total: d(&s.cycle_total_ns),
        gc_percent: h.pacer.gc_percent().map(|p| p as u32),
        assists: s.assists.load(Ordering::Relaxed),
        assist_bytes: s.assist_bytes.load(Ordering::Relaxed),
        assist_time: d(&s.assist_ns),
        assist_parks: s.assist_parks.load(Ordering::Relaxed),
        late_start_waits: s.late_start_waits.load(Ordering::Relaxed),
        late_start_wait: d(&s.late_start_wait_ns),
        scope_wait_total: d(&s.scope_wait_total_ns),
        scope_wait_max: d(&s.scope_wait_max_ns),
        scope_wait_max_mutator: match s.scope_wait_max_mutator.load(Ordering::Relaxed) {
            _ if s.scope_wait_max_ns.load(Ordering::Relaxed) == 0 => None,
            usize::MAX => None,
            id => Some(id),
        },
        stashed: h.stash.lock().len(),
        weak_refs: h.weaks.lock().len(),
    }
}

/// A snapshot of the heap's metrics (`Heap::metrics`), read from each owner.
pub(crate) fn metrics(h: &Shared) -> Metrics {
    let s = &h.stats;
    let u = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let secs = |ns: u64| ns as f64 * 1e-9;
    let cycles = u(&s.cycles);
    let procs = h.settings.procs as u64;
    let pause_cpu = u(&s.pause_total_ns) * procs;
    let assist = u(&s.assist_ns);
    let bg = u(&s.bg_mark_ns);
    let idle = u(&s.idle_mark_ns);
    let scav_bg = u(&s.scavenge_ns);
    let scav_sync = h.mheap.arena.sync_scavenge_ns.load(Ordering::Relaxed) as u64;
    let sweep_bg = u(&s.sweep_bg_ns);
    let threads = s.collector_threads_ns();
    let (cleanups_run, cleanups_panicked) = h.finalize.cleanups_run();
    let booked = bg + idle + sweep_bg + scav_bg;
    let (gc_percent, limit, cons_mark) = {
        let p = h.pacer.model.lock();
        (p.gc_percent(), p.memory_limit(), p.cons_mark())
    };
    let heap_alloc = h.mheap.counters.heap_alloc.load(Ordering::Relaxed) as u64;
    let (in_use, free) = h.mheap.page_use();
    let in_use = in_use as u64;
    let elapsed = h.phases.elapsed().as_nanos() as u64;
    let objects = u(&h.mheap.counters.objects_allocated);
    let freed = u(&s.objects_freed);
    use Value::{Float64 as F, Histogram as H, Uint64 as U};
    let values = [
        U(cycles),
        // Counted apart (not the total less the forced ones): the two are counted at
        // different moments of a cycle's end, and a difference could go down meanwhile.
        U(u(&s.automatic_cycles)),
        U(u(&s.forced_cycles)),
        H(s.pause_hist.read()),
        U(h.pacer.heap_goal.load(Ordering::Relaxed) as u64),
        U(h.mheap.counters.heap_marked.load(Ordering::Relaxed) as u64),
        U(objects),
        U(freed),
        U(u(&s.bytes_freed)),
        U(objects.saturating_sub(freed)),
        U(gc_percent.map_or(u64::MAX, u64::from)),
        U(limit.unwrap_or(i64::MAX as u64)),
        U(u(&s.limiter_last_enabled_cycle)),
        U(heap_alloc),
        U(in_use.saturating_sub(heap_alloc)),
        U(free as u64),
        U(h.mheap.arena.released_bytes() as u64),
        U(h.mheap.arena.mapped_bytes() as u64),
        F(secs(assist)),
        F(secs(bg)),
        F(secs(idle)),
        F(secs(pause_cpu)),
        F(secs(assist + bg + idle + pause_cpu)),
        F(secs(scav_bg)),
        F(secs(scav_sync)),
        F(secs(elapsed * procs)),
        U(procs),
        U(h.pacer.trigger.load(Ordering::Relaxed) as u64),
        U(h.mheap.counters.heap_live.load(Ordering::Relaxed) as u64),
        U(h.mheap.arena.mapped_ready_bytes() as u64),
        F(secs(crate::util::clock::process_cpu_ns())),
        F(secs(sweep_bg)),
        F(secs(threads)),
        F(secs({
            // Cumulative, so never lower than a value already read (see the field).
            let other = threads.saturating_sub(booked);
            s.collector_other_ns
                .fetch_max(other, Ordering::Relaxed)
                .max(other)
        })),
        U(h.pacer.limiting.load(Ordering::Relaxed) as u64),
        U(u(&s.limiter_enabled)),
        F(cons_mark),
        U(u(&s.limiter_stalls)),
        U((h.mheap.limiter_stall_ns.load(Ordering::Relaxed) != 0) as u64),
        U(h.pacer.goal_has_room.load(Ordering::Relaxed) as u64),
        U(u(&h.ephemerons.rounds)),
        U(u(&h.ephemerons.cleared)),
        U(u(&h.ephemerons.indexed)),
        U(u(&h.finalize.finalizers_queued)),
        U(u(&h.finalize.finalizers_popped)),
        U(cleanups_run),
        U(h.finalize.cleanups_pending()),
        U(cleanups_panicked),
        U(u(&s.late_start_waits)),
        F(secs(u(&s.late_start_wait_ns))),
        F(secs(u(&s.scope_wait_total_ns))),
        F(secs(u(&s.scope_wait_max_ns))),
        U(u(&s.scavenge_looks)),
    ];
    Metrics::from_values(values.into())
}

/// The fields every cycle's record has, read at the end of its STW 2 (the goal and trigger it
/// set for the next cycle) from what the cycle measured; the caller adds its phases and CPU.
pub(crate) fn record_base(
    h: &Shared,
    cycle: u64,
    started: std::time::Instant,
    (heap_start, heap_end, heap_marked): (usize, usize, usize),
    (trigger, heap_goal): (usize, usize),
    cons_mark: f64,
) -> CycleRecord {
    use std::sync::atomic::Ordering;
    CycleRecord {
        cycle,
        start: h.phases.offset(started),
        procs: h.settings.procs,
        heap_start,
        trigger,
        heap_end,
        heap_marked,
        heap_goal,
        next_goal: h.pacer.heap_goal.load(Ordering::Relaxed),
        next_trigger: h.pacer.trigger.load(Ordering::Relaxed),
        cons_mark,
        ..CycleRecord::default()
    }
}

/// A cycle has ended (world restarted): complete its record (forced or not, GC CPU fraction so
/// far), log it, and print it if gctrace is on. Returns whether it was forced.
pub(crate) fn cycle_done(h: &Shared, mut rec: CycleRecord) -> bool {
    use std::sync::atomic::Ordering;
    rec.forced = {
        let mut st = h.control.state.lock();
        let forced = st.forced.contains(&rec.cycle);
        st.forced.retain(|&c| c > rec.cycle);
        forced
    };
    let capacity = h.phases.elapsed().as_nanos() as f64 * h.settings.procs as f64;
    if capacity > 0.0 {
        rec.gc_cpu_fraction = h.stats.gc_cpu_ns(h.settings.procs) as f64 / capacity;
    }
    if h.settings.gctrace {
        eprintln!("{}", rec.gctrace_line());
    }
    if h.pacer_trace.on() {
        let threads = h.stats.collector_threads_ns();
        let (gc_percent, memory_limit) = {
            let p = h.pacer.model.lock();
            (p.gc_percent().map(u64::from), p.memory_limit())
        };
        let extra = crate::telemetry::pacertrace::TraceExtra {
            mutator_cpu_ns: crate::util::clock::process_cpu_ns()
                .saturating_sub(h.pacer_trace.base_cpu_ns())
                .saturating_sub(threads)
                .saturating_sub(h.stats.assist_ns.load(Ordering::Relaxed)),
            gc_percent,
            memory_limit,
            mapped_ready: h.mheap.arena.mapped_ready_bytes() as u64,
        };
        h.pacer_trace.write(&rec, &extra);
    }
    let forced = rec.forced;
    h.cycle_log.push(rec);
    forced
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::Ordering;

    /// The GC's total CPU class is the sum of its four parts, idle-priority marking included
    /// (which a heap marks only where a CPU is spare, so an end-to-end test may see none): the
    /// parts are set by hand on a heap that runs no cycle.
    #[test]
    fn the_gc_total_is_the_sum_of_its_cpu_classes() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let h = heap.shared();
        let s = &h.stats;
        s.assist_ns.fetch_add(1_000_000, Ordering::Relaxed);
        s.bg_mark_ns.fetch_add(20_000_000, Ordering::Relaxed);
        s.idle_mark_ns.fetch_add(300_000_000, Ordering::Relaxed);
        s.pause_total_ns.fetch_add(4_000, Ordering::Relaxed);
        let m = super::metrics(h);
        let f = |name: &str| m.f64(name).unwrap_or_else(|| panic!("{name}"));
        let parts = [
            "/cpu/classes/gc/mark/assist:cpu-seconds",
            "/cpu/classes/gc/mark/dedicated:cpu-seconds",
            "/cpu/classes/gc/mark/idle:cpu-seconds",
            "/cpu/classes/gc/pause:cpu-seconds",
        ];
        for p in parts {
            assert!(f(p) > 0.0, "{p} is zero");
        }
        let sum: f64 = parts.iter().map(|p| f(p)).sum();
        let total = f("/cpu/classes/gc/total:cpu-seconds");
        assert!((total - sum).abs() < 1e-9, "total {total}, parts {sum}");
    }
}
