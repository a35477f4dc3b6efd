//! The VM and the collector together, through the library API: garbage a Lox program makes is
//! reclaimed, what it can still reach is not, interned strings are weak, and a running program
//! yields to a collection another thread asks for.
//!
//! The heaps run in verify mode (freed memory poisoned, the heap checked after every cycle), so
//! a live object freed by mistake aborts the test with a report rather than passing silently.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gc_core::{Config, Heap};
use lox::{LoxError, Options, Vm};

/// A `Write` whose bytes the test can read back.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

fn vm(heap: &Heap, options: Options) -> (Vm, Capture) {
    let out = Capture::default();
    (Vm::new(heap, options, Box::new(out.clone())), out)
}

fn verify_heap() -> Heap {
    Heap::new(Config::default().verify(true)).unwrap()
}

#[test]
fn garbage_instances_are_reclaimed_and_live_ones_kept() {
    let heap = verify_heap();
    let (mut vm, out) = vm(&heap, Options::default());
    vm.interpret(
        "class Node { init(next, n) { this.next = next; this.n = n; } }
         var keep = nil;
         var c = 0;
         for (var i = 0; i < 200000; i = i + 1) {
           var garbage = Node(nil, i);
           c = c + 1;
           if (c == 1000) { keep = Node(keep, i); c = 0; }
         }",
    )
    .unwrap();
    heap.collect();
    let s = heap.stats();
    assert!(s.gc_cycles >= 2, "{s:?}");
    // 200000 garbage nodes (each an instance plus its field array) were freed; what is left is
    // about 200 kept nodes plus the program's own objects.
    assert!(s.objects_freed >= 400_000, "{s:?}");
    assert!(s.live_objects() < 2_000, "{s:?}");
    // The kept list is intact after the collections.
    vm.interpret(
        "var sum = 0; var count = 0;
         while (keep != nil) { sum = sum + keep.n; count = count + 1; keep = keep.next; }
         print count; print sum == 20099800;",
    )
    .unwrap();
    // (999 + 1999 + … + 199999 = 20099800)
    assert_eq!((999..200_000u64).step_by(1000).sum::<u64>(), 20_099_800);
    assert_eq!(out.take(), "200\ntrue\n");
}

/// A runtime error closes the open upvalues: a closure kept in a global for a later program
/// (the next REPL line) reads the value it captured, not a slot of the stack the next program
/// reuses (before: an index out of bounds, a panic; or another program's local).
#[test]
fn a_runtime_error_closes_the_open_upvalues() {
    let heap = verify_heap();
    let (mut vm, out) = vm(&heap, Options::default());
    let e = vm.interpret(
        "var f; var set;
         { var a = 1; var b = 2; var c = 3;
           fun g() { return c; } fun s(v) { c = v; }
           f = g; set = s; nil(); }",
    );
    assert!(matches!(e, Err(LoxError::Runtime(_))), "{e:?}");
    heap.collect();
    vm.interpret(
        r#"print f(); { var x = "keep"; var y = "too"; set(99); print x; print y; print f(); }"#,
    )
    .unwrap();
    assert_eq!(out.take(), "3\nkeep\ntoo\n99\n");
}

