//! Bad input: every case gives a documented error (or a documented panic with a clear message),
//! never undefined behaviour.

#![allow(clippy::type_complexity)] // `Rootable![...]` expands to a long type

use gc_core::{
    AllocError, Config, Gc, GcArray, GcBytes, GcVec, Heap, HeapError, Mutator, Rootable, Trace,
};

fn env_with(k: &'static str, v: &'static str) -> impl Fn(&str) -> Option<String> {
    move |key| (key == k).then(|| v.to_string())
}

#[test]
fn gogc_abc_is_an_error_naming_the_variable() {
    let e = Config::default()
        .apply_env(env_with("GOGC", "abc"))
        .unwrap_err();
    assert_eq!(e.var, "GOGC");
    let msg = e.to_string();
    assert!(
        msg.contains("GOGC") && msg.contains("abc") && msg.contains("off"),
        "{msg}"
    );
    // The same error reaches Heap creation through `HeapError::Config`.
    let he: HeapError = e.into();
    assert!(he.to_string().contains("GOGC"));
}

/// A variable whose value is not valid UTF-8 is malformed, not unset (read as unset, `GOGC`
/// bytes that are not text gave the default GC percent and a `GOMEMLIMIT` no limit). Set in a
/// child process of this test, since the environment is the process's.
#[test]
fn a_value_that_is_not_utf8_is_an_error_naming_the_variable() {
    use std::os::unix::ffi::OsStrExt;
    if std::env::var_os("GCCORE_TEST_CHILD").is_some() {
        let e = Config::from_env().unwrap_err();
        assert_eq!(e.var, "GOMEMLIMIT");
        assert!(e.to_string().contains("UTF-8"), "{e}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_value_that_is_not_utf8_is_an_error_naming_the_variable",
        ])
        .env("GCCORE_TEST_CHILD", "1")
        .env("GOMEMLIMIT", std::ffi::OsStr::from_bytes(b"512MiB\xff"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The child ran the test (not zero tests filtered in).
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// `GCCORE_MAX_HEAP` takes `GOMEMLIMIT`'s minimum (a bare `100` is 100 bytes, surely meant as
/// more, and would refuse every span once anything is live); the builder raises a smaller cap
/// to it, as it does a memory limit.
#[test]
fn a_live_heap_cap_below_one_mebibyte_is_an_error() {
    for bad in ["100", "0", "1023KiB", "lots"] {
        let e = Config::default()
            .apply_env(env_with("GCCORE_MAX_HEAP", bad))
            .unwrap_err();
        assert_eq!(e.var, "GCCORE_MAX_HEAP", "{bad}");
        assert!(e.to_string().contains("1MiB"), "{e}");
    }
    for (v, want) in [("1MiB", Some(1 << 20)), ("OFF", None), ("off", None)] {
        let c = Config::default()
            .apply_env(env_with("GCCORE_MAX_HEAP", v))
            .unwrap();
        assert_eq!(c.get_max_heap(), want, "{v}");
    }
    assert_eq!(
        Config::default().max_heap(Some(100)).get_max_heap(),
        Some(gc_core::config::MIN_MEMORY_LIMIT)
    );
}

#[test]
fn reservation_too_small_for_one_span() {
    match Heap::new(Config::default().arena_bytes(8192)) {
        Err(HeapError::ReservationTooSmall { requested, minimum }) => {
            assert_eq!(requested, 8192);
            assert_eq!(minimum, gc_core::layout::MIN_RESERVATION);
        }
        other => panic!("expected ReservationTooSmall, got {other:?}"),
    }
}

#[test]
fn impossible_reservation_is_an_os_error() {
    match Heap::new(Config::default().arena_bytes(1 << 62)) {
        Err(HeapError::Reserve(_)) => {}
        other => panic!("expected Reserve error, got {other:?}"),
    }
}

#[test]
fn pacer_knobs_out_of_range_are_refused_by_the_heap() {
    let mut bad = gc_core::pacer::PacerConfig::default();
    bad.set("min_trigger", "0.98").unwrap(); // above max_trigger: only validate sees it
    match Heap::new(Config::default().pacer(bad)) {
        Err(HeapError::Config(e)) => {
            assert_eq!(e.var, "Config::pacer");
            assert!(e.value.contains("min_trigger=0.98"), "{}", e.value);
            assert!(e.value.contains("max_trigger"), "{}", e.value);
        }
        other => panic!("expected a config error, got {:?}", other.err()),
    }
    // The same knobs in a valid combination are taken.
    let mut good = gc_core::pacer::PacerConfig::default();
    good.apply("min_trigger=0.98,max_trigger=0.99").unwrap();
    assert!(Heap::new(Config::default().pacer(good)).is_ok());
    // Fail-fast and the square-root rule belong to concurrent marking: refused without it.
    for knobs in ["fail_fast=1s", "policy=sqrt"] {
        let mut p = gc_core::pacer::PacerConfig::default();
        p.apply(knobs).unwrap();
        assert!(
            Heap::new(Config::default().pacer(p.clone())).is_ok(),
            "{knobs}"
        );
        match Heap::new(Config::default().concurrent(false).pacer(p)) {
            Err(HeapError::Config(e)) => assert!(e.expected.contains("stop-the-world"), "{e}"),
            other => panic!("{knobs}: expected a config error, got {:?}", other.err()),
        }
    }
}

#[derive(Trace, Debug, PartialEq)]
struct Unit;

#[test]
fn zero_sized_types_get_distinct_live_objects() {
    let heap = Heap::new(Config::default().verify(true)).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        let a = Gc::new(mc, ());
        let b = Gc::new(mc, Unit);
        let c = Gc::new(mc, Unit);
        assert_ne!(a.as_ptr() as usize, b.as_ptr() as usize);
        assert!(!Gc::ptr_eq(b, c));
        assert_eq!(*b, Unit);
    });
    m.collect();
    assert!(heap.stats().objects_freed >= 3);
}

#[derive(Trace, Debug, PartialEq)]
#[repr(align(16))]
struct Aligned16;

#[derive(Trace, Debug, PartialEq)]
#[repr(align(16))]
struct Aligned16Word(u64);

/// Types aligned to 16 bytes (the most `Gc::new` takes), zero-sized or not, get 16-byte aligned
/// objects, each its own.
#[test]
fn objects_aligned_to_16_bytes_are_aligned() {
    let heap = Heap::new(Config::default().verify(true)).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        let units: Vec<_> = (0..200).map(|_| Gc::new(mc, Aligned16)).collect();
        let words: Vec<_> = (0..200).map(|i| Gc::new(mc, Aligned16Word(i))).collect();
        let mut addrs: Vec<usize> = units.iter().map(|g| g.as_ptr() as usize).collect();
        addrs.extend(words.iter().map(|g| g.as_ptr() as usize));
        assert!(
            addrs.iter().all(|a| a % 16 == 0),
            "misaligned: {:?}",
            addrs
                .iter()
                .filter(|a| *a % 16 != 0)
                .take(4)
                .collect::<Vec<_>>()
        );
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 400, "objects share addresses");
        assert!(
            words
                .iter()
                .enumerate()
                .all(|(i, w)| **w == Aligned16Word(i as u64))
        );
    });
}

