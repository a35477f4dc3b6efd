//! `#[derive(Trace)]` for gc-core.
//!
//! Use it through gc-core (`use gc_core::Trace;`), which re-exports it beside the trait. The
//! generated code names everything by absolute path (`::gc_core::Trace`, `::gc_core::Tracer`),
//! so it works in any crate that depends on gc-core, and inside gc-core itself (which declares
//! `extern crate self as gc_core;`).
//!
//! # What it generates
//!
//! For a struct or an enum (any field kind, any generics: lifetimes such as `'gc`, type
//! parameters, const parameters, where clauses) the derive writes
//!
//! ```text
//! unsafe impl<'gc, T: Clone + ::gc_core::Trace> ::gc_core::Trace for Node<'gc, T>
//! where
//!     /* the type's own where clause */,
//!     SkippedFieldType: 'static,              // one per #[gc(skip)] field
//! {
//!     const NEEDS_TRACE: bool = {
//!         // #[gc(unsafe_drop)] only: the type must be `gc_core::UnsafeDrop`
//!         <Self as ::gc_core::Trace>::__DERIVE_KIT.unsafe_drop::<Self>();
//!         false
//!             || <FieldType1 as ::gc_core::Trace>::NEEDS_TRACE
//!             || <FieldType2 as ::gc_core::Trace>::NEEDS_TRACE   // traced fields only
//!             || true                           // a #[gc(recursive)] field (also its words: None)
//!     };
//!
//!     // struct only (an enum, or a struct with a `?Sized` parameter or an unsized tail, keeps
//!     // the trait's default: `None` unless it holds no `Gc`)
//!     const POINTER_WORDS: ::core::option::Option<u64> = {
//!         let __gc_words = ::core::option::Option::Some(0u64);
//!         let __gc_words = <Self as ::gc_core::Trace>::__DERIVE_KIT.add_field(
//!             __gc_words,
//!             <FieldType1 as ::gc_core::Trace>::POINTER_WORDS,
//!             ::core::mem::offset_of!(Self, field1),
//!         );
//!         // ... one per traced field
//!         __gc_words
//!     };
//!
//!     #[inline]
//!     fn trace(&self, __gc_tracer: &mut ::gc_core::Tracer) {
//!         // never called: compiles only for the item as the derive read it (see "Soundness")
//!         let _ = |__gc_self: &Self| {
//!             let Self { field1: _, field2: _, } = __gc_self;   // every field, skipped too
//!             let _: *const FieldType1 = ::core::ptr::addr_of!(__gc_self.field1);
//!             // ... one per field; an enum: `match __gc_self { Node::V { a: __gc_p0, } => { ... } }`
//!         };
//!         // struct: every traced field, in declaration order
//!         <FieldType1 as ::gc_core::Trace>::trace(&self.field1, __gc_tracer);
//!         <FieldType2 as ::gc_core::Trace>::trace(&self.field2, __gc_tracer);
//!         // enum: one arm per variant
//!         // match self { Node::V { a: __gc_f0, .. } => { /* trace __gc_f0 */ } ... }
//!     }
//! }
//!
//! // unless #[gc(unsafe_drop)]: make `impl Drop for Node` a compile error
//! const _: () = {
//!     trait __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc {}
//!     impl<T: ::core::ops::Drop + ?Sized> __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc for T {}
//!     impl<'gc, T: Clone> __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc for Node<'gc, T> {}
//! };
//! ```
//!
//! * Every type parameter gets a `::gc_core::Trace` bound, and so does every associated type of
//!   one that a traced field names (`F::Repr`, `<F as Family>::Repr`).
//! * `NEEDS_TRACE` is the OR of the traced fields' `NEEDS_TRACE`. A type none of whose traced
//!   fields can hold a `Gc` (only integers, `String`s, …) therefore gets `NEEDS_TRACE == false`:
//!   its objects are allocated **noscan** and the marker never reads them. A field that holds
//!   the type itself outside a `Gc` (`Box<Self>`, `Vec<Expr<'gc>>`: a syntax tree, a JSON value)
//!   enters as `<Self as ::gc_core::Trace>::__DERIVE_KIT.needs_trace_holding_self::<Self,
//!   FieldType>()`: the same container with the type read as `()`, the least fixpoint (the
//!   type needs tracing exactly when some field does other than through itself), since its own
//!   `NEEDS_TRACE` is what is being computed. Only fields written as one of those containers of
//!   the type itself (`Box<M>`, `Vec<M>`, `VecDeque<M>`, `Box<[M]>`, `Option<Box<M>>`,
//!   `Option<Vec<M>>`, `Vec<(K, M)>`, `Vec<Vec<M>>`, `Vec<Box<M>>`, `Vec<Option<Box<M>>>`,
//!   `HashMap<K, M>`, `BTreeMap<K, M>`, `HashSet<M>`, `BTreeSet<M>`, with `M` the type
//!   with its own parameters) are read this way, and the kit's bound (gc-core's sealed
//!   `HoldsSelf`) checks the field's real type against them, so a look-alike is a compile
//!   error, never a wrong answer. Any other field that names the type outside a `Gc`
//!   (`[Option<Box<Self>>; 2]`, `Result<Box<Self>, E>`, a tuple, `GcRefCell<Vec<Self>>`, another
//!   instance of it, a container of your own) enters as `true`, with no pointer words: its own
//!   `NEEDS_TRACE` would ask for the type's, a cycle, and tracing is never wrong (it may scan
//!   objects that hold no `Gc`). A field marked `#[gc(recursive)]` enters as `true` too, with no
//!   pointer words, whatever its type. Every other field keeps its own `NEEDS_TRACE`. Two types
//!   that hold each other outside a `Gc` (`Expr` holds a `Vec<Stmt>`, `Stmt` a `Box<Expr>`), or
//!   a type naming itself behind an alias or a macro, are a cycle the compiler reports (E0391
//!   on `NEEDS_TRACE`) unless a field on the cycle is `#[gc(recursive)]`.
//! * `POINTER_WORDS` (structs): the traced fields' pointer words, each field's shifted to its
//!   offset; `None` as soon as one field's is `None` or does not fit (an offset that is not a
//!   multiple of 8, a word past the 64th), or holds the type itself outside a `Gc`, or is
//!   `#[gc(recursive)]`. The marker
//!   then reads those words instead of calling `trace`. Not generated for a struct with a
//!   `?Sized` type parameter or an unsized last field written as a slice, `str` or `dyn Trait`
//!   (`offset_of!` needs sized fields), which keeps the trait's default.
//! * `trace` is called through `<FieldType as Trace>`, spanned at the field's type, so a field
//!   whose type does not implement `Trace` is reported at that field:
//!   ``the trait bound `RefCell<Vec<Gc<'gc, u32>>>: Trace` is not satisfied``.
//!
//! # Attributes
//!
//! All attributes live in the `gc` namespace.
//!
//! * `#[gc(skip)]` on a field (of a struct or of an enum variant): the field is not traced and
//!   contributes nothing to `NEEDS_TRACE`. The generated impl requires the field's type to be
//!   `'static` (`FieldType: 'static` in its where clause). A `Gc<'gc, _>` is never `'static`
//!   for the `'gc` of a real mutation scope, so a skipped field cannot hide a GC pointer. A
//!   skipped field whose type names one of the type's lifetimes is rejected at the field; one
//!   whose type parameter holds a `Gc` makes the type not implement `Trace` where it is used. A
//!   traced `Cell`, `RefCell`, `UnsafeCell`, `Mutex` or `RwLock` field is rejected at the field
//!   with what to use instead (`GcCell`, `GcVec`, `GcRefCell`, …). Use `skip` for
//!   pointer-free data the collector need not see, in particular types gc-core deliberately does
//!   not implement `Trace` for (`Mutex<String>`, `Cell<u64>`, a foreign type, …).
//! * `#[gc(recursive)]` on a field: the field's type holds the type being derived (through
//!   another type that holds this one outside a `Gc`, as an interpreter's statements and
//!   expressions hold each other, or behind a type alias or a macro), which the derive cannot
//!   see. The field is traced as any other, and counts as needing tracing, with no pointer
//!   words, without the derive asking for its type's constants, which would ask for this type's
//!   own (the compiler's cycle error E0391 on `NEEDS_TRACE`). Mark one field on every such
//!   cycle. Never unsound: at most objects that hold no `Gc` are scanned. Not together with
//!   `skip`.
//! * `#[gc(unsafe_drop)]` on the type: allow the type to implement `Drop` (see below). The type
//!   must then also carry the promise that its `Drop` never dereferences a `Gc` (nor a
//!   `GcCell`, `GcWeak`, … reachable from the value), an `unsafe impl gc_core::UnsafeDrop for
//!   Type {}` written beside it: the derive checks that the impl exists, so the promise is made
//!   with the `unsafe` keyword, where `#![forbid(unsafe_code)]` and a reviewer see it.
//!
//! Any other key in `#[gc(...)]`, a `#[gc(...)]` on an enum variant, and deriving for a `union`
//! are compile errors.
//!
//! # Soundness
//!
//! `Trace` is an `unsafe trait`: a `trace` that misses a `Gc` lets the collector free a live
//! object. The generated impl is sound because:
//!
//! * **Every field is traced**, except those marked `#[gc(skip)]`, and those must be `'static`,
//!   which no type holding a `Gc<'gc, _>` is. `NEEDS_TRACE` is `false` only if every traced
//!   field's own impl says `false`, so a noscan object never holds a `Gc`.
//! * **`POINTER_WORDS` is exactly what `trace` reports.** `trace` reports each traced field
//!   through the field type's own impl, whose `POINTER_WORDS` promise covers that field at its
//!   offset (the `offset_of!` of the field in this very type); skipped fields are neither traced
//!   nor in the mask; a field with no promise (`None`) makes the whole type `None`.
//! * **Fields are only read through their own `Trace` impls.** gc-core has no impl for types
//!   with unsynchronised interior mutability (`Cell`, `RefCell`, `Mutex`, …): the marker runs
//!   concurrently with mutators, and walking a `RefCell<Vec<Gc<_>>>` while a mutator pushes to
//!   it would read a freed buffer. Such a field is a compile error, not a silent hazard;
//!   `GcRefCell` is the cell whose borrow flags the marker takes part in.
//! * **No `Drop` without opt-in.** The sweeper frees every unreachable object of a cycle in the
//!   same sweep, in no particular order, and runs each one's drop glue as it goes. A `Drop` impl
//!   on a traced type may therefore run after the objects its `Gc` fields point to have already
//!   been freed (or reused): dereferencing one is a use-after-free. So unless the type says
//!   `#[gc(unsafe_drop)]`, the derive adds a blanket `impl<T: Drop> __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc for T`
//!   and an `impl __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc for YourType`. They conflict (error E0119) exactly when
//!   `YourType: Drop`. Because Rust requires a `Drop` impl to cover every instantiation of the
//!   type (E0367), and only the type's own crate may write it, the coherence checker can prove
//!   that a generic type without `Drop` does not overlap, so the check compiles for such types.
//!   Fields' drop glue is not affected: a field type that derives `Trace` is checked itself, and
//!   one with a hand-written `unsafe impl Trace` carries its own obligation.
//!
//! * **The impl is for the item the derive read.** An attribute macro written below
//!   `#[derive(Trace)]` expands after it and may change the item: add a field (a `Gc` that
//!   `trace` would not report, in an object the constants call noscan), change a field's type (a
//!   `Gc` read through `Deref` as the type it replaced), add a variant. So `trace` holds a
//!   closure, never called, that compiles only for the item as read: a pattern naming every
//!   field of the struct (of every variant, with no wildcard arm), without `..`, and each
//!   field's type pinned through `addr_of!` to a raw pointer, which no `Deref` coerces. Any
//!   change is a compile error at the derive.
//!
//! * **Paths.** The generated code names items by absolute paths (`::gc_core::…`, `::core::…`),
//!   and those resolve in the crate that uses the derive, which can rebind them: a crate that
//!   declares `extern crate self as gc_core;` and re-exports the real `Trace` and `Tracer` gets
//!   gc-core's trait under `::gc_core::Trace` and its own items under every other
//!   `::gc_core::` path. So every value the points above rely on is reached through the trait
//!   being implemented: the fields' `NEEDS_TRACE` and `POINTER_WORDS` are associated items of
//!   `<FieldType as ::gc_core::Trace>`, and the helper that adds a field's words to the mask is
//!   an inherent method of a value the trait itself provides
//!   (`<Self as ::gc_core::Trace>::__DERIVE_KIT`), which no other crate can replace. Where
//!   `::gc_core::Trace` is not gc-core's trait the impl is not gc-core's either, and no gc-core
//!   heap can hold the type. `::core` is trusted to be the standard library's: the field
//!   offsets (`offset_of!`) and the `Drop` check read it, and a crate that rebinds `core`
//!   itself (`extern crate self as core;`, or a dependency renamed `core` in its
//!   `Cargo.toml`) can defeat both; no path a derive can write avoids that. Nor is a field type written as a macro call that expands differently each time it
//!   is named defended against: the impl names each field's type again.
//!
//! The proc macro itself contains no `unsafe` code; the `unsafe impl` it emits is justified by
//! the points above.

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Fields, Ident, Member, Type, parse_macro_input, parse_quote,
};

