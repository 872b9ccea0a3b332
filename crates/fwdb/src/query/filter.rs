//! The filter AST: and/or/not of conditions on fields. Store-independent: the
//! SQL compiler lives in `sql.rs`; a MongoDB compiler can walk the same tree.

use super::check;
use super::value::{Kind, Value};
use crate::error::Result;
use std::marker::PhantomData;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// One of a list (`Value::StringList` / `Value::UuidList`).
    In,
    Like,
    ILike,
    EqIgnoreCase,
    IsNull,
    IsNotNull,
    /// The JSON document contains the given one.
    JsonContains,
    /// Trigram similarity.
    Similar,
    /// The label path is the given one or below it.
    Descendant,
}

/// One comparison of a field with a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: &'static str,
    pub kind: Kind,
    pub op: Op,
    pub value: Value,
}

/// The untyped tree a compiler walks.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterNode {
    Cond(Condition),
    And(Vec<FilterNode>),
    Or(Vec<FilterNode>),
    Not(Box<FilterNode>),
}

/// A filter on entity `E`, made from its columns: `User::EMAIL.eq("a@b.c") & User::ROLE.ne("admin")`.
pub struct Filter<E> {
    node: FilterNode,
    _e: PhantomData<fn() -> E>,
}

impl<E> Clone for Filter<E> {
    fn clone(&self) -> Self {
        Filter { node: self.node.clone(), _e: PhantomData }
    }
}

impl<E> std::fmt::Debug for Filter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.node.fmt(f)
    }
}

impl<E> Filter<E> {
    pub(crate) fn cond(c: Condition) -> Self {
        Filter { node: FilterNode::Cond(c), _e: PhantomData }
    }

    fn wrap(node: FilterNode) -> Self {
        Filter { node, _e: PhantomData }
    }

    /// Every filter holds (an empty list: always true).
    pub fn all(filters: impl IntoIterator<Item = Filter<E>>) -> Self {
        Self::wrap(FilterNode::And(filters.into_iter().map(|f| f.node).collect()))
    }

    /// At least one holds (an empty list: always false).
    pub fn any(filters: impl IntoIterator<Item = Filter<E>>) -> Self {
        Self::wrap(FilterNode::Or(filters.into_iter().map(|f| f.node).collect()))
    }

    pub fn and(self, other: Filter<E>) -> Self {
        match self.node {
            FilterNode::And(mut v) => {
                v.push(other.node);
                Self::wrap(FilterNode::And(v))
            }
            n => Self::wrap(FilterNode::And(vec![n, other.node])),
        }
    }

    pub fn or(self, other: Filter<E>) -> Self {
        match self.node {
            FilterNode::Or(mut v) => {
                v.push(other.node);
                Self::wrap(FilterNode::Or(v))
            }
            n => Self::wrap(FilterNode::Or(vec![n, other.node])),
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Self::wrap(FilterNode::Not(Box::new(self.node)))
    }

    pub fn node(&self) -> &FilterNode {
        &self.node
    }

    pub fn into_node(self) -> FilterNode {
        self.node
    }
}

impl<E> std::ops::BitAnd for Filter<E> {
    type Output = Filter<E>;
    fn bitand(self, rhs: Self) -> Self {
        self.and(rhs)
    }
}

impl<E> std::ops::BitOr for Filter<E> {
    type Output = Filter<E>;
    fn bitor(self, rhs: Self) -> Self {
        self.or(rhs)
    }
}

impl<E> std::ops::Not for Filter<E> {
    type Output = Filter<E>;
    fn not(self) -> Self {
        Filter::not(self)
    }
}

impl FilterNode {
    /// Checks every value before any statement is built: no NUL bytes, label
    /// paths well formed, lists and JSON where the operator needs them.
    pub fn validate(&self) -> Result<()> {
        match self {
            FilterNode::Cond(c) => c.validate(),
            FilterNode::And(v) | FilterNode::Or(v) => v.iter().try_for_each(FilterNode::validate),
            FilterNode::Not(n) => n.validate(),
        }
    }
}

impl Condition {
    pub fn validate(&self) -> Result<()> {
        for s in self.value.strings() {
            check::no_nul(self.field, s)?;
        }
        match (self.op, &self.value) {
            (Op::In, Value::StringList(_) | Value::UuidList(_)) => {}
            (Op::In, _) => return Err(check::invalid(self.field, "`in` needs a list")),
            (Op::IsNull | Op::IsNotNull, _) => {}
            (Op::JsonContains, Value::Json(serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {}
            (Op::JsonContains, _) => {
                return Err(check::invalid(self.field, "containment needs a JSON object or array"))
            }
            (_, v) if !v.fits(self.kind) || matches!(v, Value::Null) => {
                return Err(check::invalid(
                    self.field,
                    "value of the wrong kind for this field (use is_null for nulls)",
                ))
            }
            _ => {}
        }
        if self.kind == Kind::Ltree {
            if let Value::String(s) = &self.value {
                check::label_path(self.field, s)?;
            }
        }
        Ok(())
    }
}
