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

        #[derive(Default)]
        pub struct $peer {
            pairs: Option<$gc<Pair>>,
            boehm: Option<$gc<Node>>,
            array: Option<$gc<Vec<f64>>>,
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

            fn cycles(&self) -> Option<u64> {
                None
            }
        }
    };
}

pub(crate) use handle_peer;
