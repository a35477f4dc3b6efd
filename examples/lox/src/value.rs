//! Lox values and heap objects.
//!
//! A [`Value`] is one word: gc-core's [`NanBox`], holding a number, an immediate (`nil`,
//! `true`, `false`) or a pointer to an [`Obj`]. Every object kind is a variant of `Obj`, so one
//! pointer type covers them all; variants are at most three words, so an object is one small
//! size-classed allocation. Mutable fields are `GcCell`s (the write barrier runs on every store)
//! and tables are GC arrays, so the collector sees every pointer the VM can reach.

use std::fmt::{self, Write as _};

use gc_core::{Gc, GcArray, GcBytes, GcCell, GcEphemeronTable, GcStr, NanBox, Trace, Unboxed};

use crate::table::Table;

/// A Lox value.
pub type Value<'gc> = NanBox<'gc, Obj<'gc>>;

pub const NIL: Value<'static> = NanBox::imm(0);
pub const FALSE: Value<'static> = NanBox::imm(1);
pub const TRUE: Value<'static> = NanBox::imm(2);

#[inline(always)]
pub fn nil<'gc>() -> Value<'gc> {
    NanBox::imm(0)
}

#[inline(always)]
pub fn boolean<'gc>(b: bool) -> Value<'gc> {
    NanBox::imm(if b { 2 } else { 1 })
}

#[inline(always)]
pub fn is_falsey(v: Value<'_>) -> bool {
    // nil and false are the immediates 0 and 1.
    v.as_imm().is_some_and(|i| i <= 1)
}

#[inline(always)]
pub fn is_nil(v: Value<'_>) -> bool {
    v.to_bits() == NIL.to_bits()
}

/// Lox `==`: numbers by value (so `nan != nan`), everything else by identity (strings are
/// interned, so identity is equality of contents).
#[inline(always)]
pub fn values_equal(a: Value<'_>, b: Value<'_>) -> bool {
    match (a.as_number(), b.as_number()) {
        (Some(x), Some(y)) => x == y,
        _ => a.to_bits() == b.to_bits(),
    }
}

/// The heap objects of the VM.
#[derive(Trace)]
pub enum Obj<'gc> {
    String(LoxStr<'gc>),
    Function(Gc<'gc, Function<'gc>>),
    Native(Native),
    Closure(Closure<'gc>),
    Class(Class<'gc>),
    Instance(Instance<'gc>),
    BoundMethod(BoundMethod<'gc>),
    /// A `WeakMap` (an extension of Lox, see the crate's README): object keys held weakly,
    /// each value alive only while its key is reachable otherwise.
    WeakMap(GcEphemeronTable<'gc, Obj<'gc>, Value<'gc>>),
}

/// An interned string: its characters live in a noscan `GcStr`; the hash is cached.
#[derive(Trace)]
pub struct LoxStr<'gc> {
    pub hash: u32,
    pub chars: GcStr<'gc>,
}

/// A compiled function (immutable once loaded).
#[derive(Trace)]
pub struct Function<'gc> {
    /// `None` for the top-level script.
    pub name: Option<Gc<'gc, Obj<'gc>>>,
    pub arity: u8,
    pub upvalue_count: u16,
    pub code: GcBytes<'gc>,
    /// Source line of each code byte, 4 little-endian bytes each.
    pub lines: GcBytes<'gc>,
    pub constants: GcArray<'gc, Value<'gc>>,
}

impl Function<'_> {
    pub fn line_at(&self, ip: usize) -> u32 {
        let b = self.lines.as_bytes();
        let i = ip.min(b.len() / 4 - 1) * 4;
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    pub fn name_str(&self) -> Option<&str> {
        self.name.map(|n| as_str(n))
    }
}

/// A built-in function.
#[derive(Trace, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Native {
    Clock,
    /// `WeakMap()`: a new, empty weak map.
    WeakMap,
}

#[derive(Trace)]
pub struct Closure<'gc> {
    pub function: Gc<'gc, Function<'gc>>,
    /// `None` when the function captures nothing (saves an allocation).
    pub upvalues: Option<GcArray<'gc, Option<Gc<'gc, Upvalue<'gc>>>>>,
}

/// Stack index of an upvalue that has been closed.
pub const CLOSED: usize = usize::MAX;

/// A captured variable: while open it names a slot of the VM stack; once closed it holds the
/// value itself. Open upvalues form a list sorted by slot, highest first, rooted in the VM.
#[derive(Trace)]
pub struct Upvalue<'gc> {
    pub slot: GcCell<'gc, usize>,
    pub closed: GcCell<'gc, Value<'gc>>,
    pub next: GcCell<'gc, Option<Gc<'gc, Upvalue<'gc>>>>,
}

#[derive(Trace)]
pub struct Class<'gc> {
    pub name: Gc<'gc, Obj<'gc>>,
    pub methods: Table<'gc>,
}

#[derive(Trace)]
pub struct Instance<'gc> {
    pub class: Gc<'gc, Obj<'gc>>,
    pub fields: Table<'gc>,
}

#[derive(Trace)]
pub struct BoundMethod<'gc> {
    pub receiver: Value<'gc>,
    /// A closure.
    pub method: Gc<'gc, Obj<'gc>>,
}

