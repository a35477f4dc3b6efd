//! dumpster 1.2, its thread-local flavour (`dumpster::unsync`): reference counting frees a
//! tree as soon as its last `Gc` is dropped, and a cycle collector runs when its default
//! condition says so. Mutable fields are `RefCell`s, as dumpster's documentation shows.

use std::cell::RefCell;

use dumpster::Trace;
use dumpster::unsync::Gc;

crate::handles::handle_peer!(DumpsterPeer, Gc, RefCell, [Trace]);
