//! The PromQL syntax tree and its pretty-printer (printed text parses back to the same tree).

use std::fmt;

use crate::labels::{METRIC_NAME, Matcher};

/// A parsed PromQL expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A float literal (unary minus on a literal is folded in).
    Number(f64),
    /// A string literal.
    String(String),
    /// `name{matchers} offset d`
    Vector(VectorSelector),
    /// `name{matchers}[range] offset d`
    Matrix(MatrixSelector),
    /// `expr[range:step] offset d`
    Subquery(Box<Subquery>),
    /// `(expr)`
    Paren(Box<Expr>),
    /// `-expr`
    Neg(Box<Expr>),
    /// `lhs op rhs`
    Binary(Box<BinaryExpr>),
    /// `sum by (l) (expr)` and the other aggregation operators.
    Aggregate(Box<AggregateExpr>),
    /// `func(args...)`
    Call(Call),
}

/// An instant vector selector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSelector {
    /// The metric name written before the braces, if any.
    pub name: Option<String>,
    /// Matchers written inside the braces.
    pub matchers: Vec<Matcher>,
    /// `offset` in milliseconds (negative looks ahead).
    pub offset_ms: i64,
}

impl VectorSelector {
    /// All matchers including the implicit `__name__="name"`, as passed to storage.
    pub fn all_matchers(&self) -> Vec<Matcher> {
        let mut all = Vec::with_capacity(self.matchers.len() + 1);
        if let Some(name) = &self.name {
            all.push(Matcher::equal(METRIC_NAME, name.as_str()));
        }
        all.extend(self.matchers.iter().cloned());
        all
    }
}

/// A range vector selector.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixSelector {
    /// The selector; its `offset_ms` applies to the whole range.
    pub selector: VectorSelector,
    /// Range in milliseconds.
    pub range_ms: i64,
}

/// A subquery.
#[derive(Clone, Debug, PartialEq)]
pub struct Subquery {
    /// The inner instant-vector expression.
    pub expr: Expr,
    /// Range in milliseconds.
    pub range_ms: i64,
    /// Resolution in milliseconds; `None` uses the engine's default.
    pub step_ms: Option<i64>,
    /// `offset` in milliseconds.
    pub offset_ms: i64,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    And,
    Or,
    Unless,
}

impl BinOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eql => "==",
            BinOp::Neq => "!=",
            BinOp::Gtr => ">",
            BinOp::Lss => "<",
            BinOp::Gte => ">=",
            BinOp::Lte => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    /// Binding strength, higher binds tighter (Prometheus' table).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Atan2 => 5,
            BinOp::Pow => 6,
        }
    }

    /// `== != > < >= <=`
    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    /// `and or unless`
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

/// Which side of a vector match may have many series per match group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    /// `group_left`
    ManyToOne,
    /// `group_right`
    OneToMany,
}

/// `on(...)`/`ignoring(...)` and `group_left(...)`/`group_right(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorMatching {
    /// true for `on`, false for `ignoring`.
    pub on: bool,
    /// The labels listed in `on`/`ignoring`.
    pub labels: Vec<String>,
    /// Grouping direction.
    pub card: Cardinality,
    /// Labels listed in `group_left`/`group_right`, copied from the "one" side.
    pub include: Vec<String>,
}

/// A binary operation.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryExpr {
    pub op: BinOp,
    pub lhs: Expr,
    pub rhs: Expr,
    /// `bool` modifier on comparisons.
    pub return_bool: bool,
    /// Vector matching as written (`None`: no modifier).
    pub matching: Option<VectorMatching>,
}

/// Aggregation operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

impl AggOp {
    /// Looks an aggregation operator up by name.
    pub fn from_name(name: &str) -> Option<AggOp> {
        Some(match name {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "quantile" => AggOp::Quantile,
            "count_values" => AggOp::CountValues,
            _ => return None,
        })
    }

    /// The operator's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::Quantile => "quantile",
            AggOp::CountValues => "count_values",
        }
    }

    /// Whether the operator takes a parameter before the vector.
    pub fn has_param(self) -> bool {
        matches!(
            self,
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::CountValues
        )
    }
}

