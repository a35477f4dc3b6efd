//! `#[derive(Trace)]`: what it accepts and the `NEEDS_TRACE` it computes (positive tests, which
//! need only the trait), and what it rejects (the trybuild cases in `tests/ui/`, run by `compile_fail.rs`).

#![allow(dead_code)] // the derived types exist for their impls

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;

use gc_core::{Gc, Trace};

/// `T::NEEDS_TRACE`, through a function so the value is checked at run time like any other.
fn needs_trace<T: Trace + ?Sized>() -> bool {
    T::NEEDS_TRACE
}

// ---- named structs ----

#[derive(Trace)]
struct Plain {
    a: u32,
    s: String,
}

#[derive(Trace)]
struct Linked<'gc> {
    value: u64,
    next: Option<Gc<'gc, Linked<'gc>>>,
}

// ---- unsized tails ----

/// A `?Sized` parameter as the last field: `offset_of!` cannot name its fields, so the type
/// is traced by its `trace` (no pointer words).
#[derive(Trace)]
struct Tail<'gc, T: ?Sized> {
    head: Gc<'gc, u64>,
    t: T,
}

/// A slice as the last field.
#[derive(Trace)]
struct SliceTail<'gc> {
    head: Gc<'gc, u64>,
    tail: [Option<Gc<'gc, u64>>],
}

/// `str` as the last field.
#[derive(Trace)]
struct StrTail {
    n: u32,
    s: str,
}

/// A `?Sized` parameter in a where clause with another predicate.
#[derive(Trace)]
struct UnsizedWhere2<A, T>
where
    A: Clone,
    T: ?Sized,
{
    a: A,
    t: T,
}

/// A slice of the type itself, behind an `Option`.
#[derive(Trace)]
struct SliceKids<'gc> {
    kids: Option<Box<[Self]>>,
    g: Option<Gc<'gc, u8>>,
}

