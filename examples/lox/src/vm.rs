//! The virtual machine: loads compiled code onto the heap and runs it.
//!
//! # How the VM lives on the heap
//!
//! * The mutator's **root object** ([`VmRoot`]) holds the global variables (a GC array indexed
//!   by the slot the compiler gave each global name), the string interner, the list of open
//!   upvalues and the interned `"init"`.
//! * The mutator's **root stack** is the Lox value stack. It has no write barrier; the
//!   collector scans it while the VM is outside its mutation scope.
//! * **Call frames** are plain Rust values (closure, instruction index, stack base) while the
//!   VM runs. When it leaves its scope, each frame's closure is pushed on the root stack and
//!   its two integers are kept in [`Vm`] (outside the heap); on re-entry the frames are rebuilt
//!   from them. So between scopes everything the program can reach is reachable from the root
//!   object and the root stack, and nothing is held anywhere else.
//!
//! # Yielding to the collector
//!
//! The dispatch loop runs inside one mutation scope. At *poll points* (backward jumps, calls,
//! and instructions that allocate) it checks [`Mutation::should_yield`] (two relaxed
//! loads); when a collection is waiting it saves its frames as above and returns from the scope,
//! and the driver loop re-enters at once. A running Lox program therefore never holds up a
//! pause for longer than one straight-line stretch of bytecode.
//!
//! In **GC stress mode** (`--gc-stress=N`) the VM also yields after every N allocations and
//! the driver runs a full collection (with the heap verifier on) before re-entering.
//!
//! # Out of memory
//!
//! Instructions allocate before they change any VM state, so an allocation failure rewinds
//! the instruction; the driver collects and retries it once. If it fails again the program
//! ends with the runtime error `Out of memory.`. Once the retried instruction has completed
//! (the next poll point), a later failure is collected and retried in turn: a program that
//! only makes garbage runs in an arena smaller than its first trigger.

use std::io::Write;
use std::time::Instant;

use gc_core::{
    AllocError, Gc, GcArray, GcBytes, GcCell, GcEphemeronTable, Heap, Mutation, Mutator, Rootable,
    Trace, Unboxed,
};

use crate::chunk::{Constant, Proto, op};
use crate::compiler::{GlobalNames, compile};
use crate::table::{Interner, Table};
use crate::value::{
    BoundMethod, CLOSED, Class, Closure, Function, Instance, Native, Obj, Upvalue, Value, as_class,
    as_closure, as_str, boolean, display, is_falsey, nil, values_equal,
};

/// Deepest call nesting; one more call is the runtime error `Stack overflow.`.
pub const FRAMES_MAX: usize = 1024;

/// The root object of the VM's mutator.
#[derive(Trace)]
pub struct VmRoot<'gc> {
    /// Global variable values by slot; `UNDEFINED` until defined.
    pub globals: GcCell<'gc, GcArray<'gc, Value<'gc>>>,
    pub strings: Interner<'gc>,
    pub init_string: Gc<'gc, Obj<'gc>>,
    /// The interned names of `WeakMap`'s methods: `get`, `set`, `has`, `delete`.
    pub weakmap_methods: [Gc<'gc, Obj<'gc>>; 4],
    /// Open upvalues, sorted by stack slot, highest first.
    pub open_upvalues: GcCell<'gc, Option<Gc<'gc, Upvalue<'gc>>>>,
}

/// The value of a global slot that has not been defined (never a Lox value).
fn undefined<'gc>() -> Value<'gc> {
    Value::imm(3)
}

type RootM = Rootable!['gc => VmRoot<'gc>];
type StackM = Rootable!['gc => Value<'gc>];

/// Why `interpret` failed.
#[derive(Debug)]
pub enum LoxError {
    /// Compile errors, one line each (exit code 65).
    Compile(Vec<String>),
    /// A runtime error: the message, then the stack trace lines (exit code 70).
    Runtime(Vec<String>),
    /// Printing failed (e.g. the reading end of a pipe closed): the program stops there, as
    /// clox does when the write kills it.
    Output(std::io::Error),
}

/// VM settings.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Collect (with the heap verifier on) after every this many allocations.
    pub gc_stress: Option<u64>,
}

/// A frame saved while the VM is outside its scope (its closure is on the root stack).
#[derive(Clone, Copy, Debug)]
struct SavedFrame {
    ip: usize,
    base: usize,
}

/// How a stretch of execution inside one scope ended.
enum Outcome {
    /// The program finished.
    Done,
    /// The collector asked to run (or a stress collection is due); frames are saved.
    Yield,
    /// An allocation failed; the instruction was rewound and frames are saved.
    OutOfMemory,
    /// A runtime error, already formatted; the VM state is reset.
    Error(Vec<String>),
    /// Printing failed; the VM state is reset.
    Output(std::io::Error),
}

/// A Lox virtual machine on a gc-core heap.
pub struct Vm {
    mutator: Mutator<RootM, StackM>,
    global_names: GlobalNames,
    saved: Vec<SavedFrame>,
    options: Options,
    start: Instant,
    out: Box<dyn Write>,
    /// Allocations since the last stress collection.
    allocs: u64,
    stress_collections: u64,
}

