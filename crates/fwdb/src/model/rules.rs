//! The validation rules a field may declare (`#[fwdb(not_blank, email,
//! length(..), range(..), check = "..")]`). Each applies to the value of the
//! field, or to what an `Option` holds (a NULL passes every rule); every error
//! is a validation error naming the field, never showing its value.

use super::Field;
use crate::error::Result;
use crate::query::{check, LabelPath};
use std::fmt::Display;

/// What `length` counts: characters of text, items of an array.
pub trait HasLength {
    fn length(&self) -> usize;
    /// What is counted, for the error message.
    fn unit(&self) -> &'static str;
}

impl HasLength for str {
    fn length(&self) -> usize {
        self.chars().count()
    }
    fn unit(&self) -> &'static str {
        "characters"
    }
}

impl HasLength for LabelPath {
    fn length(&self) -> usize {
        self.0.chars().count()
    }
    fn unit(&self) -> &'static str {
        "characters"
    }
}

impl<T> HasLength for [T] {
    fn length(&self) -> usize {
        self.len()
    }
    fn unit(&self) -> &'static str {
        "items"
    }
}

/// Not empty and not only white space.
pub fn not_blank<F: Field>(field: &str, v: &F) -> Result<()>
where
    F::Inner: AsRef<str>,
{
    match v.present() {
        Some(s) if s.as_ref().trim().is_empty() => Err(check::invalid(field, "must not be empty")),
        _ => Ok(()),
    }
}

/// An address a person can receive mail at.
pub fn email<F: Field>(field: &str, v: &F) -> Result<()>
where
    F::Inner: AsRef<str>,
{
    v.present().map_or(Ok(()), |s| check::email(field, s.as_ref()))
}

/// At least `min` and at most `max` characters (of text) or items (of an array).
pub fn length<F: Field>(field: &str, v: &F, min: Option<usize>, max: Option<usize>) -> Result<()>
where
    F::Inner: HasLength,
{
    let Some(v) = v.present() else { return Ok(()) };
    let n = v.length();
    if let Some(max) = max.filter(|m| n > *m) {
        return Err(check::invalid(field, &format!("{n} {}, at most {max} allowed", v.unit())));
    }
    if let Some(min) = min.filter(|m| n < *m) {
        return Err(check::invalid(field, &format!("{n} {}, at least {min} needed", v.unit())));
    }
    Ok(())
}

/// Within `min..=max`.
pub fn range<F: Field>(field: &str, v: &F, min: Option<F::Inner>, max: Option<F::Inner>) -> Result<()>
where
    F::Inner: PartialOrd + Display + Sized,
{
    let Some(v) = v.present() else { return Ok(()) };
    if let Some(min) = min.filter(|m| v < m) {
        return Err(check::invalid(field, &format!("must be at least {min}")));
    }
    if let Some(max) = max.filter(|m| v > m) {
        return Err(check::invalid(field, &format!("must be at most {max}")));
    }
    Ok(())
}

/// The service's own rule: `check` returns why the value is refused.
pub fn custom<F: Field, E: Display>(field: &str, v: &F, check: impl Fn(&F::Inner) -> Result<(), E>) -> Result<()> {
    match v.present().map(check) {
        Some(Err(why)) => Err(check::invalid(field, &why.to_string())),
        _ => Ok(()),
    }
}
