//! An evaluator that yields: the pattern `docs/guide-evaluator.md` explains, as a small
//! bytecode machine. Its whole state lives where the collector can see it between scopes (the
//! operand stack and call frames on the mutator's root stack, the program counter in the root
//! object), so its dispatch loop can leave the mutation scope at any instruction boundary when
//! the collector asks (`should_yield`) and carry on in the next scope. Recursion in the
//! evaluated program is recursion on the root stack, not on the Rust stack ("stackless"), so
//! depth is bounded by memory, not by the thread's stack. A `Gc` instruction is an
//! interpreter's `(gc)` builtin: `Mutation::request_collect`, without leaving the loop.
//!
//! The program builds a list of N numbers recursively, calls `(gc)`, sums the list
//! recursively, and drops it; it checks the sum and prints what the collector did.
//!
//! Run: `cargo run --release --example evaluator [N]` (default 200 000).

use gc_core::{
    Config, Gc, GcCell, Heap, Mutation, Mutator, NanBox, RootStack, Rootable, Trace, Unboxed,
};

/// A cons cell of the evaluated language.
#[derive(Trace)]
struct Pair<'gc> {
    car: NanBox<'gc, Pair<'gc>>,
    cdr: NanBox<'gc, Pair<'gc>>,
}

type Value<'gc> = NanBox<'gc, Pair<'gc>>;

/// The immediate that is the language's `nil`.
fn nil<'gc>() -> Value<'gc> {
    NanBox::imm(0)
}

/// The machine's registers. The operand stack and the frames are on the root stack.
#[derive(Trace)]
struct Machine<'gc> {
    /// Index of the next instruction.
    pc: GcCell<'gc, u64>,
    /// Root-stack index of the current frame's first argument.
    base: GcCell<'gc, u64>,
    /// Instructions run, and scopes left because the collector asked.
    steps: GcCell<'gc, u64>,
    yields: GcCell<'gc, u64>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Num(f64),
    Nil,
    /// Argument `i` of the current frame.
    Arg(u64),
    Add,
    Sub,
    /// Pops b, a; pushes whether a < b (as 1 or 0).
    Lt,
    IsNil,
    Cons,
    Car,
    Cdr,
    JumpIfZero(u64),
    /// Call the function at an address with n arguments (on the stack).
    Call(u64, u64),
    /// Return the top of the stack to the caller.
    Ret,
    /// `(gc)`: start a collection now.
    Gc,
    Halt,
}

/// `main`, `build(k)` (the list k, k−1, …, 1) and `sum(list)`, each written recursively.
fn program(n: u64) -> Vec<Op> {
    use Op::*;
    const BUILD: u64 = 7;
    const SUM: u64 = 20;
    vec![
        // 0: main: sum(build(n)), with a (gc) between the two
        Num(n as f64),
        Call(BUILD, 1),
        Gc,
        Call(SUM, 1),
        Halt,
        Nil,
        Nil,
        // 7: build(k) = if k < 1 then nil else cons(k, build(k - 1))
        Arg(0),
        Num(1.0),
        Lt,
        JumpIfZero(13),
        Nil,
        Ret,
        // 13
        Arg(0),
        Arg(0),
        Num(1.0),
        Sub,
        Call(BUILD, 1),
        Cons,
        Ret,
        // 20: sum(l) = if nil?(l) then 0 else car(l) + sum(cdr(l))
        Arg(0),
        IsNil,
        JumpIfZero(25),
        Num(0.0),
        Ret,
        // 25
        Arg(0),
        Car,
        Arg(0),
        Cdr,
        Call(SUM, 1),
        Add,
        Ret,
    ]
}