impl Vm {
    /// A VM on `heap`, printing to `out`.
    pub fn new(heap: &Heap, options: Options, out: Box<dyn Write>) -> Vm {
        let mutator: Mutator<RootM, StackM> = heap.mutator_with_stack(|mc| {
            let strings = Interner::new();
            let init_string = strings.intern(mc, "init").expect("a new heap has room");
            let weakmap_methods = ["get", "set", "has", "delete"]
                .map(|m| strings.intern(mc, m).expect("a new heap has room"));
            VmRoot {
                globals: GcCell::new(GcArray::new(mc, 64, undefined())),
                strings,
                init_string,
                weakmap_methods,
                open_upvalues: GcCell::new(None),
            }
        });
        let mut vm = Vm {
            mutator,
            global_names: GlobalNames::default(),
            saved: Vec::new(),
            options,
            start: Instant::now(),
            out,
            allocs: 0,
            stress_collections: 0,
        };
        let clock_slot = vm.global_names.slot("clock").expect("first global") as usize;
        let weakmap_slot = vm.global_names.slot("WeakMap").expect("second global") as usize;
        vm.mutator.mutate(|mc, root| {
            let clock = Gc::new(mc, Obj::Native(Native::Clock));
            root.globals.get().set(mc, clock_slot, Value::gc(clock));
            let weakmap = Gc::new(mc, Obj::Native(Native::WeakMap));
            root.globals.get().set(mc, weakmap_slot, Value::gc(weakmap));
        });
        vm
    }

    /// Collections run by stress mode so far.
    pub fn stress_collections(&self) -> u64 {
        self.stress_collections
    }

    /// Flush printed output; an error if it cannot be written (a full disk, a closed pipe).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Live interned strings (walks the interner).
    pub fn interned_strings(&mut self) -> usize {
        self.mutator.mutate(|mc, root| root.strings.live(mc))
    }

    /// Compile and run `src`. Globals persist between calls (the REPL relies on it).
    pub fn interpret(&mut self, src: &str) -> Result<(), LoxError> {
        let proto = compile(src, &mut self.global_names).map_err(LoxError::Compile)?;
        let n_globals = self.global_names.len();
        let load_program = |mutator: &mut Mutator<RootM, StackM>| {
            mutator.mutate_with_stack(|mc, root, stack| {
                let globals = root.globals.get();
                if globals.len() < n_globals {
                    let grown =
                        GcArray::try_new(mc, n_globals.max(2 * globals.len()), undefined())?;
                    for (i, v) in globals.iter().enumerate() {
                        grown.set(mc, i, v);
                    }
                    root.globals.set(mc, grown);
                }
                let function = load(mc, root, &proto)?;
                let closure = Gc::try_new(
                    mc,
                    Obj::Closure(Closure {
                        function,
                        upvalues: None,
                    }),
                )?;
                // Slot 0 of the script's frame, then the saved frame's closure.
                stack.push(Value::gc(closure));
                stack.push(Value::gc(closure));
                Ok::<_, AllocError>(())
            })
        };
        let mut loaded = load_program(&mut self.mutator);
        if loaded.is_err() {
            // As for an instruction's allocation: collect (what earlier programs left may be
            // what fills the heap) and try once more. Globals grown by the first try stay.
            self.mutator.collect();
            loaded = load_program(&mut self.mutator);
        }
        if loaded.is_err() {
            return Err(LoxError::Runtime(vec![
                "Out of memory.".into(),
                "[line 1] in script".into(),
            ]));
        }
        self.saved.push(SavedFrame { ip: 0, base: 0 });
        self.stress_collect();
        let mut retrying = false;
        loop {
            let stress_every = self.options.gc_stress.unwrap_or(u64::MAX);
            let Vm {
                mutator,
                global_names,
                saved,
                start,
                out,
                allocs,
                ..
            } = self;
            let outcome = mutator.mutate_with_stack(|mc, root, stack| {
                stack.with(|stack| {
                    let mut exec = Exec::resume(mc, root, stack, saved, out, *start);
                    exec.global_names = Some(global_names);
                    exec.allocs = *allocs;
                    exec.stress_every = stress_every;
                    exec.retrying = retrying;
                    let outcome = exec.run();
                    *allocs = exec.allocs;
                    outcome
                })
            });
            match outcome {
                Outcome::Done => {
                    // Output still buffered that cannot be written is an error of the run, as
                    // output written during it is (`lox prog.lox > /dev/full`: exit 74).
                    return self.flush().map_err(LoxError::Output);
                }
                Outcome::Yield => {
                    retrying = false;
                    self.stress_collect();
                }
                Outcome::OutOfMemory => {
                    retrying = true;
                    self.mutator.collect();
                }
                Outcome::Error(lines) => {
                    // The runtime error is the one to report, whether or not the output
                    // before it could be written.
                    let _ = self.flush();
                    return Err(LoxError::Runtime(lines));
                }
                Outcome::Output(e) => return Err(LoxError::Output(e)),
            }
        }
    }

    fn stress_collect(&mut self) {
        if let Some(every) = self.options.gc_stress
            && self.allocs >= every
        {
            self.allocs = 0;
            self.stress_collections += 1;
            self.mutator.collect();
        }
    }
}

/// Put a compiled function tree on the heap.
fn load<'gc>(
    mc: &Mutation<'gc>,
    root: &VmRoot<'gc>,
    proto: &Proto,
) -> Result<Gc<'gc, Function<'gc>>, AllocError> {
    let constants = GcArray::try_new(mc, proto.constants.len(), nil())?;
    for (i, c) in proto.constants.iter().enumerate() {
        let v = match c {
            Constant::Number(n) => Value::number(*n),
            Constant::Str(s) => Value::gc(root.strings.intern(mc, s)?),
            Constant::Function(p) => Value::gc(Gc::try_new(mc, Obj::Function(load(mc, root, p)?))?),
        };
        constants.set(mc, i, v);
    }
    let lines: Vec<u8> = proto.lines.iter().flat_map(|l| l.to_le_bytes()).collect();
    let name = if proto.name.is_empty() {
        None
    } else {
        Some(root.strings.intern(mc, &proto.name)?)
    };
    Gc::try_new(
        mc,
        Function {
            name,
            arity: proto.arity,
            upvalue_count: proto.upvalue_count,
            code: GcBytes::try_new(mc, &proto.code)?,
            lines: GcBytes::try_new(mc, &lines)?,
            constants,
        },
    )
}