#[test]
fn types_with_an_unsized_tail_derive() {
    assert!(!needs_trace::<StrTail>());
    assert!(!needs_trace::<UnsizedWhere2<u8, [u64]>>());
    assert!(needs_trace::<SliceKids<'static>>());
    assert_eq!(<SliceKids<'static> as Trace>::POINTER_WORDS, None);
    assert!(needs_trace::<Tail<'static, [u64]>>());
    assert!(needs_trace::<Tail<'static, u64>>());
    assert!(needs_trace::<SliceTail<'static>>());
    assert_eq!(<Tail<'static, u64> as Trace>::POINTER_WORDS, None);
    assert_eq!(<Tail<'static, [u8]> as Trace>::POINTER_WORDS, None);
    assert_eq!(<SliceTail<'static> as Trace>::POINTER_WORDS, None);
}

// ---- tuple structs ----

#[derive(Trace)]
struct PlainTuple(u8, String, (u32, bool));

#[derive(Trace)]
struct PairTuple<'gc>(u32, Gc<'gc, u32>);

// ---- unit struct ----

#[derive(Trace)]
struct Marker;

// ---- enums ----

#[derive(Trace)]
enum Value<'gc> {
    Nil,
    Int(i64),
    Str(String),
    Cons {
        car: Gc<'gc, Value<'gc>>,
        cdr: Gc<'gc, Value<'gc>>,
    },
}

#[derive(Trace)]
enum Token {
    Eof,
    Num(u64),
    Ident { name: String },
}

#[derive(Trace)]
enum Never {}

// ---- generics ----

#[derive(Trace)]
struct Wrapper<'gc, T>
where
    T: Clone,
{
    items: Vec<T>,
    extra: Option<Gc<'gc, u32>>,
}

#[derive(Trace)]
struct Boxed<T> {
    inner: Box<T>,
    marker: PhantomData<T>,
}

#[derive(Trace)]
struct Fixed<T, const N: usize> {
    items: [T; N],
}

// ---- #[gc(skip)] ----

#[derive(Trace)]
struct Counted {
    #[gc(skip)]
    counter: AtomicU64,
}

#[derive(Trace)]
struct CountedNode<'gc> {
    #[gc(skip)]
    counter: AtomicU64,
    next: Option<Gc<'gc, CountedNode<'gc>>>,
}

#[derive(Trace)]
enum MaybeCounted<'gc> {
    Counter(#[gc(skip)] AtomicU64),
    Node(Gc<'gc, u32>),
}

// ---- #[gc(unsafe_drop)] ----

#[derive(Trace)]
#[gc(unsafe_drop)]
struct Guard<'gc> {
    target: Gc<'gc, u32>,
    #[gc(skip)]
    drops: AtomicU64,
}

// SAFETY: `Guard::drop` never dereferences `target`: it only counts its drops.
unsafe impl gc_core::UnsafeDrop for Guard<'_> {}

impl Drop for Guard<'_> {
    // Never dereferences `target`: that is the `unsafe_drop` promise.
    fn drop(&mut self) {
        *self.drops.get_mut() += 1;
    }
}

#[derive(Trace)]
#[gc(unsafe_drop)]
struct PlainWithDrop {
    name: String,
}

// SAFETY: no GC handle at all.
unsafe impl gc_core::UnsafeDrop for PlainWithDrop {}

impl Drop for PlainWithDrop {
    fn drop(&mut self) {}
}

/// The derived impls hold for every `'gc`, not only `'static` (no skipped field mentions `'gc`).
fn needs_trace_in_scope<'gc>(_: Option<Gc<'gc, u32>>) -> [bool; 4] {
    [
        needs_trace::<Linked<'gc>>(),
        needs_trace::<CountedNode<'gc>>(),
        needs_trace::<MaybeCounted<'gc>>(),
        needs_trace::<Guard<'gc>>(),
    ]
}

#[test]
fn named_struct() {
    assert!(!needs_trace::<Plain>(), "only u32/String fields: noscan");
    assert!(needs_trace::<Linked<'static>>());
}

#[test]
fn tuple_struct() {
    assert!(!needs_trace::<PlainTuple>());
    assert!(needs_trace::<PairTuple<'static>>());
}

#[test]
fn unit_struct() {
    assert!(!needs_trace::<Marker>());
}

#[test]
fn enum_with_data() {
    assert!(needs_trace::<Value<'static>>());
    assert!(!needs_trace::<Token>());
    assert!(!needs_trace::<Never>());
}

#[test]
fn generic_struct() {
    // `extra` may hold a Gc whatever T is.
    assert!(needs_trace::<Wrapper<'static, u32>>());
    // Otherwise it follows the type argument.
    assert!(!needs_trace::<Boxed<String>>());
    assert!(needs_trace::<Boxed<Gc<'static, u32>>>());
    assert!(!needs_trace::<Fixed<u8, 4>>());
    assert!(needs_trace::<Fixed<Option<Gc<'static, u32>>, 2>>());
}

#[test]
fn skipped_fields() {
    assert!(!needs_trace::<Counted>(), "a skipped-only struct is noscan");
    assert!(needs_trace::<CountedNode<'static>>());
    assert!(needs_trace::<MaybeCounted<'static>>());
}

#[test]
fn unsafe_drop() {
    assert!(needs_trace::<Guard<'static>>());
    assert!(!needs_trace::<PlainWithDrop>());
}

#[test]
fn any_lifetime() {
    assert_eq!(needs_trace_in_scope(None), [true; 4]);
}

// ---- types that hold themselves outside a `Gc` (an AST, a JSON value) ----

/// An interpreter's syntax tree: its `Gc` leaves are reached only through `Box`es and `Vec`s
/// of the type itself.
#[derive(Trace)]
enum Expr<'gc> {
    Lit(Gc<'gc, u64>),
    Add(Box<Expr<'gc>>, Box<Self>),
    Sum(Vec<Expr<'gc>>),
}

/// No `Gc` at any depth: noscan, however deep.
#[derive(Trace)]
enum Json {
    Null,
    Num(f64),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// Both kinds of self-reference: through a `Gc` (pointer words kept) and through a `Vec`.
#[derive(Trace)]
struct Rose<'gc> {
    kids: Vec<Rose<'gc>>,
    next: Option<Gc<'gc, Rose<'gc>>>,
}

/// Every shape the derive reads through, in a type with no `Gc` (noscan) and one with a `Gc`.
#[derive(Trace)]
struct Shapes {
    a: Box<Shapes>,
    b: Vec<Self>,
    c: std::collections::VecDeque<Shapes>,
    d: Box<[Shapes]>,
    e: Option<Box<Shapes>>,
    f: Option<Vec<Shapes>>,
    g: Vec<(String, Shapes)>,
    h: std::collections::HashMap<String, Shapes>,
    i: std::collections::BTreeMap<u32, Shapes>,
    j: Vec<Vec<Shapes>>,
    #[allow(clippy::vec_box)]
    k: Vec<Box<Self>>,
    l: Vec<Option<Box<Shapes>>>,
    m: std::collections::BTreeSet<Shapes>,
    n: std::collections::HashSet<Shapes>,
}

#[derive(Trace)]
struct ShapesWithGc<'gc> {
    h: std::collections::HashMap<String, ShapesWithGc<'gc>>,
    g: Vec<(Gc<'gc, u8>, Self)>,
}

#[derive(Trace)]
struct KeyedByGc<'gc> {
    map: std::collections::BTreeMap<Gc<'gc, u8>, Self>,
}

/// A JSON-like object whose only handles are the keys of a hash map holding itself.
#[derive(Trace)]
struct StrKeyed<'gc> {
    fields: std::collections::HashMap<gc_core::GcStr<'gc>, Self>,
}

#[test]
fn types_holding_themselves_outside_a_gc_derive() {
    assert!(!needs_trace::<Shapes>());
    // Through the key of a pair, or of a map: the `Gc` is in what is not the type itself.
    assert!(needs_trace::<ShapesWithGc<'static>>());
    assert!(needs_trace::<KeyedByGc<'static>>());
    assert!(needs_trace::<StrKeyed<'static>>());
    assert!(needs_trace::<Expr<'static>>());
    assert!(!needs_trace::<Json>());
    assert!(needs_trace::<Rose<'static>>());
    // A field holding the type through a `Vec` is traced by `trace`; through a `Gc` only, the
    // marker reads the pointer word.
    assert_eq!(<Rose<'static> as Trace>::POINTER_WORDS, None);
    assert_eq!(<Linked<'static> as Trace>::POINTER_WORDS, Some(1 << 1));
}

/// The leaves of a syntax tree held in one object, reached only through `Box`es and `Vec`s,
/// survive collections in verify mode (a freed leaf would be poisoned and the verifier would
/// report it); dropped, the tree's leaves are reclaimed.
#[test]
fn a_syntax_tree_keeps_its_leaves_alive_through_its_boxes() {
    use gc_core::{Config, GcCell, Heap, Mutator, Rootable};
    fn build<'gc>(mc: &gc_core::Mutation<'gc>, depth: u32, next: &mut u64) -> Expr<'gc> {
        if depth == 0 {
            *next += 1;
            return Expr::Lit(Gc::new(mc, *next));
        }
        let sum = Expr::Sum((0..2).map(|_| build(mc, depth - 1, next)).collect());
        Expr::Add(Box::new(build(mc, depth - 1, next)), Box::new(sum))
    }
    fn total(e: &Expr<'_>) -> (u64, u64) {
        match e {
            Expr::Lit(g) => (**g, 1),
            Expr::Add(a, b) => {
                let (x, m) = total(a);
                let (y, n) = total(b);
                (x + y, m + n)
            }
            Expr::Sum(v) => v
                .iter()
                .map(total)
                .fold((0, 0), |(x, m), (y, n)| (x + y, m + n)),
        }
    }
    let heap = Heap::new(Config::default().verify(true)).unwrap();
    type Tree = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Expr<'gc>>>>];
    let mut m: Mutator<Tree> = heap.mutator(|_| GcCell::new(None));
    let leaves = m.mutate(|mc, root| {
        let mut next = 0;
        root.set(mc, Some(Gc::new(mc, build(mc, 8, &mut next))));
        next
    });
    for _ in 0..3 {
        m.mutate(|mc, _| {
            for i in 0..50_000u64 {
                Gc::new(mc, i);
            }
        });
        m.collect();
    }
    let (sum, count) = m.mutate(|_, root| total(&root.get().unwrap()));
    assert_eq!(count, leaves);
    assert_eq!(sum, leaves * (leaves + 1) / 2);
    let live = heap.stats().live_objects();
    m.mutate(|mc, root| root.set(mc, None));
    m.collect();
    assert!(
        heap.stats().live_objects() + leaves <= live + 1,
        "{} live after dropping the tree of {leaves} leaves, {live} before",
        heap.stats().live_objects()
    );
}

/// A type of the user's own named like a standard cell, a field of an associated type, and
/// deprecated fields and variants all derive (the last without warnings: this file is built
/// with clippy's `-D warnings`).
mod accepted {
    use gc_core::{Gc, Trace};

    #[derive(Trace)]
    pub struct Cell<'gc> {
        pub car: Gc<'gc, u64>,
    }

    #[derive(Trace)]
    pub struct Pair<'gc> {
        pub head: Cell<'gc>,
    }

    pub trait Family {
        type Repr;
    }

    #[derive(Trace)]
    pub struct Words;
    impl Family for Words {
        type Repr = Vec<u64>;
    }

    #[derive(Trace)]
    pub struct Node<'gc, F: Family> {
        pub payload: F::Repr,
        pub next: Option<Gc<'gc, u8>>,
    }

    /// An associated type inside an array and inside a tuple.
    #[derive(Trace)]
    pub struct InArray<'gc, F: Family> {
        pub a: [F::Repr; 2],
        pub n: Option<Gc<'gc, u8>>,
    }

    #[derive(Trace)]
    pub struct InTuple<F: Family> {
        pub t: (u8, F::Repr),
    }

    #[derive(Trace)]
    pub struct Old {
        #[deprecated]
        pub old: u32,
        pub n: u64,
    }

    #[derive(Trace)]
    pub enum Versioned<'gc> {
        Now(Gc<'gc, u8>),
        #[deprecated]
        Then {
            x: u32,
        },
    }
}

#[test]
fn types_the_derive_once_refused() {
    assert!(needs_trace::<accepted::Pair<'static>>());
    assert!(needs_trace::<accepted::Node<'static, accepted::Words>>());
    assert!(needs_trace::<accepted::InArray<'static, accepted::Words>>());
    assert!(!needs_trace::<accepted::InTuple<accepted::Words>>());
    assert!(needs_trace::<accepted::Versioned<'static>>());
    assert!(!needs_trace::<accepted::Old>());
}

/// A type that holds itself through a container of the user's own, whose traced type depends on
/// its parameter through a trait (with `()` it would be a number, with the type itself a `Gc`):
/// the derive leaves such a field to its own `NEEDS_TRACE`, which the compiler works out
/// exactly (the type needs tracing), instead of reading it with the type as `()`.
mod picked {
    use gc_core::{Gc, Trace};

    pub trait Pick {
        type Out;
    }
    impl Pick for () {
        type Out = u32;
    }
    impl<'gc> Pick for Node<'gc> {
        type Out = Gc<'gc, u32>;
    }

    #[derive(Trace)]
    pub struct Holder<T: Pick + Trace> {
        pub x: T::Out,
    }

    #[derive(Trace)]
    pub struct Node<'gc> {
        pub h: Holder<Node<'gc>>,
    }
}

#[test]
fn a_container_of_ones_own_is_read_as_it_is() {
    assert!(needs_trace::<picked::Node<'static>>());
    assert!(!needs_trace::<picked::Holder<()>>());
}

// ---- shapes the derive does not read through: the type counts as traced ----

/// A type holding itself in shapes other than the fourteen containers: arrays, `Result`,
/// tuples, a `GcRefCell` of a vector. Before, each was a cycle error.
#[derive(Trace)]
struct Odd<'gc> {
    pair: [Option<Box<Self>>; 2],
    res: Result<Box<Odd<'gc>>, String>,
    tup: (u8, Option<Box<Self>>),
    cell: gc_core::GcRefCell<'gc, Vec<Self>>,
    leaf: Option<Gc<'gc, u64>>,
}

/// Its only `Gc` is in the field that holds the type itself: noscan, it would be freed.
#[derive(Trace)]
struct ErrLeaf<'gc> {
    r: Result<Box<Self>, Gc<'gc, u64>>,
}

/// Another instance of the type outside a `Gc` (was a compile-fail case: a cycle).
#[derive(Trace)]
enum Poly<'gc, T> {
    Leaf(T),
    Wrap(Box<Poly<'gc, Gc<'gc, u64>>>),
}

/// No `Gc` anywhere, held through an array of boxes: traced all the same (the cost of not
/// asking for its own constants).
#[derive(Trace)]
struct PlainTree {
    kids: [Option<Box<PlainTree>>; 2],
    n: u64,
}

#[test]
fn types_holding_themselves_in_other_shapes_count_as_traced() {
    assert!(needs_trace::<Odd<'static>>());
    assert_eq!(<Odd<'static> as Trace>::POINTER_WORDS, None);
    assert!(needs_trace::<Poly<'static, u64>>());
    assert!(needs_trace::<PlainTree>());
    assert!(needs_trace::<ErrLeaf<'static>>());
}

/// The `Gc`s of an `Odd` reached only through its arrays, results, tuples and cell survive
/// collections in verify mode (a freed one would be poisoned, and the verifier reports it), and
/// are reclaimed once the `Odd` is dropped.
#[test]
fn gcs_held_in_those_shapes_stay_alive_and_are_reclaimed() {
    use gc_core::{Config, GcCell, GcRefCell, Heap, Mutator, Rootable};
    fn odd<'gc>(leaf: Option<Gc<'gc, u64>>) -> Odd<'gc> {
        Odd {
            pair: [None, None],
            res: Err(String::new()),
            tup: (0, None),
            cell: GcRefCell::new(Vec::new()),
            leaf,
        }
    }
    fn sum(o: &Odd<'_>) -> u64 {
        let mut s = o.leaf.map_or(0, |g| *g);
        s += o.pair.iter().flatten().map(|b| sum(b)).sum::<u64>();
        if let Ok(b) = &o.res {
            s += sum(b);
        }
        s += o.tup.1.as_deref().map_or(0, sum);
        s += o.cell.borrow().iter().map(sum).sum::<u64>();
        s
    }
    fn err_leaf(e: &ErrLeaf<'_>) -> u64 {
        match &e.r {
            Ok(b) => err_leaf(b),
            Err(g) => **g,
        }
    }
    type R = Rootable!['gc => (
        GcCell<'gc, Option<Gc<'gc, Odd<'gc>>>>,
        GcCell<'gc, Option<Gc<'gc, ErrLeaf<'gc>>>>,
    )];
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|_| (GcCell::new(None), GcCell::new(None)));
        m.mutate(|mc, (root, errs)| {
            let inner = ErrLeaf {
                r: Err(Gc::new(mc, 64)),
            };
            errs.set(
                mc,
                Some(Gc::new(
                    mc,
                    ErrLeaf {
                        r: Ok(Box::new(inner)),
                    },
                )),
            );
            let mut o = odd(Some(Gc::new(mc, 1)));
            o.pair[1] = Some(Box::new(odd(Some(Gc::new(mc, 2)))));
            o.res = Ok(Box::new(odd(Some(Gc::new(mc, 4)))));
            o.tup.1 = Some(Box::new(odd(Some(Gc::new(mc, 8)))));
            o.cell = GcRefCell::new(vec![odd(Some(Gc::new(mc, 16))), odd(Some(Gc::new(mc, 32)))]);
            root.set(mc, Some(Gc::new(mc, o)));
            // Garbage beside it.
            for i in 0..1000 {
                Gc::new(mc, i as u64);
            }
        });
        for _ in 0..3 {
            m.collect();
            m.mutate(|mc, (root, errs)| {
                assert_eq!(sum(&root.get().unwrap()), 63, "verify={verify}");
                assert_eq!(err_leaf(&errs.get().unwrap()), 64, "verify={verify}");
                for i in 0..1000 {
                    Gc::new(mc, i as u64);
                }
            });
        }
        let freed = heap.stats().objects_freed;
        assert!(freed >= 2000, "verify={verify}: {freed} objects freed");
        m.mutate(|mc, (root, errs)| {
            root.set(mc, None);
            errs.set(mc, None);
        });
        m.collect();
        m.collect();
        assert_eq!(heap.stats().marked_objects, 0, "verify={verify}");
    }
}

// ---- `#[gc(recursive)]`: types that hold each other, or themselves behind an alias ----

/// An interpreter's syntax tree: blocks, statements and expressions hold each other outside a
/// `Gc` (`Box`, `Vec`, by value). Without the attribute on a field of the cycle, each type's
/// `NEEDS_TRACE` asks for the next one's: the compiler's cycle error. A block's statements are
/// its only `Gc`s.
#[derive(Trace)]
struct Block<'gc> {
    #[gc(recursive)]
    stmts: Vec<Stmt2<'gc>>,
    line: u32,
}

#[derive(Trace)]
enum Expr2<'gc> {
    Lit(Gc<'gc, u64>),
    Block(Box<Block<'gc>>),
    Neg(Box<Self>),
}

#[derive(Trace)]
enum Stmt2<'gc> {
    Expr(Box<Expr2<'gc>>),
    Print(Expr2<'gc>),
    Let(Gc<'gc, u64>, Option<Box<Expr2<'gc>>>),
}

type Kids<'gc> = Vec<Aliased<'gc>>;

/// The type itself behind an alias the derive cannot read.
#[derive(Trace)]
struct Aliased<'gc> {
    #[gc(recursive)]
    kids: Kids<'gc>,
    leaf: Option<Gc<'gc, u64>>,
}

/// No `Gc` anywhere: traced all the same (what the attribute costs).
#[derive(Trace)]
struct PlainRecursive {
    #[gc(recursive)]
    items: Vec<PlainRecursive>,
    n: u64,
}

#[test]
fn types_with_a_recursive_field_count_as_traced() {
    assert!(needs_trace::<Block<'static>>());
    assert_eq!(<Block<'static> as Trace>::POINTER_WORDS, None);
    assert!(needs_trace::<Expr2<'static>>());
    assert!(needs_trace::<Stmt2<'static>>());
    assert!(needs_trace::<Aliased<'static>>());
    assert_eq!(<Aliased<'static> as Trace>::POINTER_WORDS, None);
    assert!(needs_trace::<PlainRecursive>());
    assert_eq!(<PlainRecursive as Trace>::POINTER_WORDS, None);
    assert!(needs_trace::<Stmt3<'static>>());
    assert!(needs_trace::<Decl3<'static>>());
}

/// A recursive field in an enum variant (statements as an enum, declarations holding them).
#[derive(Trace)]
enum Stmt3<'gc> {
    Print(Gc<'gc, u64>),
    Block(#[gc(recursive)] Vec<Decl3<'gc>>),
}

#[derive(Trace)]
struct Decl3<'gc> {
    body: Box<Stmt3<'gc>>,
}

/// The `Gc`s of a syntax tree reached only through the recursive fields (a block's statements,
/// an alias's vector) survive collections in verify mode and out of it (a freed one would be
/// poisoned, and the verifier reports it), and are reclaimed once the tree is dropped.
#[test]
fn gcs_reached_through_recursive_fields_stay_alive_and_are_reclaimed() {
    use gc_core::{Config, GcCell, Heap, Mutator, Rootable};
    fn block_sum(b: &Block<'_>) -> u64 {
        b.stmts.iter().map(stmt_sum).sum()
    }
    fn expr_sum(e: &Expr2<'_>) -> u64 {
        match e {
            Expr2::Lit(g) => **g,
            Expr2::Block(b) => block_sum(b),
            Expr2::Neg(e) => expr_sum(e),
        }
    }
    fn stmt_sum(s: &Stmt2<'_>) -> u64 {
        match s {
            Stmt2::Expr(e) => expr_sum(e),
            Stmt2::Print(e) => expr_sum(e),
            Stmt2::Let(g, e) => **g + e.as_deref().map_or(0, expr_sum),
        }
    }
    fn aliased_sum(a: &Aliased<'_>) -> u64 {
        a.leaf.map_or(0, |g| *g) + a.kids.iter().map(aliased_sum).sum::<u64>()
    }
    type R = Rootable!['gc => (
        GcCell<'gc, Option<Gc<'gc, Block<'gc>>>>,
        GcCell<'gc, Option<Gc<'gc, Aliased<'gc>>>>,
    )];
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|_| (GcCell::new(None), GcCell::new(None)));
        m.mutate(|mc, (program, tree)| {
            let lit = |n: u64| Expr2::Lit(Gc::new(mc, n));
            // { print 1; { let 2 = -4; 8; } }
            let inner = Block {
                stmts: vec![
                    Stmt2::Let(Gc::new(mc, 2), Some(Box::new(Expr2::Neg(Box::new(lit(4)))))),
                    Stmt2::Expr(Box::new(lit(8))),
                ],
                line: 2,
            };
            let outer = Block {
                stmts: vec![
                    Stmt2::Print(lit(1)),
                    Stmt2::Print(Expr2::Block(Box::new(inner))),
                ],
                line: 1,
            };
            program.set(mc, Some(Gc::new(mc, outer)));
            let leaf = |n: u64| Aliased {
                kids: Vec::new(),
                leaf: Some(Gc::new(mc, n)),
            };
            let mid = Aliased {
                kids: vec![leaf(32), leaf(64)],
                leaf: None,
            };
            tree.set(
                mc,
                Some(Gc::new(
                    mc,
                    Aliased {
                        kids: vec![leaf(16), mid],
                        leaf: None,
                    },
                )),
            );
            for i in 0..1000 {
                Gc::new(mc, i as u64);
            }
        });
        for _ in 0..3 {
            m.collect();
            m.mutate(|mc, (program, tree)| {
                assert_eq!(block_sum(&program.get().unwrap()), 15, "verify={verify}");
                assert_eq!(aliased_sum(&tree.get().unwrap()), 112, "verify={verify}");
                for i in 0..1000 {
                    Gc::new(mc, i as u64);
                }
            });
        }
        let freed = heap.stats().objects_freed;
        assert!(freed >= 2000, "verify={verify}: {freed} objects freed");
        m.mutate(|mc, (program, tree)| {
            program.set(mc, None);
            tree.set(mc, None);
        });
        m.collect();
        m.collect();
        assert_eq!(heap.stats().marked_objects, 0, "verify={verify}");
    }
}