/// Derives `gc_core::Trace` for a struct or an enum. The generated code, the attributes and
/// the soundness argument are in the documentation of the `gc-derive` crate (its sections
/// "What it generates", "Attributes" and "Soundness"), not of gc-core, which re-exports this
/// macro.
///
/// * `#[gc(skip)]` on a field: do not trace it; the impl then requires its type to be
///   `'static`, so a skipped field can never hide a `Gc<'gc, _>`.
/// * `#[gc(recursive)]` on a field whose type holds this type (types that hold each other
///   outside a `Gc`, or the type behind an alias): trace it without asking its type's
///   constants, which would be a compile-time cycle (E0391).
/// * `#[gc(unsafe_drop)]` on the type: allow `impl Drop` for it, with the promise
///   `unsafe impl gc_core::UnsafeDrop for Type {}` beside it.
///
/// Without `#[gc(unsafe_drop)]` an `impl Drop` for the type is a compile error: the sweeper
/// frees all unreachable objects of a sweep in arbitrary order and runs their drop glue as it
/// goes, so a `Drop` impl could dereference a `Gc` whose target was already freed in the same
/// sweep. With the attribute and the `unsafe impl` you promise your `Drop` never dereferences a
/// `Gc`.
#[proc_macro_derive(Trace, attributes(gc))]
pub fn derive_trace(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// Options from `#[gc(...)]` on the type.
#[derive(Default)]
struct ContainerOpts {
    unsafe_drop: bool,
}

/// One field of a struct or variant.
struct FieldInfo<'a> {
    /// `name` or `0`, usable as `self.#member` and in a braced pattern `{ #member: x }`.
    member: Member,
    ty: &'a Type,
    skip: bool,
    /// `#[gc(recursive)]`: traced, without asking the field type's constants (see
    /// [`parse_field_attrs`]).
    recursive: bool,
}

/// Collects errors so that all bad attributes are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn gc_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("gc"))
}

fn parse_container_opts(attrs: &[Attribute], errors: &mut Errors) -> ContainerOpts {
    let mut opts = ContainerOpts::default();
    for attr in gc_attrs(attrs) {
        let r = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("unsafe_drop") {
                opts.unsafe_drop = true;
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown `gc` attribute `{}` on a type; expected `unsafe_drop`",
                    path_text(&meta.path)
                )))
            }
        });
        if let Err(e) = r {
            errors.push(e);
        }
    }
    opts
}

/// A field's `#[gc(...)]` keys: `skip`, and `recursive` (the field's type holds the type being
/// derived, in a way [`holds_self`] and [`mentions_self`] do not see: through another type that
/// holds this one outside a `Gc`, a type alias or a macro). A recursive field is traced and
/// makes the type count as needing tracing, without pointer words, as a field
/// [`mentions_self`] finds does: the derive never asks for the field type's `NEEDS_TRACE` or
/// `POINTER_WORDS`, which would depend on this type's own, being computed (the compiler's
/// cycle error E0391). That is never wrong; at most objects that hold no `Gc` are scanned.
fn parse_field_attrs(field: &syn::Field, errors: &mut Errors) -> (bool, bool) {
    let (mut skip, mut recursive) = (false, false);
    for attr in gc_attrs(&field.attrs) {
        let r = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else if meta.path.is_ident("recursive") {
                recursive = true;
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown `gc` attribute `{}` on a field; expected `skip` or `recursive`",
                    path_text(&meta.path)
                )))
            }
        });
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if skip && recursive {
        errors.push(syn::Error::new(
            field.ty.span(),
            "`#[gc(skip)]` and `#[gc(recursive)]` on one field: a skipped field is not traced, \
             a recursive one is; keep one",
        ));
    }
    (skip, recursive)
}