/// A closed upvalue keeps only its own variable: a closure that captured one small variable does
/// not keep alive a large one that another closure of the same frame captured (before: every
/// closed upvalue stayed linked to the ones below it, and all 100 strings of 64 KiB stayed
/// reachable through the 100 small closures).
#[test]
fn a_closure_keeps_only_the_variables_it_captured() {
    let heap = verify_heap();
    let (mut vm, out) = vm(&heap, Options::default());
    vm.interpret(
        r#"var base = "x";
         for (var i = 0; i < 16; i = i + 1) base = base + base;
         class Cell { init(f, next) { this.f = f; this.next = next; } }
         fun outer(tag) {
           var big = base + tag;
           fun useBig() { return big; }
           var x = tag;
           fun small() { return x; }
           return small;
         }
         var keep = nil; var t = "";
         for (var i = 0; i < 100; i = i + 1) { t = t + "a"; keep = Cell(outer(t), keep); }
         print keep.f() == t;"#,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    heap.collect();
    heap.collect();
    let live = heap.stats().heap_marked;
    // 100 small closures and their strings: well under one 64 KiB string each.
    assert!(live < 2 << 20, "{live} bytes live");
    // The closures still read their own variable.
    vm.interpret(
        r#"print keep.f() == t; var n = 0; var last = "";
         while (keep != nil) { if (keep.f() != last) n = n + 1; last = keep.f(); keep = keep.next; }
         print n;"#,
    )
    .unwrap();
    assert_eq!(out.take(), "true\ntrue\n100\n");
}

#[test]
fn interned_strings_are_weak_and_survivors_stay_canonical() {
    // No cycle runs while the program interns (only the collections below).
    let heap = Heap::new(Config::default().gc_percent(None).verify(true)).unwrap();
    let (mut vm, out) = vm(&heap, Options::default());
    vm.interpret(
        r#"var keep = "ab" + "cd";
           var s = "";
           for (var i = 0; i < 500; i = i + 1) {
             s = s + "y";
             var t = s + keep;
           }
           s = nil;"#,
    )
    .unwrap();
    // The loop interned about a thousand distinct strings; none is reachable now. What is
    // left are the program's constants and names, and "abcd".
    let before = vm.interned_strings();
    assert!(before > 1000, "{before} strings interned by the loop");
    heap.collect();
    heap.collect();
    let live = vm.interned_strings();
    assert!(live < 40, "{live} strings still interned");
    // "abcd" survived the collections and is still the interned copy: a new "abcd" is the
    // same object, so `==` (identity for strings) holds.
    vm.interpret(r#"print keep == "abc" + "d"; print keep;"#)
        .unwrap();
    assert_eq!(out.take(), "true\nabcd\n");
}

#[test]
fn closures_and_upvalues_survive_collections_in_stress_mode() {
    let heap = verify_heap();
    let options = Options { gc_stress: Some(1) };
    let (mut vm, out) = vm(&heap, options);
    vm.interpret(
        "fun counter() {
           var n = 0;
           fun inc() { n = n + 1; return n; }
           return inc;
         }
         var a = counter(); var b = counter();
         for (var i = 0; i < 50; i = i + 1) { a(); if (i < 10) b(); }
         print a(); print b();
         class A { init(x) { this.x = x; } get() { return this.x; } }
         class B < A { get() { return super.get() + 1; } }
         var m = B(41).get;
         print m();",
    )
    .unwrap();
    assert_eq!(out.take(), "51\n11\n42\n");
    assert!(vm.stress_collections() > 5, "{}", vm.stress_collections());
}

/// Collections requested from another thread while `src` runs (seconds in a debug build,
/// allocating nothing) each wait less than 500 ms: the program's poll points let them in.
fn a_running_program_lets_collections_in(src: &'static str, prints: &str) {
    let heap = verify_heap();
    let h2 = heap.clone();
    let worker = std::thread::spawn(move || {
        let (mut vm, out) = vm(&h2, Options::default());
        vm.interpret(src).unwrap();
        out.take()
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        heap.collect();
        slowest = slowest.max(t.elapsed());
    }
    let finished_early = worker.is_finished();
    assert_eq!(worker.join().unwrap(), prints);
    assert!(
        slowest < Duration::from_millis(500),
        "a collection waited {slowest:?} for the running program"
    );
    assert!(
        !finished_early,
        "the program ended before the collections; make it longer"
    );
}

#[test]
fn a_running_program_does_not_hold_up_a_collection() {
    // Only the poll at the loop's backward jump lets a collection in.
    a_running_program_lets_collections_in(
        "var i = 0; while (i < 20000000) i = i + 1; print i == 20000000;",
        "true\n",
    );
}

#[test]
fn a_program_that_only_recurses_does_not_hold_up_a_collection() {
    // No loop: only the polls after calls (a function's, then a method's) let a collection in.
    a_running_program_lets_collections_in(
        "fun fib(n) { if (n < 2) return n; return fib(n - 2) + fib(n - 1); }
         print fib(32) == 2178309;",
        "true\n",
    );
    a_running_program_lets_collections_in(
        "class F { fib(n) { if (n < 2) return n; return this.fib(n - 2) + this.fib(n - 1); } }
         print F().fib(32) == 2178309;",
        "true\n",
    );
}

#[test]
fn errors_reset_the_vm_and_globals_persist() {
    let heap = verify_heap();
    let (mut vm, out) = vm(&heap, Options::default());
    vm.interpret("var total = 40; fun f(x) { return x - nil; }")
        .unwrap();
    match vm.interpret("print 1; f(1);") {
        Err(LoxError::Runtime(lines)) => {
            assert_eq!(lines[0], "Operands must be numbers.");
            assert_eq!(lines[1..], ["[line 1] in f()", "[line 1] in script"]);
        }
        other => panic!("{other:?}"),
    }
    match vm.interpret("print ;") {
        Err(LoxError::Compile(lines)) => {
            assert_eq!(lines, ["[line 1] Error at ';': Expect expression."])
        }
        other => panic!("{other:?}"),
    }
    heap.collect();
    vm.interpret("total = total + 2; print total;").unwrap();
    assert_eq!(out.take(), "1\n42\n");
}

#[test]
fn weakmap_entries_die_with_their_keys_and_live_keys_keep_theirs() {
    for stress in [None, Some(50)] {
        let heap = verify_heap();
        let (mut vm, out) = vm(&heap, Options { gc_stress: stress });
        // 2000 entries; every tenth key is kept in a list. Each value points back at its key,
        // which must not keep the key alive.
        vm.interpret(
            "class Node { init(next, n) { this.next = next; this.n = n; } }
             var meta = WeakMap();
             var kept = nil;
             var c = 0;
             for (var i = 0; i < 2000; i = i + 1) {
               var key = Node(nil, i);
               meta.set(key, Node(key, i * 2));
               c = c + 1;
               if (c == 10) { kept = Node(kept, key); c = 0; }
             }
             print meta;",
        )
        .unwrap();
        heap.collect();
        heap.collect();
        let cleared = heap
            .metrics()
            .u64("/gccore/gc/ephemerons/cleared:entries")
            .unwrap();
        assert_eq!(cleared, 1800, "the entries of the 1800 dropped keys");
        // The kept keys have their entries, intact.
        vm.interpret(
            "var count = 0; var ok = true;
             for (var k = kept; k != nil; k = k.next) {
               var v = meta.get(k.n);
               ok = ok and meta.has(k.n) and v.next == k.n and v.n == k.n.n * 2;
               count = count + 1;
             }
             print count; print ok;
             print meta.delete(kept.n); print meta.has(kept.n); print meta.delete(kept.n);
             print meta.get(\"nothing\");",
        )
        .unwrap();
        assert_eq!(
            out.take(),
            "<weakmap>\n200\ntrue\ntrue\nfalse\nfalse\nnil\n"
        );
        // Misuse is a runtime error, not a crash.
        for (src, msg) in [
            ("WeakMap().set(1, 2);", "WeakMap keys must be objects."),
            ("WeakMap().get(nil);", "WeakMap keys must be objects."),
            (
                "var a = \"a\"; WeakMap().set(a + \"b\", 1);",
                "WeakMap keys cannot be strings.",
            ),
            ("WeakMap().size();", "Undefined property 'size'."),
            ("WeakMap().get();", "Expected 1 arguments but got 0."),
            ("WeakMap(1);", "Expected 0 arguments but got 1."),
        ] {
            match vm.interpret(src) {
                Err(LoxError::Runtime(lines)) => assert_eq!(lines[0], msg, "{src}"),
                other => panic!("{src}: {other:?}"),
            }
        }
    }
}

/// A program loads into memory that an earlier program left as garbage: when the load's
/// allocations fail, the VM collects and loads again, as it does for an instruction's. (A
/// REPL's or an embedder's later program failed with "Out of memory." otherwise: with the heap
/// below its first trigger, nothing had collected the first program's garbage.) A 2 MiB arena
/// and two string constants of 1.1 MiB each.
#[test]
fn a_program_loads_into_memory_the_previous_one_left_as_garbage() {
    let heap = Heap::new(Config::default().arena_bytes(2 << 20)).unwrap();
    let (mut vm, out) = vm(&heap, Options::default());
    let big = |c: char| c.to_string().repeat(1100 << 10);
    vm.interpret(&format!("var s = \"{}\"; s = nil;", big('a')))
        .unwrap();
    vm.interpret(&format!("var t = \"{}\"; print t == t;", big('b')))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(out.take(), "true\n");
}
