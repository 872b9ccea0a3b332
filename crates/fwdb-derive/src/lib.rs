//! The derives of fwdb, re-exported by it: use them as `fwdb::Entity`.
//!
//! `#[derive(fwdb::Entity)]` declares a PostgreSQL table once: from the struct
//! it generates the typed column constants, the `New` and `Patch` types, the
//! reading of rows by column name, and what the repository needs to insert,
//! patch and validate. See the `fwdb::model` module for the attributes.

mod attrs;
mod entity;
mod rules;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Declares a PostgreSQL table: see the `fwdb::model` module.
#[proc_macro_derive(Entity, attributes(fwdb))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match attrs::Entity::parse(&input) {
        Ok(e) => entity::expand(&e).into(),
        Err(e) => e.to_compile_error().into(),
    }
}