/// A call frame while the VM runs.
#[derive(Clone, Copy)]
struct Frame<'gc> {
    closure: Gc<'gc, Obj<'gc>>,
    function: &'gc Function<'gc>,
    ip: usize,
    base: usize,
}

impl<'gc> Frame<'gc> {
    fn new(closure: Gc<'gc, Obj<'gc>>, ip: usize, base: usize) -> Self {
        Frame {
            closure,
            function: as_closure(closure).function.as_ref_gc(),
            ip,
            base,
        }
    }
}

/// Why an instruction did not complete. Cheap to build: messages are formatted only when an
/// error is reported (in [`Exec::fault`], out of the dispatch loop).
enum Fault<'gc> {
    Message(&'static str),
    UndefinedProperty(Gc<'gc, Obj<'gc>>),
    Runtime(String),
    UndefinedVariable(usize),
    Alloc,
    /// Writing printed output failed.
    Output(std::io::Error),
}

impl From<AllocError> for Fault<'_> {
    fn from(_: AllocError) -> Self {
        Fault::Alloc
    }
}

/// The VM inside one mutation scope.
struct Exec<'a, 'gc> {
    mc: &'a Mutation<'gc>,
    root: &'a VmRoot<'gc>,
    /// The global values (the array does not change while a program runs).
    globals: GcArray<'gc, Value<'gc>>,
    global_names: Option<&'a GlobalNames>,
    /// The root stack. Inside the scope only `..sp` is live; slots above hold stale values
    /// (overwritten before they are read, and cut off before the scope ends).
    stack: &'a mut Vec<Value<'gc>>,
    sp: usize,
    frames: Vec<Frame<'gc>>,
    saved: &'a mut Vec<SavedFrame>,
    out: &'a mut Box<dyn Write>,
    start: Instant,
    print_buf: String,
    /// Reused buffer for string concatenation.
    scratch: String,
    allocs: u64,
    stress_every: u64,
    /// The last stretch ended out of memory: a second failure is final.
    retrying: bool,
}

impl<'a, 'gc> Exec<'a, 'gc> {
    /// Rebuild the frames saved when the VM last left its scope.
    fn resume(
        mc: &'a Mutation<'gc>,
        root: &'a VmRoot<'gc>,
        stack: &'a mut Vec<Value<'gc>>,
        saved: &'a mut Vec<SavedFrame>,
        out: &'a mut Box<dyn Write>,
        start: Instant,
    ) -> Self {
        let n = saved.len();
        let closures = stack.split_off(stack.len() - n);
        let frames = saved
            .drain(..)
            .zip(closures)
            .map(|(s, c)| Frame::new(c.as_gc().expect("saved frame closure"), s.ip, s.base))
            .collect();
        let sp = stack.len();
        Exec {
            mc,
            root,
            globals: root.globals.get(),
            global_names: None,
            stack,
            sp,
            frames,
            saved,
            out,
            start,
            print_buf: String::new(),
            scratch: String::new(),
            allocs: 0,
            stress_every: u64::MAX,
            retrying: false,
        }
    }

    /// Cut the root stack to its live values, then push every frame's closure on it and keep
    /// the frame's integers outside the heap.
    fn save(&mut self) {
        self.stack.truncate(self.sp);
        for f in self.frames.drain(..) {
            self.saved.push(SavedFrame {
                ip: f.ip,
                base: f.base,
            });
            self.stack.push(Value::gc(f.closure));
        }
        self.sp = self.stack.len();
    }

    #[inline(always)]
    fn must_yield(&self) -> bool {
        self.allocs >= self.stress_every || self.mc.should_yield()
    }

    #[inline(always)]
    fn alloc(&mut self, obj: Obj<'gc>) -> Result<Gc<'gc, Obj<'gc>>, AllocError> {
        self.allocs += 1;
        Gc::try_new(self.mc, obj)
    }