#[test]
fn objects_larger_than_the_largest_size_class() {
    let heap = Heap::new(Config::default().verify(true)).unwrap();
    let mut m: Mutator<Rootable!['gc => gc_core::GcCell<'gc, Option<Gc<'gc, [u64; 8192]>>>]> =
        heap.mutator(|_| gc_core::GcCell::new(None));
    let allocated = heap.stats().objects_allocated;
    m.mutate(|mc, root| {
        let big = Gc::new(mc, [7u64; 8192]); // 64 KiB: a large span
        root.set(mc, Some(big));
        let arr = GcArray::new(mc, 100_000, 3u64); // 800 KB
        assert_eq!(arr.get(99_999), 3);
        let bytes = GcBytes::new(mc, &vec![1u8; 1 << 20]);
        assert_eq!(bytes.len(), 1 << 20);
    });
    m.collect();
    let s1 = heap.stats();
    assert_eq!(
        s1.objects_allocated - allocated,
        3,
        "three large objects counted"
    );
    assert_eq!(m.mutate(|_, root| root.get().unwrap()[8191]), 7);
    m.mutate(|mc, root| root.set(mc, None));
    m.collect();
    let s2 = heap.stats();
    assert!(
        s2.in_use_bytes + 64 * 1024 <= s1.in_use_bytes,
        "large span not freed: {s1:?} -> {s2:?}"
    );
}

#[test]
fn arena_exhaustion_is_an_error_and_recoverable() {
    let heap = Heap::new(Config::default().arena_bytes(16 << 20).gc_percent(None)).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let got = m.mutate(|mc, _| {
        let mut n = 0;
        loop {
            match GcArray::try_new(mc, 128 * 1024, 0u64) {
                Ok(_) => n += 1,
                Err(e) => {
                    assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e:?}");
                    assert!(e.to_string().contains("out of memory"));
                    break n;
                }
            }
        }
    });
    assert!(
        (10..=16).contains(&got),
        "allocated {got} MiB in a 16 MiB arena"
    );
    // Leaving the scope lets the collector free the garbage: allocation works again.
    m.collect();
    m.mutate(|mc, _| {
        GcArray::try_new(mc, 128 * 1024, 0u64).expect("memory was reclaimed");
    });
}

