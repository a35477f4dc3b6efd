//! `#[derive(Trace)]` for gc-core.
//!
//! For a struct or enum, the derive generates an `unsafe impl gc_core::Trace` that
//!
//! * calls `Trace::trace` on every field (in every variant), and
//! * sets `NEEDS_TRACE` to the OR of the fields' `NEEDS_TRACE`, so a type without traced fields
//!   is **noscan** (allocated in noscan spans, never read by the marker).
//!
//! Every type parameter gets a `Trace` bound. Lifetimes (such as `'gc`) need nothing.
//!
//! # Attributes
//!
//! * `#[gc(skip)]` on a field: the field is not traced. To keep this sound the field's type must
//!   be `'static` (the impl requires it), so a skipped field can never hide a `Gc<'gc, _>`.
//!   Use it for pointer-free data the derive cannot see through (`AtomicU64`, `Mutex<String>`, a
//!   type with a `Drop` impl, …).
//! * `#[gc(unsafe_drop)]` on the type: allow the type to implement `Drop`. Without it the derive
//!   makes a `Drop` impl a compile error, because drop glue runs when the sweeper frees a dead
//!   object, and other dead objects its `Gc` fields point to may already be freed: a `Drop` that
//!   dereferences a `Gc` would read freed memory. With the attribute you promise your `Drop` never
//!   dereferences a `Gc`.
//!
//! # Soundness
//!
//! The derive only ever calls `Trace::trace` on fields, so the generated impl is as sound as the
//! fields' impls. gc-core implements `Trace` for no type with unsynchronised interior
//! mutability (`Cell`, `RefCell`, `Mutex`, …), so a field like `RefCell<Vec<Gc<'gc, T>>>` is a
//! compile error pointing at that field.

#![deny(unsafe_op_in_unsafe_fn)]

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, parse_macro_input, parse_quote};

/// Derive `gc_core::Trace`. See the [crate docs](crate).
#[proc_macro_derive(Trace, attributes(gc))]
pub fn derive_trace(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What `#[gc(...)]` said on the container.
#[derive(Default)]
struct ContainerOpts {
    unsafe_drop: bool,
}

fn container_opts(attrs: &[syn::Attribute]) -> syn::Result<ContainerOpts> {
    let mut o = ContainerOpts::default();
    for a in attrs.iter().filter(|a| a.path().is_ident("gc")) {
        a.parse_nested_meta(|m| {
            if m.path.is_ident("unsafe_drop") {
                o.unsafe_drop = true;
                Ok(())
            } else {
                Err(m.error("unknown gc attribute on a type (expected `unsafe_drop`)"))
            }
        })?;
    }
    Ok(o)
}

/// Whether a field carries `#[gc(skip)]`.
fn field_skipped(f: &syn::Field) -> syn::Result<bool> {
    let mut skip = false;
    for a in f.attrs.iter().filter(|a| a.path().is_ident("gc")) {
        a.parse_nested_meta(|m| {
            if m.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(m.error("unknown gc attribute on a field (expected `skip`)"))
            }
        })?;
    }
    Ok(skip)
}

