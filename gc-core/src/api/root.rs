//! Roots: the root object, the root stack, and the `Rootable` machinery that names their types.
//!
//! The collector's roots are exactly (`docs/design.md` §1):
//!
//! * each mutator's **root object** (`Root<'gc, R>`), the mutator's entry into the graph;
//! * each mutator's **root stack** ([`RootStack`]), unbarriered slots for an interpreter's
//!   operand stack;
//! * the heap-wide **stash** ([`Stash`](crate::Stash)), handles that keep objects alive across
//!   scopes and threads.
//!
//! Nothing else is a root: a `Gc` in a Rust local cannot outlive its mutation scope (the `'gc`
//! brand), and the collector only runs while the mutators it must wait for are outside one.
//!
//! # Naming a type that contains `'gc`
//!
//! A mutator keeps its root between scopes, when no `'gc` exists, so the root's type is named by
//! a `'static` marker type implementing [`Rootable`] for every `'gc`:
//!
//! ```
//! use gc_core::{Gc, GcCell, Rootable, Trace};
//! #[derive(Trace)]
//! struct MyRoot<'gc> {
//!     head: GcCell<'gc, Option<Gc<'gc, u64>>>,
//! }
//! type MyRootM = Rootable!['gc => MyRoot<'gc>];
//! ```
//!
//! (The marker is `dyn for<'gc> Rootable<'gc, Root = MyRoot<'gc>>` behind a phantom wrapper, the
//! technique gc-arena uses; it is `'static` while naming a type for each `'gc`.)

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use crate::gc::mark::tracer::Tracer;
use crate::gc::roots::RootSet;
use crate::gc::trace::Trace;

/// A `'static` marker naming a family of types `Root<'gc>`, one per `'gc`. Use the
/// [`Rootable!`](crate::Rootable!) macro rather than implementing it.
pub trait Rootable<'gc>: 'static {
    /// The type for this `'gc`.
    type Root: 'gc;
}

/// The type a [`Rootable`] marker names for `'gc`.
pub type Root<'gc, R> = <R as Rootable<'gc>>::Root;

#[doc(hidden)]
pub struct __DynRootable<T: ?Sized>(PhantomData<T>);

impl<'gc, T: ?Sized + Rootable<'gc>> Rootable<'gc> for __DynRootable<T> {
    type Root = <T as Rootable<'gc>>::Root;
}

/// Name a root type: `Rootable!['gc => MyRoot<'gc>]`.
#[macro_export]
macro_rules! Rootable {
    ($gc:lifetime => $root:ty) => {
        $crate::__DynRootable::<dyn for<$gc> $crate::Rootable<$gc, Root = $root>>
    };
}

/// The root-stack marker of a mutator that does not use its root stack.
pub type NoStack = Rootable!['gc => ()];

/// A mutator's root stack: a vector of traced values with **no write barrier**, for the
/// operand stack of an interpreter, where a barrier per push would be too costly.
///
/// It is reachable only through the `&RootStack` a mutation scope hands out, so only its own
/// mutator touches it, and only inside a scope. The collector scans it while the mutator is
/// outside its scope (at a safepoint), which is why it needs no barrier (stacks are scanned,
/// not barriered: `docs/design.md` §6). For the same reason a `RootStack` does not implement `Trace`: it can
/// never be stored inside a heap object, where the marker could read it during a push.
pub struct RootStack<'gc, T> {
    items: RefCell<Vec<T>>,
    _brand: PhantomData<Cell<&'gc ()>>,
}

impl<'gc, T> RootStack<'gc, T> {
    pub(crate) fn new() -> Self {
        RootStack {
            items: RefCell::new(Vec::new()),
            _brand: PhantomData,
        }
    }

    /// Push a value.
    #[inline]
    pub fn push(&self, v: T) {
        self.items.borrow_mut().push(v);
    }

    /// Pop the top value.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        self.items.borrow_mut().pop()
    }

    /// Number of values.
    #[inline]
    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// Whether the stack is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.borrow().is_empty()
    }

    /// Shorten the stack to `len` values.
    #[inline]
    pub fn truncate(&self, len: usize) {
        self.items.borrow_mut().truncate(len);
    }

    /// Run `f` with the stack's vector (for bulk operations). `f` must not call other methods
    /// of this stack (that would panic, as with `RefCell`), nor enter a
    /// [`Mutation::blocking`](crate::Mutation::blocking) region (that panics too: the collector
    /// may read the stack while the region runs).
    #[inline]
    pub fn with<U>(&self, f: impl FnOnce(&mut Vec<T>) -> U) -> U {
        f(&mut self.items.borrow_mut())
    }
}

impl<'gc, T: Copy> RootStack<'gc, T> {
    /// The value at `i` (0 is the bottom).
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        self.items.borrow().get(i).copied()
    }

    /// The top value.
    #[inline]
    pub fn last(&self) -> Option<T> {
        self.items.borrow().last().copied()
    }

    /// Overwrite the value at `i`; panics if `i >= len`.
    #[inline]
    pub fn set(&self, i: usize, v: T) {
        self.items.borrow_mut()[i] = v;
    }
}

impl<T: Trace> RootStack<'_, T> {
    /// Trace every value. Called by the collector while the owning mutator is at a safepoint.
    pub(crate) fn trace_items(&self, t: &mut Tracer) {
        let items = self
            .items
            .try_borrow()
            .unwrap_or_else(|_| bug!("root stack borrowed at a safepoint"));
        for v in items.iter() {
            v.trace(t);
        }
    }
}

/// A mutator's roots with their `'gc` erased, as stored between scopes.
pub(crate) struct RootsBox<R, S>
where
    R: for<'gc> Rootable<'gc>,
    S: for<'gc> Rootable<'gc>,
{
    pub root: Option<Root<'static, R>>,
    pub stack: RootStack<'static, Root<'static, S>>,
}

impl<R, S> RootSet for RootsBox<R, S>
where
    R: for<'gc> Rootable<'gc>,
    S: for<'gc> Rootable<'gc>,
    for<'gc> Root<'gc, R>: Trace + Sized,
    for<'gc> Root<'gc, S>: Trace + Sized,
{
    fn trace_roots(&self, t: &mut Tracer) {
        if let Some(r) = &self.root {
            r.trace(t);
        }
        self.stack.trace_items(t);
    }

    fn stack_in_use(&self) -> bool {
        self.stack.items.try_borrow_mut().is_err()
    }
}