/// A request larger than the whole arena is refused without starting a cycle, which could not
/// help (a refusal of an exhausted arena does start one, as above).
#[test]
fn a_request_larger_than_the_arena_starts_no_cycle() {
    let heap = Heap::new(Config::default().arena_bytes(4 << 20).gc_percent(None)).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    heap.take_phase_records();
    let e = m.mutate(|mc, _| GcArray::try_new(mc, 1 << 20, 0u64).map(|_| ()).unwrap_err());
    match e {
        AllocError::OutOfMemory {
            requested,
            reservation,
        } => assert!(requested > reservation, "{e}"),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    // A requested cycle would run now that the scope has ended, and would have recorded its
    // first pause (sweep termination, microseconds after it starts) well within the wait, even
    // on a machine too slow for it to have completed.
    std::thread::sleep(std::time::Duration::from_millis(200));
    m.mutate(|_, _| ());
    assert_eq!(heap.stats().gc_cycles, 0);
    let phases = heap.take_phase_records();
    assert!(phases.is_empty(), "a cycle started: {phases:?}");
}

#[test]
#[should_panic(expected = "out of memory")]
fn gc_new_panics_with_a_clear_message_when_exhausted() {
    let heap = Heap::new(Config::default().arena_bytes(1 << 20).gc_percent(None)).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        loop {
            Gc::new(mc, [0u64; 4096]);
        }
    });
}

#[test]
fn absurd_lengths_are_too_large() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        let e = GcArray::try_new(mc, usize::MAX / 4, 0u64).unwrap_err();
        assert_eq!(
            e,
            AllocError::TooLarge {
                len: usize::MAX / 4
            }
        );
    });
}

/// Lengths whose byte size wraps the word (in the multiplication or in the header's addition)
/// or passes `isize::MAX` are too large, for an array and a vector's capacity alike: none gets
/// a small object whose header claims the length (its initialisation would write past it).
/// The first would wrap to a 64 KiB object, so a lost check fails here cleanly.
#[test]
fn lengths_whose_byte_size_wraps_or_passes_isize_max_are_too_large() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        for len in [
            (1usize << 61) + 8192,
            usize::MAX / 8,
            isize::MAX as usize / 8,
            usize::MAX / 8 - 1,
        ] {
            let e = GcArray::try_new(mc, len, 0u64).map(|_| ()).unwrap_err();
            assert_eq!(e, AllocError::TooLarge { len }, "{len:#x}");
            assert!(
                matches!(
                    GcVec::<u64>::try_with_capacity(mc, len).map(|_| ()),
                    Err(AllocError::TooLarge { .. })
                ),
                "{len:#x}"
            );
        }
    });
}

#[test]
#[should_panic(expected = "inside a mutation scope")]
fn collect_inside_a_scope_panics_instead_of_deadlocking() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|_, _| heap.collect());
}

#[test]
#[should_panic(expected = "already inside a mutation scope")]
fn nested_scopes_of_one_heap_on_one_thread_panic() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut a: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let mut b: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    a.mutate(|_, _| b.mutate(|_, _| ()));
}

/// A limiter bucket too large to count in nanoseconds for all CPUs is taken (it holds the most
/// a bucket can, which never fills) instead of overflowing: with overflow checks `Heap::new`
/// panicked, without them the bucket wrapped round to almost nothing and the limiter stayed on.
#[test]
fn a_huge_limiter_bucket_never_fills() {
    let mut p = gc_core::pacer::PacerConfig::default();
    p.apply("limiter_bucket=9223372036854775808ns").unwrap();
    let heap = Heap::new(Config::default().debug_cpus(2).pacer(p)).expect("a valid bucket");
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    for _ in 0..200 {
        m.mutate(|mc, _| {
            for _ in 0..100 {
                GcArray::new(mc, 1000, 0u64);
            }
        });
    }
    assert_eq!(
        heap.metrics()
            .u64("/gccore/gc/limiter/enabled-count:events"),
        Some(0),
        "the limiter never turned on"
    );
}

/// An arena smaller than the heap's first trigger (4 MiB at GOGC=100) filled with garbage:
/// `OutOfMemory` starts a cycle, so a mutator that leaves its scope and retries, as the error
/// asks, gets its memory back without calling `collect()` (no cycle was ever due before, so
/// every retry failed for ever). Every setting; verify mode checks the heap the cycles leave.
#[test]
fn out_of_memory_starts_a_cycle_that_frees_the_garbage() {
    for (concurrent, verify) in [(true, false), (true, true), (false, false)] {
        let heap = Heap::new(
            Config::default()
                .arena_bytes(2 << 20)
                .concurrent(concurrent)
                .verify(verify),
        )
        .unwrap();
        let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        let (mut ok, mut refused, mut in_a_row) = (0u32, 0u32, 0u32);
        let start = std::time::Instant::now();
        while ok < 2000 {
            match m.mutate(|mc, _| GcArray::try_new(mc, 1000, 0u64).map(|_| ())) {
                Ok(()) => {
                    ok += 1;
                    in_a_row = 0;
                }
                Err(e) => {
                    assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e:?}");
                    refused += 1;
                    in_a_row += 1;
                    assert!(
                        start.elapsed() < std::time::Duration::from_secs(30),
                        "concurrent {concurrent} verify {verify}: {ok} allocations, then \
                         {in_a_row} refusals in a row: the garbage was never freed"
                    );
                    std::thread::yield_now();
                }
            }
        }
        // 2 000 arrays of 8 KB are 16 MB through a 2 MiB arena: cycles ran and freed them.
        let cycles = heap.stats().gc_cycles;
        assert!(
            cycles > 0,
            "concurrent {concurrent} verify {verify}: {refused} refusals, no cycle"
        );
    }
}
