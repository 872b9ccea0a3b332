//! Validation code: the rules of each field, checked before any SQL.

use crate::attrs::{Column, Rule};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Lit;

/// The checks of one field whose value is `v: &FieldType`, each naming the column.
pub fn checks(c: &Column, v: &TokenStream) -> TokenStream {
    let name = &c.column;
    let ty = &c.ty;
    let base = quote_spanned! {ty.span()=> __fw::Field::check(#v, #name)?; };
    let rules = c.rules.iter().map(|r| rule(r, name, v));
    quote! { #base #(#rules)* }
}

fn rule(r: &Rule, name: &str, v: &TokenStream) -> TokenStream {
    match r {
        Rule::NotBlank => quote! { __fw::rules::not_blank(#name, #v)?; },
        Rule::Email => quote! { __fw::rules::email(#name, #v)?; },
        Rule::Length { min, max } => {
            let min = opt(min.as_ref().map(|e| quote! { #e }));
            let max = opt(max.as_ref().map(|e| quote! { #e }));
            quote! { __fw::rules::length(#name, #v, #min, #max)?; }
        }
        Rule::Range { min, max } => {
            let min = opt(min.as_ref().map(bound));
            let max = opt(max.as_ref().map(bound));
            quote! { __fw::rules::range(#name, #v, #min, #max)?; }
        }
        Rule::Check(path) => quote_spanned! {path.span()=> __fw::rules::custom(#name, #v, #path)?; },
    }
}

fn opt(t: Option<TokenStream>) -> TokenStream {
    match t {
        Some(t) => quote! { ::core::option::Option::Some(#t) },
        None => quote! { ::core::option::Option::None },
    }
}

/// A bound converted to the field's type: `Bound` for integer literals,
/// `FloatBound` (not implemented by integer types) for float literals.
fn bound(l: &Lit) -> TokenStream {
    match l {
        Lit::Float(f) => quote_spanned! {f.span()=> __fw::FloatBound::from_f64(#f) },
        other => quote_spanned! {other.span()=> __fw::Bound::from_i128(#other) },
    }
}