fn path_text(path: &syn::Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

fn field_infos<'a>(
    fields: &'a Fields,
    lifetimes: &[&syn::Lifetime],
    errors: &mut Errors,
) -> Vec<FieldInfo<'a>> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (skip, recursive) = parse_field_attrs(f, errors);
            check_field(f, skip, lifetimes, errors);
            FieldInfo {
                member: match &f.ident {
                    Some(id) => Member::Named(id.clone()),
                    None => Member::Unnamed(syn::Index {
                        index: i as u32,
                        span: f.ty.span(),
                    }),
                },
                ty: &f.ty,
                skip,
                recursive,
            }
        })
        .collect()
}

/// Errors at the field for the two mistakes the type system would report far from it, or
/// without saying what to do instead:
///
/// * `#[gc(skip)]` on a field whose type names one of the type's lifetime parameters (the
///   `'gc` of a `Gc`): the impl's `'static` bound would reject it, but only where the type is
///   used, as a lifetime error. (The bound stays: it also catches a lifetime that comes in
///   through a type parameter.)
/// * a traced field of type `Cell<T>`, `RefCell<T>`, `UnsafeCell<T>`, `Mutex<T>` or
///   `RwLock<T>` (one type argument, as the standard library's): not `Trace`, and the fix is a
///   gc-core cell, not an impl.
fn check_field(f: &syn::Field, skip: bool, lifetimes: &[&syn::Lifetime], errors: &mut Errors) {
    if skip {
        if let Some(lt) = mentioned_lifetime(&f.ty, lifetimes) {
            errors.push(syn::Error::new(
                f.ty.span(),
                format!(
                    "`#[gc(skip)]` on a field whose type mentions `{lt}`: a skipped field is not \
                     traced, so it may not hold a `Gc` (it must be `'static`); remove \
                     `#[gc(skip)]` to trace it"
                ),
            ));
        }
        return;
    }
    if let Type::Path(p) = &f.ty
        && let Some(last) = p.path.segments.last()
        && is_one_type_argument(&last.arguments)
    {
        let name = last.ident.to_string();
        if matches!(
            name.as_str(),
            "Cell" | "RefCell" | "UnsafeCell" | "Mutex" | "RwLock"
        ) {
            errors.push(syn::Error::new(
                f.ty.span(),
                format!(
                    "a `{name}` field cannot be traced: the marker reads heap objects while \
                     mutators run. Use `GcCell<'gc, T>` for a mutable `Gc`, number or `bool` \
                     (its `set` has the write barrier), `GcVec`/`GcArray` for a mutable \
                     sequence, `GcRefCell<'gc, T>` for a collection or other value changed in \
                     place (`borrow_mut(mc)` runs the barrier); or, for a `'static` value \
                     holding no `Gc` behind a `Sync` lock, `#[gc(skip)]`"
                ),
            ));
        }
    }
}

/// Whether a path segment's arguments are one type and nothing else, as those of the standard
/// library's `Cell<T>`, `Mutex<T>`, …: a type of the user's own with one of those names and a
/// lifetime (`Cell<'gc>`) or other arguments is not taken for them.
fn is_one_type_argument(args: &syn::PathArguments) -> bool {
    match args {
        syn::PathArguments::AngleBracketed(a) => {
            a.args.len() == 1 && matches!(a.args[0], syn::GenericArgument::Type(_))
        }
        _ => false,
    }
}

