//! Parallel stop-the-world marking (`Config::concurrent(false)`): several mark workers share a wide object graph (so work is split through the
//! global queue) and every reachable object survives, cycle after cycle, with verify mode on;
//! garbage in between is reclaimed.

use gc_core::{Config, Gc, GcArray, GcCell, Heap, Mutator, Rootable, Trace};

#[derive(Trace)]
struct Leaf<'gc> {
    id: u64,
    next: Option<Gc<'gc, Leaf<'gc>>>,
}

type RootM = Rootable!['gc => GcCell<'gc, Option<GcArray<'gc, Option<Gc<'gc, Leaf<'gc>>>>>>];

#[test]
fn workers_mark_a_wide_graph_completely() {
    const WIDTH: usize = if cfg!(miri) { 300 } else { 20_000 };
    for (workers, span) in [
        (1, false),
        (2, false),
        (4, false),
        (1, true),
        (2, true),
        (4, true),
    ] {
        let heap = Heap::new(
            Config::default()
                .verify(true)
                .span_marking(span)
                .concurrent(false)
                .mark_workers(workers),
        )
        .unwrap();
        let mut m: Mutator<RootM> = heap.mutator(|_| GcCell::new(None));
        m.mutate(|mc, root| {
            let arr = GcArray::new(mc, WIDTH, None);
            for i in 0..WIDTH {
                // Each slot: a chain of 3 leaves; plus one garbage leaf per slot.
                let mut chain = None;
                for k in 0..3 {
                    chain = Some(Gc::new(
                        mc,
                        Leaf {
                            id: (i * 3 + k) as u64,
                            next: chain,
                        },
                    ));
                }
                arr.set(mc, i, chain);
                Gc::new(
                    mc,
                    Leaf {
                        id: u64::MAX,
                        next: None,
                    },
                );
            }
            root.set(mc, Some(arr));
        });
        for round in 0..3 {
            m.collect();
            let s = heap.stats();
            assert_eq!(
                s.marked_objects,
                (WIDTH * 3 + 1) as u64,
                "workers {workers} round {round}"
            );
            if workers > 1 {
                assert!(s.mark_shared_batches > 0, "work was never shared: {s:?}");
            }
            let sum = m.mutate(|_, root| {
                let arr = root.get().unwrap();
                arr.iter()
                    .map(|c| {
                        let mut sum = 0;
                        let mut cur = c;
                        while let Some(l) = cur {
                            sum += l.id;
                            cur = l.next;
                        }
                        sum
                    })
                    .sum::<u64>()
            });
            let n = (WIDTH * 3) as u64;
            assert_eq!(sum, n * (n - 1) / 2);
        }
        assert!(heap.stats().objects_freed >= WIDTH as u64);
    }
}
