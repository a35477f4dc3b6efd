//! The heap verifier runs after every cycle of a verify-mode heap, in every collector mode: a
//! write into a freed slot (poison overwritten) aborts the process with the verifier's report,
//! with concurrent and stop-the-world marking, in spans of objects that hold pointers and of
//! objects that do not. (The verifier's own unit tests call it directly; these check that verify
//! mode calls it.)

use std::time::Duration;

use gc_core::{Config, Gc, GcCell, GcVec, Heap, Mutator, Rootable, Trace};

mod common;
use common::run_child;

#[derive(Trace)]
struct Node<'gc> {
    next: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    #[gc(skip)]
    pad: [u64; 3],
}

/// The modes, by the environment variable that runs each child: (variable, concurrent, the
/// freed object holds pointers).
const CHILDREN: [(&str, bool, bool); 4] = [
    ("GCCORE_VERIFIER_CHILD_CONCURRENT_SCAN", true, true),
    ("GCCORE_VERIFIER_CHILD_CONCURRENT_NOSCAN", true, false),
    ("GCCORE_VERIFIER_CHILD_STW_SCAN", false, true),
    ("GCCORE_VERIFIER_CHILD_STW_NOSCAN", false, false),
];

/// In the child: free one object among live neighbours of its type (so that its span stays in
/// use), write into its slot, collect again. Exits with status 3 if the verifier said nothing.
fn write_after_free(concurrent: bool, scan: bool) {
    let heap = Heap::new(Config::default().verify(true).concurrent(concurrent)).unwrap();
    type Root = Rootable!['gc => (GcVec<'gc, Option<Gc<'gc, Node<'gc>>>>, GcVec<'gc, Option<Gc<'gc, [u64; 4]>>>)];
    let mut m: Mutator<Root> = heap.mutator(|mc| (GcVec::new(mc), GcVec::new(mc)));
    let freed = m.mutate(|mc, (nodes, words)| {
        let mut freed = 0usize;
        for i in 0..64 {
            let n = Gc::new(
                mc,
                Node {
                    next: GcCell::new(None),
                    pad: [i; 3],
                },
            );
            let w = Gc::new(mc, [i; 4]);
            if i == 31 {
                // Garbage from the start: freed by the next cycle.
                freed = if scan {
                    n.as_ptr() as usize
                } else {
                    w.as_ptr() as usize
                };
            } else {
                nodes.push(mc, Some(n));
                words.push(mc, Some(w));
            }
        }
        freed
    });
    m.collect();
    m.collect();
    // SAFETY: deliberately not safe for the program, which is the point: the slot lies in a
    // span still in use (its neighbours are reachable), so the memory is the arena's and
    // mapped; the object there was freed, and writing into it is the bug the verifier reports.
    unsafe { std::ptr::write_volatile((freed + 8) as *mut u64, 0x1234_5678) };
    m.collect();
    eprintln!("the verifier did not report the write into a freed slot");
    std::process::exit(3);
}

#[test]
fn verify_mode_reports_a_write_into_a_freed_slot_in_every_mode() {
    for (var, concurrent, scan) in CHILDREN {
        if std::env::var_os(var).is_some() {
            write_after_free(concurrent, scan);
            return;
        }
    }
    for (var, concurrent, scan) in CHILDREN {
        let end = run_child(
            "verify_mode_reports_a_write_into_a_freed_slot_in_every_mode",
            var,
            Duration::from_secs(60),
        );
        let what = format!("concurrent {concurrent}, pointers {scan}");
        assert_eq!(
            end.signal,
            Some(6),
            "{what}: expected an abort, got code {:?}; stderr:\n{}",
            end.code,
            end.stderr
        );
        assert!(
            end.stderr.contains("heap verification failed") && end.stderr.contains("free slot"),
            "{what}: the report does not say what happened:\n{}",
            end.stderr
        );
    }
}
