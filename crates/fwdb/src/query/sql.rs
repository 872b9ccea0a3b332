//! The SQL compiler of the filter AST (PostgreSQL, through sea-query). Every
//! value becomes a bound parameter; only column names from entity definitions
//! and fixed operators reach the statement text.

use super::bind::{to_sea, Bind};
use super::filter::{Condition, FilterNode, Op};
use super::value::Value;
use sea_query::extension::postgres::PgBinOper;
use sea_query::{Cond, Expr, ExprTrait, Func, PostgresQueryBuilder, QueryStatementWriter};

/// A statement ready to run: its text and its bound parameters.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub(crate) params: Vec<Bind>,
}

impl Statement {
    pub(crate) fn build(stmt: &impl QueryStatementWriter) -> Statement {
        let (sql, values) = stmt.build(PostgresQueryBuilder);
        Statement { sql, params: values.0.into_iter().map(Bind::from_sea).collect() }
    }

    /// How many parameters are bound.
    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    pub(crate) fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)).collect()
    }
}

pub(crate) fn val(v: &Value) -> Expr {
    match v {
        Value::Null => Expr::null(),
        v => Expr::val(to_sea(v)),
    }
}

pub(crate) fn col(field: &'static str) -> Expr {
    Expr::col(field)
}

pub(crate) fn node(n: &FilterNode) -> Cond {
    match n {
        FilterNode::Cond(c) => Cond::all().add(condition(c)),
        FilterNode::And(v) => v.iter().fold(Cond::all(), |acc, n| acc.add(node(n))),
        FilterNode::Or(v) => v.iter().fold(Cond::any(), |acc, n| acc.add(node(n))),
        FilterNode::Not(n) => node(n).not(),
    }
}

fn condition(c: &Condition) -> Expr {
    let f = col(c.field);
    let v = || val(&c.value);
    match c.op {
        Op::Eq => f.eq(v()),
        Op::Ne => f.ne(v()),
        Op::Lt => f.lt(v()),
        Op::Le => f.lte(v()),
        Op::Gt => f.gt(v()),
        Op::Ge => f.gte(v()),
        // One array parameter whatever the list's length: one plan, no 65,535-parameter limit.
        Op::In => Expr::cust_with_exprs("$1 = ANY($2)", [f, v()]),
        Op::Like => f.binary(sea_query::BinOper::Like, v()),
        Op::ILike => f.binary(PgBinOper::ILike, v()),
        Op::EqIgnoreCase => Expr::from(Func::lower(f)).eq(Func::lower(v())),
        Op::IsNull => f.is_null(),
        Op::IsNotNull => f.is_not_null(),
        Op::JsonContains => f.binary(PgBinOper::Contains, v()),
        Op::Similar => f.binary(PgBinOper::Similarity, v()),
        Op::Descendant => f.binary(PgBinOper::Contained, v()),
    }
}