/// `by (...)` or `without (...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Grouping {
    /// true for `without`.
    pub without: bool,
    pub labels: Vec<String>,
}

/// An aggregation.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateExpr {
    pub op: AggOp,
    /// The parameter of topk, bottomk, quantile and count_values.
    pub param: Option<Expr>,
    pub expr: Expr,
    /// Grouping as written (`None`: aggregate everything).
    pub grouping: Option<Grouping>,
}

/// A function call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub func: String,
    pub args: Vec<Expr>,
}

/// Formats a float the way PromQL reads it back (`NaN`, `Inf`, `-Inf`, shortest round-trip digits).
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Formats milliseconds as a Prometheus duration (`1h30m`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    let mut rest = ms.unsigned_abs();
    for (unit, size) in [
        ("y", 365 * 86_400_000u64),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Quotes a string as a PromQL double-quoted literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_offset(f: &mut fmt::Formatter<'_>, offset_ms: i64) -> fmt::Result {
    if offset_ms != 0 {
        write!(f, " offset {}", format_duration(offset_ms))?;
    }
    Ok(())
}

fn write_selector(f: &mut fmt::Formatter<'_>, vs: &VectorSelector) -> fmt::Result {
    if let Some(name) = &vs.name {
        f.write_str(name)?;
    }
    if vs.name.is_none() || !vs.matchers.is_empty() {
        f.write_str("{")?;
        for (i, m) in vs.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")?;
    }
    Ok(())
}

fn write_labels(f: &mut fmt::Formatter<'_>, labels: &[String]) -> fmt::Result {
    write!(f, "({})", labels.join(", "))
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(v) => f.write_str(&format_number(*v)),
            Expr::String(s) => f.write_str(&quote(s)),
            Expr::Vector(vs) => {
                write_selector(f, vs)?;
                write_offset(f, vs.offset_ms)
            }
            Expr::Matrix(ms) => {
                write_selector(f, &ms.selector)?;
                write!(f, "[{}]", format_duration(ms.range_ms))?;
                write_offset(f, ms.selector.offset_ms)
            }
            Expr::Subquery(sq) => {
                let step = sq.step_ms.map(format_duration).unwrap_or_default();
                write!(f, "{}[{}:{step}]", sq.expr, format_duration(sq.range_ms))?;
                write_offset(f, sq.offset_ms)
            }
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::Binary(b) => {
                write!(f, "{} {}", b.lhs, b.op.as_str())?;
                if b.return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = &b.matching {
                    f.write_str(if m.on { " on" } else { " ignoring" })?;
                    write_labels(f, &m.labels)?;
                    match m.card {
                        Cardinality::OneToOne => {}
                        Cardinality::ManyToOne => {
                            f.write_str(" group_left")?;
                            write_labels(f, &m.include)?;
                        }
                        Cardinality::OneToMany => {
                            f.write_str(" group_right")?;
                            write_labels(f, &m.include)?;
                        }
                    }
                }
                write!(f, " {}", b.rhs)
            }
            Expr::Aggregate(a) => {
                f.write_str(a.op.as_str())?;
                if let Some(g) = &a.grouping {
                    f.write_str(if g.without { " without " } else { " by " })?;
                    write_labels(f, &g.labels)?;
                    f.write_str(" ")?;
                }
                match &a.param {
                    Some(p) => write!(f, "({p}, {})", a.expr),
                    None => write!(f, "({})", a.expr),
                }
            }
            Expr::Call(c) => {
                write!(f, "{}(", c.func)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// The type an expression evaluates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    String,
    Vector,
    Matrix,
}

impl ValueType {
    /// Prometheus' name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
        }
    }
}

impl Expr {
    /// Static type of the expression.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) => ValueType::Scalar,
            Expr::String(_) => ValueType::String,
            Expr::Vector(_) | Expr::Aggregate(_) => ValueType::Vector,
            Expr::Matrix(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Paren(e) | Expr::Neg(e) => e.value_type(),
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Call(c) => {
                crate::functions::signature(&c.func).map_or(ValueType::Vector, |s| s.ret)
            }
        }
    }
}
