// A field cannot be both skipped (not traced) and recursive (traced without asking its type).
use gc_core::Trace;

#[derive(Trace)]
struct Node {
    #[gc(skip, recursive)]
    kids: Vec<Node>,
}

#[derive(Trace)]
struct Other {
    #[gc(recursve)]
    kids: Vec<Other>,
}

fn main() {}