/// The characters of a string object. Panics if `o` is not a string (the compiler only emits
/// string constants where names are expected).
#[inline]
pub fn as_str<'gc>(o: Gc<'gc, Obj<'gc>>) -> &'gc str {
    match o.as_ref_gc() {
        Obj::String(s) => s.chars.as_str(),
        _ => unreachable!("expected a string object"),
    }
}

#[inline]
pub fn str_hash(o: Gc<'_, Obj<'_>>) -> u32 {
    match &*o {
        Obj::String(s) => s.hash,
        _ => unreachable!("expected a string object"),
    }
}

#[inline]
pub fn as_class<'gc>(o: Gc<'gc, Obj<'gc>>) -> &'gc Class<'gc> {
    match o.as_ref_gc() {
        Obj::Class(c) => c,
        _ => unreachable!("expected a class object"),
    }
}

#[inline]
pub fn as_closure<'gc>(o: Gc<'gc, Obj<'gc>>) -> &'gc Closure<'gc> {
    match o.as_ref_gc() {
        Obj::Closure(c) => c,
        _ => unreachable!("expected a closure object"),
    }
}

/// FNV-1a, as a string hash for interning and tables.
pub fn hash_bytes(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2166136261;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(16777619);
    }
    h
}

/// Format a number as C's `printf("%g")` does (what the reference implementation prints):
/// six significant digits, trailing zeros dropped, exponent form outside `1e-4 ..= 1e6`; a NaN
/// with its sign, as glibc prints it (`0/0` is the x86 default NaN, whose sign bit is set:
/// `-nan`).
pub fn fmt_number(out: &mut impl fmt::Write, n: f64) -> fmt::Result {
    if n.is_nan() {
        return out.write_str(if n.is_sign_negative() { "-nan" } else { "nan" });
    }
    if n.is_infinite() {
        return out.write_str(if n < 0.0 { "-inf" } else { "inf" });
    }
    if n == 0.0 {
        return out.write_str(if n.is_sign_negative() { "-0" } else { "0" });
    }
    const P: i32 = 6;
    // Round to P significant digits first: the exponent after rounding decides the form.
    let sci = format!("{:.*e}", (P - 1) as usize, n);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("integer exponent");
    if (-4..P).contains(&exp) {
        let decimals = (P - 1 - exp).max(0) as usize;
        let fixed = format!("{:.*}", decimals, n);
        out.write_str(strip_zeros(&fixed))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        write!(out, "{}e{}{:02}", strip_zeros(mantissa), sign, exp.abs())
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// `print`'s rendering of a value.
pub fn display(out: &mut String, v: Value<'_>) {
    // Writing to a String cannot fail.
    let _ = write_value(out, v);
}

fn write_value(out: &mut String, v: Value<'_>) -> fmt::Result {
    match v.unbox() {
        Unboxed::Number(n) => fmt_number(out, n),
        Unboxed::Imm(0) => out.write_str("nil"),
        Unboxed::Imm(1) => out.write_str("false"),
        Unboxed::Imm(2) => out.write_str("true"),
        Unboxed::Imm(i) => write!(out, "<imm {i}>"),
        Unboxed::Ptr(o) => match &*o {
            Obj::String(s) => out.write_str(s.chars.as_str()),
            Obj::Function(f) => write_function(out, f),
            Obj::Native(_) => out.write_str("<native fn>"),
            Obj::Closure(c) => write_function(out, &c.function),
            Obj::Class(c) => out.write_str(as_str(c.name)),
            Obj::Instance(i) => write!(out, "{} instance", as_str(as_class(i.class).name)),
            Obj::BoundMethod(b) => write_function(out, &as_closure(b.method).function),
            Obj::WeakMap(_) => out.write_str("<weakmap>"),
        },
    }
}

fn write_function(out: &mut String, f: &Function<'_>) -> fmt::Result {
    match f.name_str() {
        Some(name) => write!(out, "<fn {name}>"),
        None => out.write_str("<script>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(n: f64) -> String {
        let mut s = String::new();
        fmt_number(&mut s, n).unwrap();
        s
    }

    #[test]
    fn numbers_print_like_printf_g() {
        assert_eq!(g(123.0), "123");
        assert_eq!(g(-0.0), "-0");
        assert_eq!(g(123.456), "123.456");
        assert_eq!(g(-0.001), "-0.001");
        assert_eq!(g(0.1 + 0.2), "0.3");
        assert_eq!(g(1e6), "1e+06");
        assert_eq!(g(999999.0), "999999");
        assert_eq!(g(9999995.0), "1e+07");
        assert_eq!(g(123456789.0), "1.23457e+08");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.00001234), "1.234e-05");
        assert_eq!(g(1.0 / 3.0), "0.333333");
        assert_eq!(g(2.5e300), "2.5e+300");
        assert_eq!(g(f64::INFINITY), "inf");
        assert_eq!(g(f64::NAN), "nan");
        assert_eq!(g(-f64::NAN), "-nan");
    }

    #[test]
    fn truthiness_and_equality() {
        assert!(is_falsey(NIL) && is_falsey(FALSE) && !is_falsey(TRUE));
        assert!(!is_falsey(NanBox::number(0.0)));
        assert!(!values_equal(
            NanBox::number(f64::NAN),
            NanBox::number(f64::NAN)
        ));
        assert!(values_equal(NanBox::number(0.0), NanBox::number(-0.0)));
        assert!(!values_equal(NIL, FALSE));
    }
}