/// The expansion, separated from the proc-macro entry point so tests can call it.
pub(crate) fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let opts = container_opts(&input.attrs)?;
    let name = &input.ident;

    // (binding pattern per variant, traced fields, skipped field types)
    let mut traced_types: Vec<syn::Type> = Vec::new();
    let mut skipped_types: Vec<syn::Type> = Vec::new();
    let body = match &input.data {
        Data::Struct(s) => {
            let mut calls = Vec::new();
            for (i, f) in s.fields.iter().enumerate() {
                if field_skipped(f)? {
                    skipped_types.push(f.ty.clone());
                    continue;
                }
                traced_types.push(f.ty.clone());
                let member = match &f.ident {
                    Some(id) => quote!(#id),
                    None => {
                        let idx = syn::Index::from(i);
                        quote!(#idx)
                    }
                };
                let ty = &f.ty;
                calls.push(quote_spanned! {ty.span()=>
                    ::gc_core::Trace::trace(&self.#member, tracer);
                });
            }
            quote!(#(#calls)*)
        }
        Data::Enum(e) => {
            let mut arms = Vec::new();
            for v in &e.variants {
                let vname = &v.ident;
                let mut calls = Vec::new();
                let pat = match &v.fields {
                    Fields::Named(fs) => {
                        let mut binds = Vec::new();
                        for f in &fs.named {
                            let id = f.ident.as_ref().expect("named field");
                            if field_skipped(f)? {
                                skipped_types.push(f.ty.clone());
                                binds.push(quote!(#id: _));
                                continue;
                            }
                            traced_types.push(f.ty.clone());
                            let ty = &f.ty;
                            calls.push(quote_spanned! {ty.span()=>
                                ::gc_core::Trace::trace(#id, tracer);
                            });
                            binds.push(quote!(#id));
                        }
                        quote!(#name::#vname { #(#binds),* })
                    }
                    Fields::Unnamed(fs) => {
                        let mut binds = Vec::new();
                        for (i, f) in fs.unnamed.iter().enumerate() {
                            if field_skipped(f)? {
                                skipped_types.push(f.ty.clone());
                                binds.push(quote!(_));
                                continue;
                            }
                            traced_types.push(f.ty.clone());
                            let b = syn::Ident::new(&format!("__f{i}"), f.span());
                            let ty = &f.ty;
                            calls.push(quote_spanned! {ty.span()=>
                                ::gc_core::Trace::trace(#b, tracer);
                            });
                            binds.push(quote!(#b));
                        }
                        quote!(#name::#vname ( #(#binds),* ))
                    }
                    Fields::Unit => quote!(#name::#vname),
                };
                arms.push(quote!(#pat => { #(#calls)* }));
            }
            if arms.is_empty() {
                quote!(match *self {})
            } else {
                quote!(match self { #(#arms)* })
            }
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "Trace cannot be derived for unions (the collector cannot know which field is live)",
            ));
        }
    };

    let mut generics = input.generics.clone();
    for tp in generics.type_params_mut() {
        tp.bounds.push(parse_quote!(::gc_core::Trace));
    }
    {
        let wc = generics.make_where_clause();
        for ty in &skipped_types {
            wc.predicates.push(parse_quote!(#ty: 'static));
        }
    }
    let (impl_g, ty_g, where_c) = generics.split_for_impl();
    let needs = traced_types.iter().map(|ty| {
        quote_spanned! {ty.span()=> || <#ty as ::gc_core::Trace>::NEEDS_TRACE }
    });

    let drop_check = if opts.unsafe_drop {
        quote!()
    } else {
        // Two impls of a local trait conflict if `#name` implements `Drop`.
        let (impl_g0, ty_g0, where_c0) = input.generics.split_for_impl();
        quote! {
            const _: () = {
                trait __GcMustNotImplDrop {}
                #[allow(drop_bounds)]
                impl<T: ::core::ops::Drop + ?Sized> __GcMustNotImplDrop for T {}
                impl #impl_g0 __GcMustNotImplDrop for #name #ty_g0 #where_c0 {}
            };
        }
    };

    Ok(quote! {
        // SAFETY (generated): `trace` reports every non-skipped field; skipped fields are
        // `'static` and so hold no `Gc`; soundness of reading each field is that field's
        // `Trace` impl's obligation.
        unsafe impl #impl_g ::gc_core::Trace for #name #ty_g #where_c {
            const NEEDS_TRACE: bool = false #(#needs)*;
            #[inline]
            #[allow(unused_variables)]
            fn trace(&self, tracer: &mut ::gc_core::Tracer) {
                #body
            }
        }
        #drop_check
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(src: &str) -> String {
        expand(syn::parse_str(src).unwrap())
            .map(|t| t.to_string())
            .unwrap_or_else(|e| format!("ERROR: {e}"))
    }

    #[test]
    fn named_struct_traces_each_field() {
        let s = exp("struct A<'gc> { x: Gc<'gc, u32>, y: u64 }");
        assert!(s.contains("trace (& self . x , tracer)"), "{s}");
        assert!(s.contains("trace (& self . y , tracer)"), "{s}");
        assert!(
            s.contains("< Gc < 'gc , u32 > as :: gc_core :: Trace > :: NEEDS_TRACE"),
            "{s}"
        );
        assert!(s.contains("__GcMustNotImplDrop"), "{s}");
    }

    #[test]
    fn tuple_and_unit_structs() {
        let s = exp("struct T(u32, String);");
        assert!(s.contains("self . 0") && s.contains("self . 1"), "{s}");
        let s = exp("struct U;");
        assert!(s.contains("const NEEDS_TRACE : bool = false ;"), "{s}");
    }

    #[test]
    fn enums_match_every_variant() {
        let s = exp("enum E<'gc> { A, B(Gc<'gc, u8>, #[gc(skip)] u8), C { x: u32 } }");
        assert!(s.contains("E :: A =>"), "{s}");
        assert!(s.contains("E :: B (__f0 , _)"), "{s}");
        assert!(s.contains("E :: C { x }"), "{s}");
        assert!(s.contains("u8 : 'static"), "{s}");
    }

    #[test]
    fn generics_get_trace_bounds() {
        let s = exp("struct G<'gc, T> where T: Clone { t: T }");
        assert!(s.contains("T : :: gc_core :: Trace"), "{s}");
        assert!(s.contains("T : Clone"), "{s}");
    }

    #[test]
    fn skip_excludes_and_requires_static() {
        let s = exp("struct S { #[gc(skip)] a: AtomicU64, b: u8 }");
        assert!(!s.contains("self . a"), "{s}");
        assert!(s.contains("AtomicU64 : 'static"), "{s}");
        assert!(!s.contains("< AtomicU64 as"), "{s}");
    }

    #[test]
    fn unsafe_drop_removes_the_drop_check() {
        let s = exp("#[gc(unsafe_drop)] struct D { a: u8 }");
        assert!(!s.contains("__GcMustNotImplDrop"), "{s}");
    }

    #[test]
    fn unions_and_unknown_attributes_are_errors() {
        assert!(exp("union U { a: u32 }").starts_with("ERROR: Trace cannot be derived for unions"));
        assert!(exp("#[gc(bogus)] struct A;").contains("unknown gc attribute"));
        assert!(exp("struct A { #[gc(bogus)] a: u8 }").contains("unknown gc attribute"));
    }
}
