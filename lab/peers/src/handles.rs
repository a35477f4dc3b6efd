//! The peers whose `Gc` is a handle usable anywhere, with no mutation scope (dumpster, rust-gc):
//! one implementation of [`Peer`](crate::Peer), written as a macro over the collector's `Gc`
//! type, its mutable cell type and its derives, since the two crates differ in nothing else
//! the workloads touch.

/// Defines `$peer`, a [`Peer`](crate::Peer) on the collector whose handle is `$gc` and whose
/// cell is `$cell`, with nodes deriving `$derive`s.
macro_rules! handle_peer {
    ($peer:ident, $gc:ident, $cell:ident, [$($derive:ident),*]) => {
        #[derive($($derive),*)]
        struct Pair {
            left: Option<$gc<Pair>>,
            right: Option<$gc<Pair>>,
        }

        #[derive($($derive),*)]
        struct Node {
            left: $cell<Option<$gc<Node>>>,
            right: $cell<Option<$gc<Node>>>,
            i: i32,
            j: i32,
        }

        #[derive($($derive),*)]
        struct Churn {
            left: Option<$gc<Churn>>,
            right: Option<$gc<Churn>>,
            a: u64,
            b: u64,
        }

        #[derive(Default)]
        pub struct $peer {
            pairs: Option<$gc<Pair>>,
            boehm: Option<$gc<Node>>,
            array: Option<$gc<Vec<f64>>>,
        }

        fn churn_tree(depth: u32, seed: u64) -> $gc<Churn> {
            let (left, right) = if depth == 0 {
                (None, None)
            } else {
                (
                    Some(churn_tree(depth - 1, seed.wrapping_mul(3))),
                    Some(churn_tree(depth - 1, seed.wrapping_mul(5))),
                )
            };
            $gc::new(Churn {
                left,
                right,
                a: seed,
                b: depth as u64,
            })
        }

        fn pairs(d: u32) -> $gc<Pair> {
            let (left, right) = if d == 0 {
                (None, None)
            } else {
                (Some(pairs(d - 1)), Some(pairs(d - 1)))
            };
            $gc::new(Pair { left, right })
        }

        fn count_pairs(t: &Pair) -> u64 {
            1 + t.left.as_ref().map_or(0, |c| count_pairs(c))
                + t.right.as_ref().map_or(0, |c| count_pairs(c))
        }

        fn empty() -> $gc<Node> {
            $gc::new(Node {
                left: $cell::new(None),
                right: $cell::new(None),
                i: 0,
                j: 0,
            })
        }

        /// GCBench's top-down construction: children allocated empty, stored, then filled
        /// through the parent (no second handle: dropping one would make dumpster record the
        /// node as a cycle candidate, and rust-gc root and unroot it).
        fn populate(d: u32, n: &Node) {
            if d == 0 {
                return;
            }
            *n.left.borrow_mut() = Some(empty());
            *n.right.borrow_mut() = Some(empty());
            for child in [&n.left, &n.right] {
                populate(d - 1, child.borrow().as_ref().expect("just stored"));
            }
        }

        fn make_tree(d: u32) -> $gc<Node> {
            if d == 0 {
                return empty();
            }
            $gc::new(Node {
                left: $cell::new(Some(make_tree(d - 1))),
                right: $cell::new(Some(make_tree(d - 1))),
                i: 0,
                j: 0,
            })
        }

        fn count_nodes(t: &Node) -> u64 {
            1 + t.left.borrow().as_ref().map_or(0, |c| count_nodes(c))
                + t.right.borrow().as_ref().map_or(0, |c| count_nodes(c))
        }

        impl $crate::Peer for $peer {
            fn pairs(&mut self, d: u32, n: u64) -> u64 {
                (0..n).map(|_| count_pairs(&pairs(d))).sum()
            }

            fn keep_pairs(&mut self, d: u32) {
                self.pairs = Some(pairs(d));
            }

            fn check_kept_pairs(&mut self) -> u64 {
                self.pairs.as_ref().map_or(0, |t| count_pairs(t))
            }

            fn boehm_top_down(&mut self, d: u32, n: u64) {
                for _ in 0..n {
                    let t = empty();
                    populate(d, &t);
                    std::hint::black_box(t);
                }
            }

            fn boehm_bottom_up(&mut self, d: u32, n: u64) {
                for _ in 0..n {
                    std::hint::black_box(make_tree(d));
                }
            }

            fn keep_boehm(&mut self, d: u32, len: usize) {
                let t = empty();
                populate(d, &t);
                self.boehm = Some(t);
                self.array = Some($gc::new(
                    (0..len)
                        .map(|i| if i == 0 { 0.0 } else { 1.0 / i as f64 })
                        .collect(),
                ));
            }

            fn check_kept_boehm(&mut self, probe: usize) -> (u64, f64) {
                (
                    self.boehm.as_ref().map_or(0, |t| count_nodes(t)),
                    self.array.as_ref().map_or(f64::NAN, |a| a[probe]),
                )
            }

            fn msgbuf(
                &mut self,
                window: usize,
                pushes: usize,
                lat: &mut hdrhistogram::Histogram<u64>,
            ) -> u64 {
                let mut win: Vec<Option<$gc<[u8; $crate::MSG_BYTES]>>> =
                    (0..window).map(|_| None).collect();
                let mut buf = [0u8; $crate::MSG_BYTES];
                let mut last = std::time::Instant::now();
                for i in 0..pushes {
                    $crate::message(&mut buf, i);
                    win[i % window] = Some($gc::new(buf));
                    let now = std::time::Instant::now();
                    lat.record((now - last).as_nanos() as u64)
                .expect("the histogram grows to any value");
                    last = now;
                }
                win.iter().flatten().map(|b| b[0] as u64).sum()
            }

            fn treechurn(
                &mut self,
                trees: usize,
                ops: usize,
                lat: &mut hdrhistogram::Histogram<u64>,
            ) -> u64 {
                use rand::Rng;
                let mut v: Vec<$gc<Churn>> = (0..trees)
                    .map(|k| churn_tree($crate::CHURN_DEPTH, k as u64))
                    .collect();
                let mut rng = $crate::churn_rng();
                for op in 0..ops {
                    let i = rng.gen_range(0..trees);
                    let t0 = std::time::Instant::now();
                    v[i] = churn_tree($crate::CHURN_DEPTH, op as u64);
                    lat.record(t0.elapsed().as_nanos() as u64)
                .expect("the histogram grows to any value");
                }
                v.iter().map(|n| n.a ^ n.b).sum()
            }

            fn cycles(&self) -> Option<u64> {
                None
            }
        }
    };
}

pub(crate) use handle_peer;