    #[inline(always)]
    fn peek(&self, distance: usize) -> Value<'gc> {
        self.stack[self.sp - 1 - distance]
    }

    /// Push on the live part of the stack (overwriting a stale slot, or growing the vector).
    #[inline(always)]
    fn push(&mut self, v: Value<'gc>) {
        if self.sp < self.stack.len() {
            self.stack[self.sp] = v;
        } else {
            self.stack.push(v);
        }
        self.sp += 1;
    }

    fn undefined_variable(&self, slot: usize) -> String {
        let name = self.global_names.map_or("?", |g| g.name(slot));
        format!("Undefined variable '{name}'.")
    }

    fn runtime_error(&mut self, message: String) -> Vec<String> {
        let mut lines = vec![message];
        for f in self.frames.iter().rev() {
            let line = f.function.line_at(f.ip.saturating_sub(1));
            lines.push(match f.function.name_str() {
                Some(name) => format!("[line {line}] in {name}()"),
                None => format!("[line {line}] in script"),
            });
        }
        // Close the open upvalues first: a closure that outlives the program (kept in a
        // global, for the next REPL line) keeps the values, as clox's do in practice, instead
        // of slots of a stack the next program reuses (read out of bounds, or another
        // program's locals).
        self.close_upvalues(0);
        self.frames.clear();
        self.stack.clear();
        self.sp = 0;
        lines
    }

    fn call(&mut self, closure: Gc<'gc, Obj<'gc>>, argc: usize) -> Result<(), Fault<'gc>> {
        let function = &as_closure(closure).function;
        if argc != function.arity as usize {
            return Err(Fault::Runtime(format!(
                "Expected {} arguments but got {argc}.",
                function.arity
            )));
        }
        if self.frames.len() == FRAMES_MAX {
            return Err(Fault::Message("Stack overflow."));
        }
        let base = self.sp - argc - 1;
        self.frames.push(Frame::new(closure, 0, base));
        Ok(())
    }

    fn call_value(&mut self, callee: Value<'gc>, argc: usize) -> Result<(), Fault<'gc>> {
        if let Some(o) = callee.as_gc() {
            match &*o {
                Obj::Closure(_) => return self.call(o, argc),
                Obj::BoundMethod(b) => {
                    let slot = self.sp - argc - 1;
                    self.stack[slot] = b.receiver;
                    return self.call(b.method, argc);
                }
                Obj::Class(class) => {
                    let instance = self.alloc(Obj::Instance(Instance {
                        class: o,
                        fields: Table::new(),
                    }))?;
                    let slot = self.sp - argc - 1;
                    self.stack[slot] = Value::gc(instance);
                    return match class.methods.get(self.root.init_string) {
                        Some(init) => self.call(init.as_gc().expect("methods are closures"), argc),
                        None if argc != 0 => Err(Fault::Runtime(format!(
                            "Expected 0 arguments but got {argc}."
                        ))),
                        None => Ok(()),
                    };
                }
                Obj::Native(Native::Clock) => {
                    let t = self.start.elapsed().as_secs_f64();
                    self.sp -= argc + 1;
                    self.push(Value::number(t));
                    return Ok(());
                }
                Obj::Native(Native::WeakMap) => {
                    if argc != 0 {
                        return Err(Fault::Runtime(format!(
                            "Expected 0 arguments but got {argc}."
                        )));
                    }
                    let table = GcEphemeronTable::try_new(self.mc)?;
                    let map = self.alloc(Obj::WeakMap(table))?;
                    self.sp -= 1;
                    self.push(Value::gc(map));
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(Fault::Runtime(
            "Can only call functions and classes.".into(),
        ))
    }

    fn invoke_from_class(
        &mut self,
        class: Gc<'gc, Obj<'gc>>,
        name: Gc<'gc, Obj<'gc>>,
        argc: usize,
    ) -> Result<(), Fault<'gc>> {
        match as_class(class).methods.get(name) {
            Some(m) => self.call(m.as_gc().expect("methods are closures"), argc),
            None => Err(Fault::UndefinedProperty(name)),
        }
    }

    fn invoke(&mut self, name: Gc<'gc, Obj<'gc>>, argc: usize) -> Result<(), Fault<'gc>> {
        let receiver = self.peek(argc);
        if let Some(Obj::WeakMap(map)) = receiver.as_gc().map(|o| o.as_ref_gc()) {
            return self.weakmap_method(*map, name, argc);
        }
        let Some(Obj::Instance(instance)) = receiver.as_gc().map(|o| o.as_ref_gc()) else {
            return Err(Fault::Message("Only instances have methods."));
        };
        if let Some(field) = instance.fields.get(name) {
            // A closure's slot 0 is the closure itself; other callees set the slot themselves
            // (after allocating, so a failed allocation leaves the receiver in place).
            if matches!(field.as_gc().map(|o| o.as_ref_gc()), Some(Obj::Closure(_))) {
                let slot = self.sp - argc - 1;
                self.stack[slot] = field;
            }
            return self.call_value(field, argc);
        }
        self.invoke_from_class(instance.class, name, argc)
    }

    /// `map.get(key)`, `map.set(key, value)`, `map.has(key)`, `map.delete(key)` on a
    /// `WeakMap` (the extension in the crate's README). Keys are objects other than strings,
    /// compared by identity; `get` of a missing key is `nil`; `set` returns `nil`, `has` and
    /// `delete` a boolean. A string is refused as a key to `set`, as JavaScript refuses
    /// primitives: strings are interned weakly, so `a + "b"` built twice is one object while
    /// the first lives and two if a collection came between, and an entry keyed by one would
    /// come and go with the collector's timing. Nothing allocates, so nothing needs
    /// rewinding.
    fn weakmap_method(
        &mut self,
        map: GcEphemeronTable<'gc, Obj<'gc>, Value<'gc>>,
        name: Gc<'gc, Obj<'gc>>,
        argc: usize,
    ) -> Result<(), Fault<'gc>> {
        let Some(method) = self
            .root
            .weakmap_methods
            .iter()
            .position(|&m| Gc::ptr_eq(m, name))
        else {
            return Err(Fault::UndefinedProperty(name));
        };
        let want = if method == 1 { 2 } else { 1 };
        if argc != want {
            return Err(Fault::Runtime(format!(
                "Expected {want} arguments but got {argc}."
            )));
        }
        let Some(key) = self.peek(argc - 1).as_gc() else {
            return Err(Fault::Message("WeakMap keys must be objects."));
        };
        if method == 1 && matches!(*key, Obj::String(_)) {
            return Err(Fault::Message("WeakMap keys cannot be strings."));
        }
        let result = match method {
            0 => map.get(key).unwrap_or_else(nil),
            1 => {
                map.insert(self.mc, key, self.peek(0));
                nil()
            }
            2 => boolean(map.contains_key(key)),
            _ => boolean(map.remove(self.mc, key).is_some()),
        };
        self.sp -= argc + 1;
        self.push(result);
        Ok(())
    }

    /// Property `name` of `receiver`: a field, else a method bound to it. Allocates (a bound
    /// method) before changing anything, as an out-of-memory rewind requires.
    #[inline(always)]
    fn get_property(
        &mut self,
        receiver: Value<'gc>,
        name: Gc<'gc, Obj<'gc>>,
    ) -> Result<Value<'gc>, Fault<'gc>> {
        let Some(Obj::Instance(instance)) = receiver.as_gc().map(|o| o.as_ref_gc()) else {
            return Err(Fault::Message("Only instances have properties."));
        };
        if let Some(v) = instance.fields.get(name) {
            return Ok(v);
        }
        self.bind_method(instance.class, name, receiver)?
            .ok_or(Fault::UndefinedProperty(name))
    }

    /// Set field `name` of `object` to `value`.
    #[inline(always)]
    fn set_field(
        &self,
        object: Value<'gc>,
        name: Gc<'gc, Obj<'gc>>,
        value: Value<'gc>,
    ) -> Result<(), Fault<'gc>> {
        let Some(Obj::Instance(instance)) = object.as_gc().map(|o| o.as_ref_gc()) else {
            return Err(Fault::Message("Only instances have fields."));
        };
        instance.fields.set(self.mc, name, value)?;
        Ok(())
    }

    /// A bound method for `name` of `class` with receiver `receiver`, or `None`.
    fn bind_method(
        &mut self,
        class: Gc<'gc, Obj<'gc>>,
        name: Gc<'gc, Obj<'gc>>,
        receiver: Value<'gc>,
    ) -> Result<Option<Value<'gc>>, AllocError> {
        let Some(method) = as_class(class).methods.get(name) else {
            return Ok(None);
        };
        let bound = self.alloc(Obj::BoundMethod(BoundMethod {
            receiver,
            method: method.as_gc().expect("methods are closures"),
        }))?;
        Ok(Some(Value::gc(bound)))
    }

    /// The open upvalue for stack slot `slot`, creating it if needed.
    fn capture_upvalue(&mut self, slot: usize) -> Result<Gc<'gc, Upvalue<'gc>>, AllocError> {
        let mut prev: Option<Gc<'gc, Upvalue<'gc>>> = None;
        let mut cur = self.root.open_upvalues.get();
        while let Some(u) = cur {
            let s = u.slot.get();
            if s == slot {
                return Ok(u);
            }
            if s < slot {
                break;
            }
            prev = Some(u);
            cur = u.next.get();
        }
        self.allocs += 1;
        let created = Gc::try_new(
            self.mc,
            Upvalue {
                slot: GcCell::new(slot),
                closed: GcCell::new(nil()),
                next: GcCell::new(cur),
            },
        )?;
        match prev {
            Some(p) => p.next.set(self.mc, Some(created)),
            None => self.root.open_upvalues.set(self.mc, Some(created)),
        }
        Ok(created)
    }

    /// Close every open upvalue at or above stack slot `from`.
    fn close_upvalues(&mut self, from: usize) {
        while let Some(u) = self.root.open_upvalues.get() {
            let s = u.slot.get();
            if s < from {
                break;
            }
            u.closed.set(self.mc, self.stack[s]);
            u.slot.set(self.mc, CLOSED);
            self.root.open_upvalues.set(self.mc, u.next.get());
            // A closed upvalue holds its value only: left linked, it would keep the upvalues
            // below it (other variables of this and the calling frames) alive for as long as a
            // closure holds it.
            u.next.set(self.mc, None);
        }
    }

    #[inline(always)]
    fn upvalue(&self, closure: Gc<'gc, Obj<'gc>>, i: usize) -> Gc<'gc, Upvalue<'gc>> {
        let ups = as_closure(closure).upvalues.expect("function has upvalues");
        ups.get(i)
            .expect("upvalues are filled when the closure is made")
    }

    fn concatenate(&mut self, a: &str, b: &str) -> Result<Value<'gc>, AllocError> {
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        s.push_str(a);
        s.push_str(b);
        self.allocs += 1;
        let interned = self.root.strings.intern(self.mc, &s);
        self.scratch = s;
        Ok(Value::gc(interned?))
    }

    fn print(&mut self, v: Value<'gc>) -> std::io::Result<()> {
        self.print_buf.clear();
        display(&mut self.print_buf, v);
        self.print_buf.push('\n');
        self.out.write_all(self.print_buf.as_bytes())
    }

    /// Leave the scope for the collector: save the frames (the running one at `ip`).
    #[cold]
    #[inline(never)]
    fn yield_now(&mut self, ip: usize, sp: usize) -> Outcome {
        self.frames.last_mut().expect("running frame").ip = ip;
        self.sp = sp;
        self.save();
        Outcome::Yield
    }

    /// End the stretch with `fault`, raised by the instruction at `op_start` of the running
    /// frame (now at `ip`).
    #[cold]
    #[inline(never)]
    fn fault(&mut self, fault: Fault<'gc>, ip: usize, op_start: usize, sp: usize) -> Outcome {
        self.sp = sp;
        let top = self.frames.last_mut().expect("running frame");
        top.ip = ip;
        let message = match fault {
            Fault::Alloc if !self.retrying => {
                // Rewind: the instruction changed nothing before its allocation.
                top.ip = op_start;
                self.save();
                return Outcome::OutOfMemory;
            }
            Fault::Alloc => "Out of memory.".to_string(),
            Fault::Output(e) => {
                // The trace is not printed: reset the VM as a runtime error does.
                self.runtime_error(String::new());
                return Outcome::Output(e);
            }
            Fault::Message(m) => m.to_string(),
            Fault::Runtime(m) => m,
            Fault::UndefinedVariable(slot) => self.undefined_variable(slot),
            Fault::UndefinedProperty(name) => format!("Undefined property '{}'.", as_str(name)),
        };
        // Report the line of the failing instruction's opcode (a fused instruction's operands
        // may carry a later line).
        if let Some(top) = self.frames.last_mut() {
            top.ip = op_start + 1;
        }
        Outcome::Error(self.runtime_error(message))
    }

    /// Run until the program ends, the collector wants the VM out of its scope, or an error.
    // `!(a < b)` is meant: with a NaN operand it differs from `a >= b`, and Lox's `>=` is
    // defined as the former.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn run(&mut self) -> Outcome {
        let mut f = *self.frames.last().expect("a frame to run");
        let mut code: &'gc [u8] = f.function.code.as_bytes();
        let mut constants = f.function.constants;
        // Where the instruction being executed starts (an allocation failure rewinds to it).
        let mut op_start;
        let mut sp = self.sp;

        macro_rules! push {
            ($v:expr) => {{
                let v = $v;
                if sp < self.stack.len() {
                    self.stack[sp] = v;
                } else {
                    self.stack.push(v);
                }
                sp += 1;
            }};
        }
        macro_rules! pop {
            () => {{
                sp -= 1;
                self.stack[sp]
            }};
        }
        macro_rules! peek {
            ($d:expr) => {
                self.stack[sp - 1 - $d]
            };
        }
        // Run a helper that works on `self.sp`.
        macro_rules! with_sp {
            ($e:expr) => {{
                self.sp = sp;
                let r = $e;
                sp = self.sp;
                r
            }};
        }

        macro_rules! byte {
            () => {{
                let b = code[f.ip];
                f.ip += 1;
                b
            }};
        }
        macro_rules! short {
            () => {{
                let v = u16::from_be_bytes([code[f.ip], code[f.ip + 1]]);
                f.ip += 2;
                v as usize
            }};
        }
        macro_rules! name {
            () => {
                constants
                    .get(byte!() as usize)
                    .as_gc()
                    .expect("names are strings")
            };
        }
        // Store the running frame's position (before anything that reads the frame list).
        macro_rules! sync {
            () => {
                self.frames.last_mut().expect("running frame").ip = f.ip
            };
        }
        // Switch to the frame on top of the frame list.
        macro_rules! reload {
            () => {{
                f = *self.frames.last().expect("a frame to run");
                code = f.function.code.as_bytes();
                constants = f.function.constants;
            }};
        }
        // Push a frame for closure `$o` (whose `Closure` is `$c`) called with `$argc` arguments,
        // arity and depth already checked, and switch to it.
        macro_rules! enter {
            ($o:expr, $c:expr, $argc:expr) => {{
                let function = $c.function.as_ref_gc();
                f = Frame {
                    closure: $o,
                    function,
                    ip: 0,
                    base: sp - $argc - 1,
                };
                self.frames.push(f);
                code = function.code.as_bytes();
                constants = function.constants;
            }};
        }
        macro_rules! poll {
            () => {
                // Poll points follow an instruction's effects: the instruction retried after an
                // allocation failure has completed, so a later failure is a new one (collect and
                // retry it), not the retried instruction's second.
                self.retrying = false;
                if self.must_yield() {
                    return self.yield_now(f.ip, sp);
                }
            };
        }
        // End this stretch with a fault of the instruction that started at `op_start`.
        macro_rules! fail {
            ($fault:expr) => {
                return self.fault($fault, f.ip, op_start, sp)
            };
        }
        macro_rules! try_op {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => fail!(Fault::from(e)),
                }
            };
        }

        // Pop two numbers and jump if `$jump(a, b)`.
        macro_rules! compare_jump {
            ($jump:expr) => {{
                let offset = short!();
                match (
                    self.stack[sp - 2].as_number(),
                    self.stack[sp - 1].as_number(),
                ) {
                    (Some(a), Some(b)) => {
                        sp -= 2;
                        #[allow(clippy::redundant_closure_call)]
                        if $jump(a, b) {
                            f.ip += offset;
                        }
                    }
                    _ => fail!(Fault::Message("Operands must be numbers.")),
                }
            }};
        }
        macro_rules! binary_num {
            ($op:tt, $wrap:expr) => {{
                match (self.stack[sp - 2].as_number(), self.stack[sp - 1].as_number()) {
                    (Some(a), Some(b)) => {
                        sp -= 1;
                        self.stack[sp - 1] = $wrap(a $op b);
                    }
                    _ => fail!(Fault::Message("Operands must be numbers.")),
                }
            }};
        }
        loop {
            op_start = f.ip;
            match byte!() {
                op::CONSTANT => {
                    let v = constants.get(byte!() as usize);
                    push!(v);
                }
                op::NIL => push!(nil()),
                op::TRUE => push!(boolean(true)),
                op::FALSE => push!(boolean(false)),
                op::POP => {
                    sp -= 1;
                }
                op::GET_LOCAL => {
                    let v = self.stack[f.base + byte!() as usize];
                    push!(v);
                }
                op::GET_LOCAL_CONSTANT => {
                    let v = self.stack[f.base + byte!() as usize];
                    push!(v);
                    let c = constants.get(byte!() as usize);
                    push!(c);
                }
                op::SET_LOCAL => {
                    let slot = f.base + byte!() as usize;
                    self.stack[slot] = peek!(0);
                }
                op::SET_LOCAL_POP => {
                    let slot = f.base + byte!() as usize;
                    let v = pop!();
                    self.stack[slot] = v;
                }
                op::GET_GLOBAL => {
                    let slot = short!();
                    let v = self.globals.get(slot);
                    if v.to_bits() == undefined().to_bits() {
                        fail!(Fault::UndefinedVariable(slot));
                    }
                    push!(v);
                }
                op::DEFINE_GLOBAL => {
                    let slot = short!();
                    let v = pop!();
                    self.globals.set(self.mc, slot, v);
                }
                op::SET_GLOBAL => {
                    let slot = short!();
                    if self.globals.get(slot).to_bits() == undefined().to_bits() {
                        fail!(Fault::UndefinedVariable(slot));
                    }
                    self.globals.set(self.mc, slot, peek!(0));
                }
                op::SET_GLOBAL_POP => {
                    let slot = short!();
                    if self.globals.get(slot).to_bits() == undefined().to_bits() {
                        fail!(Fault::UndefinedVariable(slot));
                    }
                    let v = pop!();
                    self.globals.set(self.mc, slot, v);
                }
                op::GET_UPVALUE => {
                    let u = self.upvalue(f.closure, byte!() as usize);
                    let slot = u.slot.get();
                    let v = if slot == CLOSED {
                        u.closed.get()
                    } else {
                        self.stack[slot]
                    };
                    push!(v);
                }
                op::SET_UPVALUE => {
                    let u = self.upvalue(f.closure, byte!() as usize);
                    let v = peek!(0);
                    let slot = u.slot.get();
                    if slot == CLOSED {
                        u.closed.set(self.mc, v);
                    } else {
                        self.stack[slot] = v;
                    }
                }
                op::GET_PROPERTY => {
                    let name = name!();
                    let v = try_op!(self.get_property(peek!(0), name));
                    let top = sp - 1;
                    self.stack[top] = v;
                }
                op::GET_LOCAL_PROPERTY => {
                    // Nothing is pushed before the allocation (an out-of-memory rewind).
                    let receiver = self.stack[f.base + byte!() as usize];
                    let name = name!();
                    let v = try_op!(self.get_property(receiver, name));
                    push!(v);
                }
                op::SET_PROPERTY => {
                    let name = name!();
                    try_op!(self.set_field(peek!(1), name, peek!(0)));
                    let v = pop!();
                    let top = sp - 1;
                    self.stack[top] = v;
                }
                op::SET_PROPERTY_POP => {
                    let name = name!();
                    try_op!(self.set_field(peek!(1), name, peek!(0)));
                    sp -= 2;
                }
                op::GET_SUPER => {
                    let name = name!();
                    let superclass = peek!(0).as_gc().expect("superclass is a class");
                    let receiver = peek!(1);
                    match try_op!(self.bind_method(superclass, name, receiver)) {
                        Some(bound) => {
                            sp -= 1;
                            let top = sp - 1;
                            self.stack[top] = bound;
                        }
                        None => fail!(Fault::UndefinedProperty(name)),
                    }
                }
                op::EQUAL => {
                    let b = pop!();
                    let a = pop!();
                    push!(boolean(values_equal(a, b)));
                }
                op::NOT_EQUAL => {
                    let b = pop!();
                    let a = pop!();
                    push!(boolean(!values_equal(a, b)));
                }
                op::GREATER => binary_num!(>, boolean),
                op::LESS => binary_num!(<, boolean),
                op::GREATER_EQUAL => binary_num!(<, |lt: bool| boolean(!lt)),
                op::LESS_EQUAL => binary_num!(>, |gt: bool| boolean(!gt)),
                op::SUBTRACT => binary_num!(-, Value::number),
                op::MULTIPLY => binary_num!(*, Value::number),
                op::DIVIDE => binary_num!(/, Value::number),
                op::ADD => {
                    let len = sp;
                    let (a, b) = (self.stack[len - 2], self.stack[len - 1]);
                    if let (Some(x), Some(y)) = (a.as_number(), b.as_number()) {
                        sp = len - 1;
                        self.stack[len - 2] = Value::number(x + y);
                    } else {
                        match (a.unbox(), b.unbox()) {
                            (Unboxed::Ptr(x), Unboxed::Ptr(y))
                                if matches!(&*x, Obj::String(_))
                                    && matches!(&*y, Obj::String(_)) =>
                            {
                                let s = try_op!(self.concatenate(as_str(x), as_str(y)));
                                sp = len - 1;
                                self.stack[len - 2] = s;
                                poll!();
                            }
                            _ => fail!(Fault::Message(
                                "Operands must be two numbers or two strings."
                            )),
                        }
                    }
                }
                op::NOT => {
                    let v = pop!();
                    push!(boolean(is_falsey(v)));
                }
                op::NEGATE => match peek!(0).as_number() {
                    Some(n) => {
                        let top = sp - 1;
                        self.stack[top] = Value::number(-n);
                    }
                    None => fail!(Fault::Message("Operand must be a number.")),
                },
                op::PRINT => {
                    let v = pop!();
                    if let Err(e) = self.print(v) {
                        fail!(Fault::Output(e));
                    }
                }
                op::JUMP => {
                    let offset = short!();
                    f.ip += offset;
                }
                op::JUMP_IF_FALSE => {
                    let offset = short!();
                    if is_falsey(peek!(0)) {
                        f.ip += offset;
                    }
                }
                op::JUMP_IF_NOT_LESS => compare_jump!(|a, b| !(a < b)),
                op::JUMP_IF_NOT_GREATER => compare_jump!(|a, b| !(a > b)),
                op::JUMP_IF_GREATER => compare_jump!(|a, b| a > b),
                op::JUMP_IF_LESS => compare_jump!(|a, b| a < b),
                op::JUMP_IF_NOT_EQUAL => {
                    let offset = short!();
                    sp -= 2;
                    if !values_equal(self.stack[sp], self.stack[sp + 1]) {
                        f.ip += offset;
                    }
                }
                op::JUMP_IF_EQUAL => {
                    let offset = short!();
                    sp -= 2;
                    if values_equal(self.stack[sp], self.stack[sp + 1]) {
                        f.ip += offset;
                    }
                }
                op::POP_JUMP_IF_FALSE => {
                    let offset = short!();
                    if is_falsey(pop!()) {
                        f.ip += offset;
                    }
                }
                op::LOOP => {
                    let offset = short!();
                    f.ip -= offset;
                    poll!();
                }
                op::CALL => {
                    let argc = byte!() as usize;
                    sync!();
                    let callee = peek!(argc);
                    // Fast path: a closure called with the right number of arguments.
                    if let Some(o) = callee.as_gc()
                        && let Obj::Closure(c) = o.as_ref_gc()
                        && c.function.arity as usize == argc
                        && self.frames.len() < FRAMES_MAX
                    {
                        enter!(o, c, argc);
                    } else {
                        if let Err(e) = with_sp!(self.call_value(callee, argc)) {
                            fail!(e);
                        }
                        reload!();
                    }
                    poll!();
                }
                op::INVOKE => {
                    let name = name!();
                    let argc = byte!() as usize;
                    sync!();
                    // Fast path: a method (not a field) of an instance, right arity.
                    if let Some(Obj::Instance(instance)) =
                        peek!(argc).as_gc().map(|o| o.as_ref_gc())
                        && instance.fields.get(name).is_none()
                        && let Some(method) = as_class(instance.class).methods.get(name)
                        && let Some(m) = method.as_gc()
                        && let Obj::Closure(c) = m.as_ref_gc()
                        && c.function.arity as usize == argc
                        && self.frames.len() < FRAMES_MAX
                    {
                        enter!(m, c, argc);
                    } else {
                        if let Err(e) = with_sp!(self.invoke(name, argc)) {
                            fail!(e);
                        }
                        reload!();
                    }
                    poll!();
                }
                op::SUPER_INVOKE => {
                    let name = name!();
                    let argc = byte!() as usize;
                    sync!();
                    let superclass = pop!().as_gc().expect("superclass is a class");
                    if let Err(e) = with_sp!(self.invoke_from_class(superclass, name, argc)) {
                        fail!(e);
                    }
                    reload!();
                    poll!();
                }
                op::CLOSURE => {
                    let c = constants.get(byte!() as usize).as_gc().expect("a function");
                    let Obj::Function(function) = &*c else {
                        unreachable!("Closure's operand is a function")
                    };
                    let function = *function;
                    let n = function.upvalue_count as usize;
                    let upvalues = if n == 0 {
                        None
                    } else {
                        let ups = try_op!(GcArray::try_new(self.mc, n, None));
                        for i in 0..n {
                            let is_local = byte!() == 1;
                            let index = byte!() as usize;
                            let u = if is_local {
                                try_op!(self.capture_upvalue(f.base + index))
                            } else {
                                self.upvalue(f.closure, index)
                            };
                            ups.set(self.mc, i, Some(u));
                        }
                        Some(ups)
                    };
                    let closure = try_op!(self.alloc(Obj::Closure(Closure { function, upvalues })));
                    push!(Value::gc(closure));
                    poll!();
                }
                op::CLOSE_UPVALUE => {
                    self.close_upvalues(sp - 1);
                    sp -= 1;
                }
                op::RETURN => {
                    // No poll here: a program that runs on and on must loop or call, and both
                    // poll.
                    let result = pop!();
                    if self
                        .root
                        .open_upvalues
                        .get()
                        .is_some_and(|u| u.slot.get() >= f.base)
                    {
                        self.close_upvalues(f.base);
                    }
                    self.frames.pop();
                    let Some(&caller) = self.frames.last() else {
                        self.stack.clear();
                        self.sp = 0;
                        return Outcome::Done;
                    };
                    sp = f.base;
                    push!(result);
                    f = caller;
                    code = f.function.code.as_bytes();
                    constants = f.function.constants;
                }
                op::CLASS => {
                    let name = name!();
                    let class = try_op!(self.alloc(Obj::Class(Class {
                        name,
                        methods: Table::new(),
                    })));
                    push!(Value::gc(class));
                    poll!();
                }
                op::INHERIT => {
                    let Some(Obj::Class(superclass)) = peek!(1).as_gc().map(|o| o.as_ref_gc())
                    else {
                        fail!(Fault::Message("Superclass must be a class."));
                    };
                    let subclass = as_class(peek!(0).as_gc().expect("a class"));
                    try_op!(subclass.methods.add_all(self.mc, &superclass.methods));
                    sp -= 1;
                }
                op::METHOD => {
                    let name = name!();
                    let method = peek!(0);
                    let class = as_class(peek!(1).as_gc().expect("a class"));
                    try_op!(class.methods.set(self.mc, name, method));
                    sp -= 1;
                }
                b => unreachable!("invalid opcode {b}"),
            }
        }
    }
}