/// Run from the saved registers until the program halts (true) or the collector asks this
/// scope to end (false: the registers are saved, everything else already lives on the root
/// stack). Checking `should_yield` costs one relaxed load: every instruction can afford it.
fn run<'gc>(
    mc: &Mutation<'gc>,
    m: &Machine<'gc>,
    stack: &RootStack<'gc, Value<'gc>>,
    code: &[Op],
) -> bool {
    let (mut pc, mut base) = (m.pc.get() as usize, m.base.get() as usize);
    let mut steps = 0;
    let num = |v: Value<'gc>| v.as_number().expect("a number");
    let pop = || stack.pop().expect("an operand");
    let halted = loop {
        if mc.should_yield() {
            m.yields.set(mc, m.yields.get() + 1);
            break false;
        }
        steps += 1;
        let op = code[pc];
        pc += 1;
        match op {
            Op::Num(x) => stack.push(NanBox::number(x)),
            Op::Nil => stack.push(nil()),
            Op::Arg(i) => stack.push(stack.get(base + i as usize).expect("an argument")),
            Op::Add | Op::Sub | Op::Lt => {
                let (b, a) = (num(pop()), num(pop()));
                stack.push(NanBox::number(match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    _ => (a < b) as u8 as f64,
                }));
            }
            Op::IsNil => {
                let v = pop();
                stack.push(NanBox::number(
                    matches!(v.unbox(), Unboxed::Imm(0)) as u8 as f64
                ));
            }
            Op::Cons => {
                // Both operands stay on the (rooted) stack until the pair holds them.
                let n = stack.len();
                let (car, cdr) = (stack.get(n - 2).unwrap(), stack.get(n - 1).unwrap());
                let p = Gc::new(mc, Pair { car, cdr });
                stack.truncate(n - 2);
                stack.push(NanBox::gc(p));
            }
            Op::Car | Op::Cdr => {
                let Unboxed::Ptr(p) = pop().unbox() else {
                    panic!("car/cdr of a non-pair")
                };
                stack.push(if matches!(op, Op::Car) { p.car } else { p.cdr });
            }
            Op::JumpIfZero(to) => {
                if num(pop()) == 0.0 {
                    pc = to as usize;
                }
            }
            Op::Call(to, nargs) => {
                // A frame is two numbers under the arguments' copy: return address, old base.
                let args = stack.len() - nargs as usize;
                let saved: Vec<Value<'gc>> =
                    (args..stack.len()).map(|i| stack.get(i).unwrap()).collect();
                stack.truncate(args);
                stack.push(NanBox::number(pc as f64));
                stack.push(NanBox::number(base as f64));
                base = stack.len();
                for v in saved {
                    stack.push(v);
                }
                pc = to as usize;
            }
            Op::Ret => {
                let result = pop();
                stack.truncate(base);
                base = num(pop()) as usize;
                pc = num(pop()) as usize;
                stack.push(result);
            }
            Op::Gc => mc.request_collect(),
            Op::Halt => break true,
        }
    };
    m.pc.set(mc, pc as u64);
    m.base.set(mc, base as u64);
    m.steps.set(mc, m.steps.get() + steps);
    halted
}

type Root = Rootable!['gc => Machine<'gc>];
type Stack = Rootable!['gc => Value<'gc>];

/// A yielding bytecode evaluator on the collector: builds, sums and drops a list of N numbers.
#[derive(clap::Parser)]
#[command(name = "evaluator")]
struct Args {
    /// Length of the list.
    #[arg(default_value_t = 200_000)]
    n: u64,
}

fn main() {
    let Args { n } = clap::Parser::parse();
    let heap = Heap::new(Config::from_env().unwrap_or_else(|e| {
        eprintln!("evaluator: {e}");
        std::process::exit(2)
    }))
    .unwrap_or_else(|e| {
        eprintln!("evaluator: {e}");
        std::process::exit(2)
    });
    let result = evaluate(&heap, n);
    let want = (n * (n + 1) / 2) as f64;
    assert_eq!(result.sum, want, "wrong sum");
    let s = heap.stats();
    println!(
        "sum of 1..={n} = {}: {} instructions in {} scopes; {} cycles ({} forced by (gc)), \
         longest wait for a scope {} µs, heap goal {} MiB",
        result.sum,
        result.steps,
        result.yields + 1,
        s.gc_cycles,
        heap.metrics()
            .u64("/gc/cycles/forced:gc-cycles")
            .unwrap_or(0),
        s.scope_wait_max.as_micros(),
        s.heap_goal >> 20
    );
}

struct Outcome {
    sum: f64,
    steps: u64,
    yields: u64,
}

/// Run the program to its end, re-entering a scope each time the collector asked the last one
/// to end.
fn evaluate(heap: &Heap, n: u64) -> Outcome {
    let code = program(n);
    let mut m: Mutator<Root, Stack> = heap.mutator_with_stack(|_| Machine {
        pc: GcCell::new(0),
        base: GcCell::new(0),
        steps: GcCell::new(0),
        yields: GcCell::new(0),
    });
    while !m.mutate_with_stack(|mc, machine, stack| run(mc, machine, stack, &code)) {}
    m.mutate_with_stack(|_, machine, stack| Outcome {
        sum: stack.last().and_then(|v| v.as_number()).expect("a result"),
        steps: machine.steps.get(),
        yields: machine.yields.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The program's answer survives every collection it yields to, in both verify modes (freed
    /// memory poisoned), and its `(gc)` runs a forced cycle.
    #[test]
    fn the_evaluator_yields_and_computes_the_sum() {
        for verify in [false, true] {
            let heap = Heap::new(Config::default().verify(verify)).unwrap();
            let n = 20_000;
            let r = evaluate(&heap, n);
            assert_eq!(r.sum, (n * (n + 1) / 2) as f64);
            assert!(
                r.yields > 0,
                "never yielded: the collector never ran inside the program"
            );
            assert!(heap.metrics().u64("/gc/cycles/forced:gc-cycles").unwrap() >= 1);
        }
    }
}
