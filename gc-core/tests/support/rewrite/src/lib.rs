//! Attribute macros for gc-core's compile-fail tests. Written below `#[derive(Trace)]`, an
//! attribute macro expands after the derive and may change the item the derive read; the
//! derived impl must then fail to compile rather than trace a type it was not made for. Each
//! macro here makes one such change, as a crate of the user's could.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, parse_macro_input, parse_quote};

/// Add a field `hidden: ::gc_core::Gc<'gc, u64>` to a struct with named fields.
#[proc_macro_attribute]
pub fn add_gc_field(_: TokenStream, item: TokenStream) -> TokenStream {
    let mut input = parse_macro_input!(item as DeriveInput);
    if let Data::Struct(s) = &mut input.data
        && let Fields::Named(f) = &mut s.fields
    {
        f.named.push(parse_quote!(hidden: ::gc_core::Gc<'gc, u64>));
    }
    quote!(#input).into()
}

/// Make the first field of a struct a `::gc_core::Gc<'gc, u64>`.
#[proc_macro_attribute]
pub fn retype_first_field(_: TokenStream, item: TokenStream) -> TokenStream {
    let mut input = parse_macro_input!(item as DeriveInput);
    if let Data::Struct(s) = &mut input.data
        && let Some(f) = s.fields.iter_mut().next()
    {
        f.ty = parse_quote!(::gc_core::Gc<'gc, u64>);
    }
    quote!(#input).into()
}

/// Add a variant `Hidden(::gc_core::Gc<'gc, u64>)` to an enum.
#[proc_macro_attribute]
pub fn add_variant(_: TokenStream, item: TokenStream) -> TokenStream {
    let mut input = parse_macro_input!(item as DeriveInput);
    if let Data::Enum(e) = &mut input.data {
        e.variants
            .push(parse_quote!(Hidden(::gc_core::Gc<'gc, u64>)));
    }
    quote!(#input).into()
}