/// The first of `lifetimes` named anywhere in `ty`.
fn mentioned_lifetime(ty: &Type, lifetimes: &[&syn::Lifetime]) -> Option<String> {
    fn walk(tokens: TokenStream, lifetimes: &[&syn::Lifetime]) -> Option<String> {
        let mut it = tokens.into_iter().peekable();
        while let Some(tt) = it.next() {
            match tt {
                proc_macro2::TokenTree::Punct(p) if p.as_char() == '\'' => {
                    if let Some(proc_macro2::TokenTree::Ident(id)) = it.peek()
                        && lifetimes.iter().any(|l| l.ident == *id)
                    {
                        return Some(format!("'{id}"));
                    }
                }
                proc_macro2::TokenTree::Group(g) => {
                    if let Some(l) = walk(g.stream(), lifetimes) {
                        return Some(l);
                    }
                }
                _ => {}
            }
        }
        None
    }
    walk(quote!(#ty), lifetimes)
}

/// `<#ty as ::gc_core::Trace>::trace(#arg, #tracer);`, spanned at the field's type so that an
/// unsatisfied `Trace` bound is reported there. `arg` and `tracer` keep their own spans, so
/// resolving `self` and the locals never depends on the hygiene of the type's tokens (which may
/// come from elsewhere, e.g. a `macro_rules!` fragment).
fn trace_call(ty: &Type, arg: TokenStream, tracer: &Ident) -> TokenStream {
    quote_spanned! {ty.span()=>
        <#ty as ::gc_core::Trace>::trace(#arg, #tracer);
    }
}

/// The expansion of `#[derive(Trace)]`, separate from the proc-macro entry point so that unit
/// tests can call it.
fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    if let Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span,
            "Trace cannot be derived for unions (the collector cannot know which field is \
             initialised); implement `Trace` by hand for a wrapper that knows",
        ));
    }

    let mut errors = Errors::default();
    let opts = parse_container_opts(&input.attrs, &mut errors);
    let lifetimes: Vec<&syn::Lifetime> = input.generics.lifetimes().map(|l| &l.lifetime).collect();
    let name = &input.ident;
    // The type as its fields name it (`Node<'gc, T>`), as text: see `holds_self`.
    let me = {
        let (_, ty_generics, _) = input.generics.split_for_impl();
        quote!(#name #ty_generics).to_string()
    };
    // The expansion's own bindings have names no one writes (`__gc_…`): a constant or unit
    // struct named `words` or `tracer` where the type is defined would turn them into patterns
    // (items resolve at the call site, whatever the span).
    let tracer = Ident::new("__gc_tracer", Span::mixed_site());
    let words = Ident::new("__gc_words", Span::mixed_site());

    // Types of the traced fields (for NEEDS_TRACE; with whether the field is
    // `#[gc(recursive)]`) and of the skipped ones (for `'static`).
    let mut traced: Vec<(&Type, bool)> = Vec::new();
    let mut skipped: Vec<&Type> = Vec::new();
    // A struct's pointer words (`POINTER_WORDS`): its traced fields' at their offsets.
    let mut pointer_words = TokenStream::new();

    // The shape the impl was made for (see `shape_check`): one pattern per struct or variant
    // naming every field, and each field's type pinned.
    let shape_self = Ident::new("__gc_self", Span::mixed_site());
    let shape;

    let body = match &input.data {
        Data::Struct(s) => {
            let fields = field_infos(&s.fields, &lifetimes, &mut errors);
            let members = fields.iter().map(|f| &f.member);
            let pins = fields.iter().map(|f| {
                let (ty, member) = (f.ty, &f.member);
                quote!(let _: *const #ty = ::core::ptr::addr_of!(#shape_self.#member);)
            });
            shape = quote! {
                let Self { #(#members: _,)* } = #shape_self;
                #(#pins)*
            };
            let mut calls = Vec::new();
            let mut adds = Vec::new();
            for f in &fields {
                if f.skip {
                    skipped.push(f.ty);
                    continue;
                }
                traced.push((f.ty, f.recursive));
                let (ty, member) = (f.ty, &f.member);
                calls.push(trace_call(ty, quote!(&self.#member), &tracer));
                // Spanned at the field's type, as `NEEDS_TRACE`'s terms are, so that an error
                // in the type is reported once, at the field.
                // A field that holds the type itself outside a `Gc` is traced by `trace`: its
                // words would be read from the type's own constants (see `holds_self`).
                let field_words = if f.recursive || holds_self(ty, &me) || mentions_self(ty, name) {
                    quote!(::core::option::Option::None::<u64>)
                } else {
                    quote_spanned! {ty.span()=> <#ty as ::gc_core::Trace>::POINTER_WORDS }
                };
                // The helper is reached through the trait, not by a path of its own: see
                // "Paths" in the crate docs.
                adds.push(quote! {
                    let #words = <Self as ::gc_core::Trace>::__DERIVE_KIT.add_field(
                        #words,
                        #field_words,
                        ::core::mem::offset_of!(Self, #member),
                    );
                });
            }
            // `offset_of!` needs every field sized: a type with a `?Sized` parameter (an
            // unsized tail) keeps the trait's default and is traced by its `trace`.
            pointer_words = if has_maybe_sized_param(&input.generics)
                || fields.last().is_some_and(|f| is_unsized(f.ty))
            {
                TokenStream::new()
            } else {
                quote! {
                    const POINTER_WORDS: ::core::option::Option<u64> = {
                        let #words = ::core::option::Option::Some(0u64);
                        #(#adds)*
                        #words
                    };
                }
            };
            quote!(#(#calls)*)
        }
        Data::Enum(e) => {
            let mut arms = Vec::new();
            let mut shape_arms = Vec::new();
            for v in &e.variants {
                for attr in gc_attrs(&v.attrs) {
                    errors.push(syn::Error::new_spanned(
                        attr,
                        "`gc` attributes are not supported on enum variants; put `#[gc(skip)]` \
                         on the variant's fields",
                    ));
                }
                let vname = &v.ident;
                let fields = field_infos(&v.fields, &lifetimes, &mut errors);
                let (shape_binds, shape_pins): (Vec<_>, Vec<_>) = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let b = format_ident!("__gc_p{}", i, span = Span::mixed_site());
                        let (ty, member) = (f.ty, &f.member);
                        (
                            quote!(#member: #b),
                            quote!(let _: *const #ty = ::core::ptr::addr_of!(*#b);),
                        )
                    })
                    .unzip();
                shape_arms.push(quote! {
                    #name::#vname { #(#shape_binds,)* } => { #(#shape_pins)* }
                });
                let mut binds = Vec::new();
                let mut calls = Vec::new();
                for (i, f) in fields.iter().enumerate() {
                    if f.skip {
                        skipped.push(f.ty);
                        continue;
                    }
                    traced.push((f.ty, f.recursive));
                    // Bind to fresh names: a field called `tracer` must not shadow the argument.
                    let b = format_ident!("__gc_f{}", i, span = Span::mixed_site());
                    let member = &f.member;
                    binds.push(quote!(#member: #b));
                    calls.push(trace_call(f.ty, quote!(#b), &tracer));
                }
                // `{ .. }` patterns work for named, tuple and unit variants alike.
                arms.push(quote! {
                    #name::#vname { #(#binds,)* .. } => { #(#calls)* }
                });
            }
            shape = if e.variants.is_empty() {
                quote!(match *#shape_self {})
            } else {
                quote!(match #shape_self { #(#shape_arms)* })
            };
            if traced.is_empty() {
                // Nothing to trace in any variant (this also covers the empty enum).
                quote!()
            } else {
                quote!(match self { #(#arms)* })
            }
        }
        Data::Union(_) => unreachable!("rejected above"),
    };
    errors.finish()?;

    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(parse_quote!(::gc_core::Trace));
    }
    if !skipped.is_empty() {
        let where_clause = generics.make_where_clause();
        for ty in &skipped {
            where_clause.predicates.push(static_bound(ty));
        }
    }
    // A traced field of an associated type of a parameter (`F::Repr`, `<F as Family>::Repr`) is
    // traced by that type's impl: the bound is the parameter's, not one its author can add.
    let params: Vec<&Ident> = input.generics.type_params().map(|t| &t.ident).collect();
    let mut projections: Vec<Type> = Vec::new();
    for (ty, _) in &traced {
        collect_projections(ty, &params, &mut projections);
    }
    if !projections.is_empty() {
        let where_clause = generics.make_where_clause();
        for ty in &projections {
            where_clause
                .predicates
                .push(parse_quote!(#ty: ::gc_core::Trace));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let needs = traced.iter().map(|&(ty, recursive)| {
        if recursive {
            // Told to hold this type (see `parse_field_attrs`): traced, without asking.
            quote!(|| true)
        } else if holds_self(ty, &me) {
            quote_spanned! {ty.span()=>
                || <Self as ::gc_core::Trace>::__DERIVE_KIT.needs_trace_holding_self::<Self, #ty>()
            }
        } else if mentions_self(ty, name) {
            // Its own `NEEDS_TRACE` would ask for this type's (a cycle the compiler reports):
            // traced, which is never wrong (see `mentions_self`).
            quote!(|| true)
        } else {
            quote_spanned! {ty.span()=> || <#ty as ::gc_core::Trace>::NEEDS_TRACE }
        }
    });
    let tracer_param = if traced.is_empty() {
        quote!(_)
    } else {
        quote!(#tracer)
    };

    // With `#[gc(unsafe_drop)]` the type must carry gc-core's `UnsafeDrop` promise, an
    // `unsafe impl` its author writes: the kit's method has the bound, and is reached through
    // the trait (see "Paths"), so no other trait of that name can stand in. Spanned at the
    // type's name, where the missing promise is reported.
    let drop_promise = if opts.unsafe_drop {
        quote_spanned! {name.span()=>
            <Self as ::gc_core::Trace>::__DERIVE_KIT.unsafe_drop::<Self>();
        }
    } else {
        TokenStream::new()
    };
    let drop_check = if opts.unsafe_drop {
        TokenStream::new()
    } else {
        // With the type's own generics (no added `Trace` bounds): the impls conflict iff the
        // type implements `Drop`.
        // The second impl is spanned at the type's name, so the conflict is reported there.
        let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
        let own_impl = quote_spanned! {name.span()=>
            impl #impl_g __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc for #name #ty_g #where_c {}
        };
        // The trait's name is the error message (E0119 names the trait).
        quote! {
            const _: () = {
                #[allow(non_camel_case_types)]
                trait __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc {}
                #[allow(drop_bounds)]
                impl<T: ::core::ops::Drop + ?::core::marker::Sized> __Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc for T {}
                #own_impl
            };
        }
    };

    Ok(quote! {
        #[automatically_derived]
        // The impl names every field and variant, deprecated ones too: using its own type is
        // not the user's use of them.
        #[allow(deprecated)]
        unsafe impl #impl_generics ::gc_core::Trace for #name #ty_generics #where_clause {
            const NEEDS_TRACE: bool = {
                #drop_promise
                false #(#needs)*
            };
            #pointer_words

            #[inline]
            fn trace(&self, #tracer_param: &mut ::gc_core::Tracer) {
                // Never called: compiles only for the type as the derive saw it (see
                // "Soundness" in gc-derive's docs).
                let _ = |#shape_self: &Self| { #shape };
                #body
            }
        }
        #drop_check
    })
}

/// Whether `ty` is written as one of the containers through which a type may hold itself
/// outside a `Gc` (gc-core's `HoldsSelf`: `Box<M>`, `Vec<M>`, `VecDeque<M>`, `Box<[M]>`,
/// `Option<Box<M>>`, `Option<Vec<M>>`, `Vec<(K, M)>`, `Vec<Vec<M>>`, `Vec<Box<M>>`,
/// `Vec<Option<Box<M>>>`, `HashMap<K, M>`, `BTreeMap<K, M>`, `HashSet<M>`, `BTreeSet<M>`), where
/// `M` is the type itself: `Self`, or its name with its own parameters as a one-segment path
/// (`me`: `Name<'gc, T>` as text). Such a field's `NEEDS_TRACE` term goes through
/// `DeriveKit::needs_trace_holding_self`, whose `HoldsSelf` bound checks the field's real type,
/// so a look-alike (a type of the user's named `Vec`, a type parameter that shadows the name) is
/// a compile error, never a wrong answer. Other fields, the type itself inside a `Gc` included
/// (a linked list's `Option<Gc<'gc, Self>>`, which keeps its pointer words), are left to their
/// own `NEEDS_TRACE`, or, if they name the type outside a `Gc`, count as traced
/// ([`mentions_self`]).
fn holds_self(ty: &Type, me: &str) -> bool {
    /// The last segment's name and its type arguments, for a plain path.
    fn container(ty: &Type) -> Option<(String, Vec<&Type>)> {
        let Type::Path(p) = bare(ty) else {
            return None;
        };
        if p.qself.is_some() {
            return None;
        }
        let last = p.path.segments.last()?;
        let args = match &last.arguments {
            syn::PathArguments::AngleBracketed(a) => a
                .args
                .iter()
                .filter_map(|a| match a {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some((last.ident.to_string(), args))
    }
    let is_me = |ty: &Type| match bare(ty) {
        Type::Path(p) => {
            p.qself.is_none()
                && p.path.leading_colon.is_none()
                && p.path.segments.len() == 1
                && (p.path.is_ident("Self") || quote!(#p).to_string() == me)
        }
        _ => false,
    };
    let Some((outer, args)) = container(ty) else {
        return false;
    };
    match (outer.as_str(), args.as_slice()) {
        ("Box" | "Vec" | "VecDeque", [m]) if is_me(m) => true,
        ("Box", [m]) => matches!(bare(m), Type::Slice(s) if is_me(&s.elem)),
        ("Option", [inner]) => matches!(
            container(inner),
            Some((name, inner_args)) if (name == "Box" || name == "Vec")
                && inner_args.len() == 1
                && is_me(inner_args[0])
        ),
        ("Vec", [pair]) if matches!(bare(pair), Type::Tuple(_)) => matches!(
            bare(pair),
            Type::Tuple(t) if t.elems.len() == 2 && is_me(&t.elems[1])
        ),
        ("Vec", [inner]) => match container(inner) {
            Some((name, inner_args)) if (name == "Vec" || name == "Box") => {
                inner_args.len() == 1 && is_me(inner_args[0])
            }
            Some((name, inner_args)) if name == "Option" && inner_args.len() == 1 => matches!(
                container(inner_args[0]),
                Some((boxed, m)) if boxed == "Box" && m.len() == 1 && is_me(m[0])
            ),
            _ => false,
        },
        ("HashMap", [_, m] | [_, m, _]) | ("BTreeMap", [_, m]) => is_me(m),
        ("HashSet", [m] | [m, _]) | ("BTreeSet", [m]) => is_me(m),
        _ => false,
    }
}

/// Add to `out` (once each) the associated types of the type parameters `params` that `ty`
/// names: `P::Name…` paths and qualified `<P as Trait>::Name` paths.
fn collect_projections(ty: &Type, params: &[&Ident], out: &mut Vec<Type>) {
    match ty {
        Type::Path(p) => {
            let of_param = p
                .qself
                .as_ref()
                .is_some_and(|q| mentions_param(&q.ty, params))
                || (p.qself.is_none()
                    && p.path.leading_colon.is_none()
                    && p.path.segments.len() > 1
                    && params.iter().any(|&n| p.path.segments[0].ident == *n));
            if of_param {
                let text = quote!(#ty).to_string();
                if !out.iter().any(|o| quote!(#o).to_string() == text) {
                    out.push(ty.clone());
                }
                return;
            }
            for seg in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(a) = &seg.arguments {
                    for arg in &a.args {
                        if let syn::GenericArgument::Type(t) = arg {
                            collect_projections(t, params, out);
                        }
                    }
                }
            }
        }
        Type::Array(a) => collect_projections(&a.elem, params, out),
        Type::Slice(s) => collect_projections(&s.elem, params, out),
        Type::Paren(p) => collect_projections(&p.elem, params, out),
        Type::Group(g) => collect_projections(&g.elem, params, out),
        Type::Reference(r) => collect_projections(&r.elem, params, out),
        Type::Ptr(p) => collect_projections(&p.elem, params, out),
        Type::Tuple(t) => t
            .elems
            .iter()
            .for_each(|e| collect_projections(e, params, out)),
        _ => {}
    }
}

/// Whether `ty` is one of the type parameters `params` (written as a plain name).
fn mentions_param(ty: &Type, params: &[&Ident]) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && params.iter().any(|&n| p.path.is_ident(n)))
}

/// Whether `ty` names the type being derived (`Self`, or its name `name` as a one-segment path,
/// with any arguments: `other::Node` is taken for another type) other than inside a `Gc<…>`: a field that holds the type in a
/// shape [`holds_self`] does not read through (`[Option<Box<Self>>; 2]`, `Result<Box<Self>, E>`,
/// a tuple, `GcRefCell<Vec<Self>>`, another instance `Box<Node<'gc, u8>>`, a container of the
/// user's own). Its `NEEDS_TRACE` would depend on the type's own, being computed, so the
/// derive does not ask for it: the field counts as traced and without pointer words. That is
/// never wrong (a traced object is scanned by its `trace`, which reports the field's edges
/// through the field type's own impl); at most it scans objects that hold no `Gc` (a type
/// with no `Gc` at any depth, holding itself through such a shape, is scanned instead of
/// noscan). A `Gc<'gc, Self>` is a pointer whose constants do not depend on what it points to,
/// so it keeps them. A name hidden behind a type alias or a macro is not seen (the compiler's
/// cycle error stays, until the user marks the field `#[gc(recursive)]`).
fn mentions_self(ty: &Type, name: &Ident) -> bool {
    match ty {
        Type::Path(p) => {
            if let Some(q) = &p.qself
                && mentions_self(&q.ty, name)
            {
                return true;
            }
            let Some(last) = p.path.segments.last() else {
                return false;
            };
            if p.path.segments.len() == 1 && (last.ident == "Self" || last.ident == *name) {
                return true;
            }
            if last.ident == "Gc" {
                return false;
            }
            p.path.segments.iter().any(|seg| match &seg.arguments {
                syn::PathArguments::AngleBracketed(a) => a.args.iter().any(|arg| match arg {
                    syn::GenericArgument::Type(t) => mentions_self(t, name),
                    syn::GenericArgument::AssocType(a) => mentions_self(&a.ty, name),
                    _ => false,
                }),
                syn::PathArguments::Parenthesized(a) => {
                    a.inputs.iter().any(|t| mentions_self(t, name))
                        || matches!(&a.output, syn::ReturnType::Type(_, t) if mentions_self(t, name))
                }
                syn::PathArguments::None => false,
            })
        }
        Type::Array(a) => mentions_self(&a.elem, name),
        Type::Slice(a) => mentions_self(&a.elem, name),
        Type::Paren(a) => mentions_self(&a.elem, name),
        Type::Group(a) => mentions_self(&a.elem, name),
        Type::Ptr(a) => mentions_self(&a.elem, name),
        Type::Reference(a) => mentions_self(&a.elem, name),
        Type::Tuple(t) => t.elems.iter().any(|t| mentions_self(t, name)),
        _ => false,
    }
}

/// Whether `ty` is written as an unsized type (a slice, `str`, a trait object): the tail of a
/// dynamically sized struct, which `offset_of!` cannot take.
fn is_unsized(ty: &Type) -> bool {
    match bare(ty) {
        Type::Slice(_) | Type::TraitObject(_) => true,
        Type::Path(p) => p.qself.is_none() && p.path.is_ident("str"),
        _ => false,
    }
}

/// `ty` without parentheses and invisible groups (a type passed through a `macro_rules!`
/// fragment arrives in a group).
fn bare(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => bare(&p.elem),
        Type::Group(g) => bare(&g.elem),
        _ => ty,
    }
}

/// Whether a type parameter is declared `?Sized`, in its bounds or in the where clause.
fn has_maybe_sized_param(generics: &syn::Generics) -> bool {
    let maybe = |bounds: &syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>| {
        bounds.iter().any(|b| {
            matches!(b, syn::TypeParamBound::Trait(t)
                if matches!(t.modifier, syn::TraitBoundModifier::Maybe(_)))
        })
    };
    generics.type_params().any(|p| maybe(&p.bounds))
        || generics.where_clause.as_ref().is_some_and(|w| {
            w.predicates.iter().any(|p| match p {
                syn::WherePredicate::Type(t) => maybe(&t.bounds),
                _ => false,
            })
        })
}

/// `#ty: 'static`, spanned at the field's type so an unmet requirement points at the field.
fn static_bound(ty: &Type) -> syn::WherePredicate {
    syn::parse_quote_spanned! {ty.span()=> #ty: 'static }
}

/// Compile-fail checks, run as doctests against a minimal stand-in for gc-core (the hidden
/// lines), so this crate's tests need not build gc-core. gc-core's trybuild tests check the same
/// against the real crate.
///
/// Control: the stand-in and a derived type compile.
///
/// ```standalone_crate
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// struct Node<'gc> {
///     next: Option<Gc<'gc, Node<'gc>>>,
/// }
///
/// #[derive(Trace)]
/// struct Wrap<T> {
///     t: T,
/// }
///
/// #[derive(Trace)]
/// struct Skipped<T> {
///     #[gc(skip)]
///     t: T,
///     n: u32,
/// }
///
/// #[derive(Trace)]
/// #[gc(unsafe_drop)]
/// struct Dropper<'gc>(Gc<'gc, u32>);
/// unsafe impl UnsafeDrop for Dropper<'_> {}
/// impl Drop for Dropper<'_> {
///     fn drop(&mut self) {}
/// }
///
/// fn needs_trace<T: Trace>() {}
/// fn main() {
///     needs_trace::<Node<'_>>();
///     needs_trace::<Wrap<u32>>();
///     needs_trace::<Skipped<u32>>();
///     needs_trace::<Dropper<'_>>();
/// }
/// ```
///
/// `#[gc(unsafe_drop)]` without the `unsafe impl UnsafeDrop` promise:
///
/// ```compile_fail,E0277
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// #[gc(unsafe_drop)]
/// struct Dropper<'gc>(Gc<'gc, u32>);
/// impl Drop for Dropper<'_> {
///     fn drop(&mut self) {}
/// }
/// fn main() {}
/// ```
///
/// `Drop` without `#[gc(unsafe_drop)]`:
///
/// ```compile_fail,E0119
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// struct Node<'gc> {
///     next: Option<Gc<'gc, Node<'gc>>>,
/// }
/// impl Drop for Node<'_> {
///     fn drop(&mut self) {}
/// }
/// fn main() {}
/// ```
///
/// The same for a generic type:
///
/// ```compile_fail,E0119
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// struct Wrap<T> {
///     t: T,
/// }
/// impl<T> Drop for Wrap<T> {
///     fn drop(&mut self) {}
/// }
/// fn main() {}
/// ```
///
/// A field type without `Trace` (the stand-in, like gc-core, has none for `Rc`):
///
/// ```compile_fail,E0277
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// struct Bad<'gc> {
///     items: std::rc::Rc<Vec<Gc<'gc, u32>>>,
/// }
/// fn main() {}
/// ```
///
/// A skipped field must be `'static`: one whose type names the type's lifetime is an error at
/// the field,
///
/// ```compile_fail
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// struct Hidden<'gc> {
///     #[gc(skip)]
///     g: Gc<'gc, u32>,
/// }
/// fn main() {}
/// ```
///
/// and one whose type parameter turns out to hold a `Gc` is rejected where it is used:
///
/// ```compile_fail
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// struct Skipped<T> {
///     #[gc(skip)]
///     t: T,
/// }
/// fn needs_trace<T: Trace>() {}
/// fn in_scope<'gc>(_: Gc<'gc, u32>) {
///     needs_trace::<Skipped<Gc<'gc, u32>>>();
/// }
/// fn main() {}
/// ```
///
/// Unions and unknown attributes:
///
/// ```compile_fail
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// union U {
///     a: u32,
/// }
/// fn main() {}
/// ```
///
/// ```compile_fail
#[doc = include_str!("doctest_prelude.txt")]
/// #[derive(Trace)]
/// struct S {
///     #[gc(skipp)]
///     a: u32,
/// }
/// fn main() {}
/// ```
#[cfg(doctest)]
#[allow(dead_code)]
struct CompileFailTests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Expands `src` and returns the output (checked to parse as Rust items) without whitespace,
    /// or `Err(message)`.
    fn exp(src: &str) -> Result<String, String> {
        let input: DeriveInput = syn::parse_str(src).expect("test input parses");
        match expand(input) {
            Ok(ts) => {
                syn::parse2::<syn::File>(ts.clone()).expect("expansion parses as items");
                Ok(ts
                    .to_string()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn ok(src: &str) -> String {
        exp(src).unwrap_or_else(|e| panic!("unexpected error for `{src}`: {e}"))
    }

    fn err(src: &str) -> String {
        match exp(src) {
            Ok(s) => panic!("expected an error for `{src}`, got {s}"),
            Err(e) => e,
        }
    }

    const DROP_CHECK: &str =
        "__Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_Gc";

    #[test]
    fn named_struct() {
        let s = ok("struct A<'gc> { x: Gc<'gc, u32>, y: u64 }");
        assert!(
            s.contains("unsafeimpl<'gc>::gc_core::TraceforA<'gc>{"),
            "{s}"
        );
        assert!(
            s.contains(
                "constNEEDS_TRACE:bool={false||<Gc<'gc,u32>as::gc_core::Trace>::NEEDS_TRACE\
                 ||<u64as::gc_core::Trace>::NEEDS_TRACE};"
            ),
            "{s}"
        );
        assert!(
            s.contains("fntrace(&self,__gc_tracer:&mut::gc_core::Tracer)"),
            "{s}"
        );
        assert!(
            s.contains(
                "<Gc<'gc,u32>as::gc_core::Trace>::trace(&self.x,__gc_tracer);\
                 <u64as::gc_core::Trace>::trace(&self.y,__gc_tracer);"
            ),
            "{s}"
        );
        assert!(s.contains("#[inline]"), "{s}");
        assert!(s.contains(DROP_CHECK), "{s}");
        assert!(s.contains("impl<'gc>__Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_GcforA<'gc>{}"), "{s}");
    }

    #[test]
    fn tuple_struct() {
        let s = ok("struct T(u32, String);");
        assert!(
            s.contains(
                "<u32as::gc_core::Trace>::trace(&self.0,__gc_tracer);\
                 <Stringas::gc_core::Trace>::trace(&self.1,__gc_tracer);"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "false||<u32as::gc_core::Trace>::NEEDS_TRACE||<Stringas::gc_core::Trace>::NEEDS_TRACE};"
            ),
            "{s}"
        );
    }

    #[test]
    fn unit_struct() {
        let s = ok("struct U;");
        assert!(s.contains("constNEEDS_TRACE:bool={false};"), "{s}");
        assert!(
            s.contains(
                "fntrace(&self,_:&mut::gc_core::Tracer){let_=|__gc_self:&Self|{letSelf{}=__gc_self;};}"
            ),
            "{s}"
        );
        assert!(s.contains("impl__Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_GcforU{}"), "{s}");
    }

    #[test]
    fn enum_all_variant_kinds() {
        let s = ok(
            "enum E<'gc> { A, B(Gc<'gc, u8>, #[gc(skip)] u8), C { x: u32, tracer: Gc<'gc, u8> } }",
        );
        assert!(s.contains("matchself{"), "{s}");
        assert!(s.contains("E::A{..}=>{}"), "{s}");
        assert!(
            s.contains(
                "E::B{0:__gc_f0,..}=>{<Gc<'gc,u8>as::gc_core::Trace>::trace(__gc_f0,__gc_tracer);}"
            ),
            "{s}"
        );
        // A field named `tracer` is bound under a fresh name.
        assert!(
            s.contains(
                "E::C{x:__gc_f0,tracer:__gc_f1,..}=>{<u32as::gc_core::Trace>::trace(__gc_f0,__gc_tracer);\
                 <Gc<'gc,u8>as::gc_core::Trace>::trace(__gc_f1,__gc_tracer);}"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "false||<Gc<'gc,u8>as::gc_core::Trace>::NEEDS_TRACE||<u32as::gc_core::Trace>::NEEDS_TRACE\
                 ||<Gc<'gc,u8>as::gc_core::Trace>::NEEDS_TRACE};"
            ),
            "{s}"
        );
        assert!(s.contains("whereu8:'static"), "{s}");
    }

    #[test]
    fn the_impl_compiles_only_for_the_shape_it_was_made_for() {
        // Every field, skipped ones too, named in a pattern without `..` and its type pinned
        // through a raw pointer (which no `Deref` coerces).
        let s = ok("struct S<'gc> { #[gc(skip)] a: u64, b: Gc<'gc, u8> }");
        assert!(
            s.contains(
                "let_=|__gc_self:&Self|{letSelf{a:_,b:_,}=__gc_self;\
                 let_:*constu64=::core::ptr::addr_of!(__gc_self.a);\
                 let_:*constGc<'gc,u8>=::core::ptr::addr_of!(__gc_self.b);};"
            ),
            "{s}"
        );
        let s = ok("struct T(u32, #[gc(skip)] u8);");
        assert!(
            s.contains(
                "letSelf{0:_,1:_,}=__gc_self;let_:*constu32=::core::ptr::addr_of!(__gc_self.0);"
            ),
            "{s}"
        );
        // Every variant, every field, no wildcard arm.
        let s = ok("enum E<'gc> { A, B(Gc<'gc, u8>, #[gc(skip)] u8), C { x: u32 } }");
        assert!(
            s.contains(
                "match__gc_self{E::A{}=>{}E::B{0:__gc_p0,1:__gc_p1,}=>{\
                 let_:*constGc<'gc,u8>=::core::ptr::addr_of!(*__gc_p0);\
                 let_:*constu8=::core::ptr::addr_of!(*__gc_p1);}\
                 E::C{x:__gc_p0,}=>{let_:*constu32=::core::ptr::addr_of!(*__gc_p0);}}"
            ),
            "{s}"
        );
    }

    #[test]
    fn enum_without_traced_fields_and_empty_enum() {
        let s = ok("enum E { A, B }");
        assert!(s.contains("constNEEDS_TRACE:bool={false};"), "{s}");
        // Nothing traced; the shape check alone names the variants.
        assert!(
            s.contains(
                "fntrace(&self,_:&mut::gc_core::Tracer){let_=|__gc_self:&Self|{match__gc_self{E::A{}=>{}E::B{}=>{}}};}"
            ),
            "{s}"
        );
        let s = ok("enum Never {}");
        assert!(
            s.contains(
                "fntrace(&self,_:&mut::gc_core::Tracer){let_=|__gc_self:&Self|{match*__gc_self{}};}"
            ),
            "{s}"
        );
    }

    #[test]
    fn generics_get_trace_bounds() {
        let s = ok(
            "struct G<'gc, T: Clone, U = u8, const N: usize = 3> where T: Default { \
                    t: [T; N], u: Option<U> }",
        );
        assert!(
            s.contains(
                "unsafeimpl<'gc,T:Clone+::gc_core::Trace,U:::gc_core::Trace,constN:usize>\
                 ::gc_core::TraceforG<'gc,T,U,N>whereT:Default{"
            ),
            "{s}"
        );
        // The drop check uses the type's own generics, without the added bounds.
        assert!(
            s.contains(
                "impl<'gc,T:Clone,U,constN:usize>__Type_implements_Drop__add_gc_unsafe_drop_if_its_Drop_never_dereferences_a_GcforG<'gc,T,U,N>whereT:Default{}"
            ),
            "{s}"
        );
    }

    #[test]
    fn skip_is_not_traced_and_must_be_static() {
        let s =
            ok("struct S<'gc, T> { #[gc(skip)] a: AtomicU64, b: Gc<'gc, u8>, #[gc(skip)] t: T }");
        assert!(!s.contains("&self.a"), "{s}");
        assert!(!s.contains("&self.t"), "{s}");
        assert!(!s.contains("<AtomicU64as"), "{s}");
        assert!(!s.contains("<Tas"), "{s}");
        assert!(s.contains("trace(&self.b,__gc_tracer)"), "{s}");
        assert!(s.contains("whereAtomicU64:'static,T:'static{"), "{s}");
        assert!(
            s.contains(
                "constNEEDS_TRACE:bool={false||<Gc<'gc,u8>as::gc_core::Trace>::NEEDS_TRACE};"
            ),
            "{s}"
        );

        // Appended to an existing where clause.
        let s = ok("struct W<T> where T: Copy { #[gc(skip)] g: Gc<'static, T> }");
        assert!(s.contains("whereT:Copy,Gc<'static,T>:'static{"), "{s}");
        assert!(s.contains("constNEEDS_TRACE:bool={false};"), "{s}");
    }

    #[test]
    fn unsafe_drop_omits_drop_check() {
        let s = ok("#[gc(unsafe_drop)] struct D<'gc> { a: Gc<'gc, u8> }");
        assert!(!s.contains(DROP_CHECK), "{s}");
        assert!(s.contains("::gc_core::TraceforD<'gc>"), "{s}");
        // ... and asks for the `UnsafeDrop` promise instead, through the trait.
        assert!(
            s.contains("constNEEDS_TRACE:bool={<Selfas::gc_core::Trace>::__DERIVE_KIT.unsafe_drop::<Self>();false||"),
            "{s}"
        );
        let s = ok("struct D<'gc> { a: Gc<'gc, u8> }");
        assert!(!s.contains(".unsafe_drop::<Self>()"), "{s}");
        // Other attributes and doc comments are ignored.
        let s = ok("/// doc\n#[derive(Debug)] #[gc(unsafe_drop)] #[repr(C)] struct D { a: u8 }");
        assert!(!s.contains(DROP_CHECK), "{s}");
    }

    #[test]
    fn union_is_an_error() {
        let e = err("union U { a: u32, b: f32 }");
        assert!(e.starts_with("Trace cannot be derived for unions"), "{e}");
    }

    #[test]
    fn unknown_attributes_are_errors() {
        let e = err("#[gc(bogus)] struct A;");
        assert!(
            e.contains("unknown `gc` attribute `bogus` on a type"),
            "{e}"
        );
        let e = err("struct A { #[gc(bogus)] a: u8 }");
        assert!(
            e.contains("unknown `gc` attribute `bogus` on a field"),
            "{e}"
        );
        // `skip` on the type and `unsafe_drop` on a field are misplaced.
        let e = err("#[gc(skip)] struct A { a: u8 }");
        assert!(e.contains("unknown `gc` attribute `skip` on a type"), "{e}");
        let e = err("struct A(#[gc(unsafe_drop)] u8);");
        assert!(
            e.contains("unknown `gc` attribute `unsafe_drop` on a field"),
            "{e}"
        );
        let e = err("enum E { #[gc(skip)] A(u8) }");
        assert!(e.contains("not supported on enum variants"), "{e}");
        let e = err("enum E { A { #[gc(skipp)] x: u8 } }");
        assert!(
            e.contains("unknown `gc` attribute `skipp` on a field"),
            "{e}"
        );
        // Malformed forms are errors too.
        assert!(exp("#[gc] struct A;").is_err());
        assert!(exp("#[gc = \"x\"] struct A;").is_err());
    }

    #[test]
    fn field_mistakes_are_reported_at_the_field() {
        // A skipped field naming the type's lifetime, however deep.
        let e = err("struct A<'gc> { #[gc(skip)] g: Option<Vec<Gc<'gc, u8>>> }");
        assert!(
            e.contains("mentions `'gc`") && e.contains("remove `#[gc(skip)]`"),
            "{e}"
        );
        let e = err("enum E<'a, 'gc> { V(#[gc(skip)] &'a u8), W }");
        assert!(e.contains("mentions `'a`"), "{e}");
        // Inside a tuple or an array (token groups), too.
        let e = err("struct A<'gc> { #[gc(skip)] p: (u32, Gc<'gc, u8>) }");
        assert!(e.contains("mentions `'gc`"), "{e}");
        let e = err("struct B<'a> { #[gc(skip)] r: [&'a u8; 2] }");
        assert!(e.contains("mentions `'a`"), "{e}");
        // Another lifetime, or none, is fine ('static is not a parameter).
        ok("struct A<'gc> { #[gc(skip)] s: &'static str, g: Gc<'gc, u8> }");
        // Interior mutability the marker cannot read safely, with the fix named.
        for ty in [
            "Cell<u64>",
            "std::cell::RefCell<Vec<Gc<'gc, u8>>>",
            "Mutex<u8>",
            "RwLock<u8>",
            "std::cell::UnsafeCell<u64>",
        ] {
            let e = err(&format!("struct A<'gc> {{ x: {ty}, g: Gc<'gc, u8> }}"));
            assert!(
                e.contains("cannot be traced") && e.contains("GcCell"),
                "{ty}: {e}"
            );
        }
        // Skipped behind a lock (pointer-free, 'static): accepted.
        ok("struct A { #[gc(skip)] m: std::sync::Mutex<String> }");
        // A type merely named like one elsewhere in the path is not flagged.
        ok("struct A { c: CellCount }");
    }

    #[test]
    fn all_attribute_errors_are_reported() {
        let input: DeriveInput =
            syn::parse_str("#[gc(x)] struct A { #[gc(y)] a: u8, #[gc(z)] b: u8 }").unwrap();
        let errs: Vec<String> = expand(input)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn compile_error_tokens() {
        let input: DeriveInput = syn::parse_str("union U { a: u32 }").unwrap();
        let ts = expand(input).unwrap_err().to_compile_error().to_string();
        assert!(ts.contains("compile_error"), "{ts}");
    }

    #[test]
    fn a_type_that_holds_itself_outside_a_gc_reads_its_needs_trace_through_the_kit() {
        // Through `Box` and `Vec`, as `Self` or by name with its own parameters: the kit's
        // term (checked against the containers it reads through), and no pointer words for
        // the field (it is traced by `trace`).
        let s = ok("struct T<'gc> { a: Box<T<'gc>>, b: Vec<Self>, c: Gc<'gc, u8> }");
        assert!(
            s.contains("||<Selfas::gc_core::Trace>::__DERIVE_KIT.needs_trace_holding_self::<Self,Box<T<'gc>>>()"),
            "{s}"
        );
        assert!(
            s.contains("needs_trace_holding_self::<Self,Vec<Self>>()"),
            "{s}"
        );
        assert!(
            s.contains("__gc_words,::core::option::Option::None::<u64>,"),
            "{s}"
        );
        assert!(
            !s.contains("<Box<T<'gc>>as::gc_core::Trace>::NEEDS_TRACE"),
            "{s}"
        );
        // The trace call keeps the real type.
        assert!(
            s.contains("<Box<T<'gc>>as::gc_core::Trace>::trace(&self.a"),
            "{s}"
        );
        // Behind a `Gc` the type is left alone: its pointer words stay.
        let s = ok("struct L<'gc> { next: Option<Gc<'gc, L<'gc>>> }");
        assert!(
            s.contains("<Option<Gc<'gc,L<'gc>>>as::gc_core::Trace>::POINTER_WORDS"),
            "{s}"
        );
        assert!(
            s.contains("<Option<Gc<'gc,L<'gc>>>as::gc_core::Trace>::NEEDS_TRACE"),
            "{s}"
        );
        // A longer path is another type, left to its own constants.
        let s = ok("struct T { a: Box<other::T> }");
        assert!(
            s.contains("<Box<other::T>as::gc_core::Trace>::NEEDS_TRACE"),
            "{s}"
        );
        // Another instance of the type, or a container the derive does not know, is not read
        // through: a field naming the type outside a `Gc` counts as traced, with no pointer
        // words (its own constants would ask for the type's: a cycle).
        let s = ok("enum P<'gc, T> { Leaf(T), Wrap(Box<P<'gc, Gc<'gc, u64>>>) }");
        assert!(!s.contains("needs_trace_holding_self"), "{s}");
        assert!(
            s.contains("false||<Tas::gc_core::Trace>::NEEDS_TRACE||true};"),
            "{s}"
        );
        let s = ok(
            "struct S<'gc> { a: [Option<Box<Self>>; 2], b: (u8, Box<S<'gc>>), \
                    c: Result<Box<Self>, String>, d: Option<Gc<'gc, Self>>, e: u64 }",
        );
        assert!(
            s.contains(
                "false||true||true||true||<Option<Gc<'gc,Self>>as::gc_core::Trace>::NEEDS_TRACE\
                 ||<u64as::gc_core::Trace>::NEEDS_TRACE};"
            ),
            "{s}"
        );
        assert_eq!(s.matches("Option::None::<u64>").count(), 3, "{s}");
        let s = ok("enum O<'gc> { W(GcEphemeronTable<'gc, O<'gc>, u8>), H(Holder<Self>) }");
        assert!(!s.contains("needs_trace_holding_self"), "{s}");
        let s = ok("struct B { a: Option<Box<Self>>, b: Box<[B]>, c: Vec<(u8, Self)> }");
        assert_eq!(s.matches("needs_trace_holding_self").count(), 3, "{s}");
        let s = ok(
            "struct M { a: Vec<Vec<M>>, b: Vec<Box<Self>>, c: Vec<Option<Box<M>>>, \
                    d: HashSet<Self>, e: std::collections::BTreeSet<M>, f: Vec<Option<M>> }",
        );
        assert_eq!(s.matches("needs_trace_holding_self").count(), 5, "{s}");
        let s = ok("enum E { A(Vec<(String, E)>), B(std::collections::HashMap<String, E>) }");
        assert!(
            s.contains("needs_trace_holding_self::<Self,Vec<(String,E)>>()"),
            "{s}"
        );
        assert!(
            s.contains("needs_trace_holding_self::<Self,std::collections::HashMap<String,E>>()"),
            "{s}"
        );
    }

    #[test]
    fn associated_types_of_parameters_are_bound_to_trace() {
        let s = ok(
            "struct N<'gc, F: Family> { a: F::Repr, b: Vec<<F as Family>::Other>, c: Gc<'gc, u8> }",
        );
        assert!(s.contains("F::Repr:::gc_core::Trace"), "{s}");
        assert!(s.contains("<FasFamily>::Other:::gc_core::Trace"), "{s}");
        // Inside an array or a tuple.
        for field in ["[F::Repr; 2]", "(u8, F::Repr)"] {
            let s = ok(&format!("struct N<F: Family> {{ a: {field} }}"));
            assert!(s.contains("F::Repr:::gc_core::Trace"), "{field}: {s}");
        }
        // Not for a path that only starts like a parameter's name elsewhere.
        let s = ok("struct M { a: std::string::String }");
        assert!(!s.contains("where"), "{s}");
    }

    #[test]
    fn a_cell_of_ones_own_is_not_the_standard_librarys() {
        ok("struct P<'gc> { head: Cell<'gc>, m: Mutex<'gc, u8> }");
        // Other arguments, or none: a type of the user's own too.
        ok("struct P { a: Cell<u8, u16>, b: Mutex, c: RwLock<u8, u8> }");
        let e = err("struct P { head: Cell<u32> }");
        assert!(e.contains("a `Cell` field cannot be traced"), "{e}");
        let e = err("struct P { m: std::sync::Mutex<Vec<u8>> }");
        assert!(e.contains("a `Mutex` field cannot be traced"), "{e}");
    }

    /// An enum variant's `#[gc(recursive)]` field counts as traced without asking its type.
    #[test]
    fn a_recursive_field_of_an_enum_variant_asks_its_type_nothing() {
        let s = ok("enum E { A(u64), B(#[gc(recursive)] Vec<Other>) }");
        assert!(
            s.contains("||<u64as::gc_core::Trace>::NEEDS_TRACE||true"),
            "{s}"
        );
        assert!(
            !s.contains("<Vec<Other>as::gc_core::Trace>::NEEDS_TRACE"),
            "{s}"
        );
    }

    /// Unsized last fields (a slice, `str`, `dyn Trait`) and `?Sized` parameters (also in a
    /// where clause among other predicates) leave the pointer words to the trait's default.
    #[test]
    fn unsized_tails_have_no_pointer_words() {
        for src in [
            "struct S { n: u32, s: str }",
            "struct S { n: u32, s: [u64] }",
            "struct S { n: u32, t: dyn Shape }",
            "struct S<T: ?Sized> { n: u32, t: T }",
            "struct U<T, A> where A: Clone, T: ?Sized { a: A, t: T }",
        ] {
            assert!(!ok(src).contains("POINTER_WORDS"), "{src}");
        }
        assert!(ok("struct S { n: u32, s: u64 }").contains("POINTER_WORDS"));
    }

    /// A field naming the type inside a slice counts as traced (`|| true`), as other shapes
    /// that hold the type outside a `Gc` do.
    #[test]
    fn a_slice_of_the_type_itself_counts_as_traced() {
        let s = ok("struct F<'gc> { k: Option<Box<[Self]>>, g: Gc<'gc, u8> }");
        assert!(
            !s.contains("<Option<Box<[Self]>>as::gc_core::Trace>::NEEDS_TRACE"),
            "{s}"
        );
        assert!(
            s.contains("||true||<Gc<'gc,u8>as::gc_core::Trace>::NEEDS_TRACE"),
            "{s}"
        );
    }

    #[test]
    fn deprecated_fields_and_variants_are_allowed_in_the_impl() {
        let s = ok("enum E { #[deprecated] A { #[deprecated] x: u32 } }");
        assert!(s.contains("#[allow(deprecated)]unsafeimpl"), "{s}");
    }
}
