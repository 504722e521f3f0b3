//! Recursive-descent (Pratt) PromQL parser with Prometheus' precedence rules and type checks.

use crate::Error;
use crate::ast::{
    AggOp, AggregateExpr, BinOp, BinaryExpr, Call, Cardinality, Expr, Grouping, MatrixSelector,
    Subquery, ValueType, VectorMatching, VectorSelector,
};
use crate::functions;
use crate::labels::{METRIC_NAME, MatchOp, Matcher};
use crate::lexer::{Tok, Token, lex};

/// Longest query text accepted, to bound parser work and recursion.
const MAX_QUERY_LEN: usize = 64 * 1024;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 200;

/// Parses a PromQL expression.
pub fn parse(input: &str) -> Result<Expr, Error> {
    if input.len() > MAX_QUERY_LEN {
        return Err(Error::Parse {
            pos: 0,
            msg: format!("query is longer than {MAX_QUERY_LEN} bytes"),
        });
    }
    let toks = lex(input)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(p.err_at(0, "no expression found in input"));
    }
    let expr = p.expr(0)?;
    if p.peek() != &Tok::Eof {
        let t = p.peek().describe();
        return Err(p.err(format!("unexpected {t}")));
    }
    Ok(expr)
}

/// Parses a series selector such as the API's `match[]` parameter (`up{job="api"}`) into matchers.
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>, Error> {
    match parse(input)? {
        Expr::Vector(vs) if vs.offset_ms == 0 => Ok(vs.all_matchers()),
        _ => Err(Error::Parse {
            pos: 0,
            msg: format!("expected a series selector, got {input:?}"),
        }),
    }
}

/// A duration token, or a number of seconds (Prometheus 3 accepts `[300]` for `[5m]`), in milliseconds.
fn duration_ms(tok: &Tok) -> Option<i64> {
    match tok {
        Tok::Duration(d) => Some(*d),
        Tok::Number(v) if v.is_finite() && v.abs() < 9.0e15 => Some((v * 1000.0).round() as i64),
        _ => None,
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

/// Keywords are case-insensitive in PromQL (function names are not).
fn is_keyword(word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    let word = word.as_str();
    matches!(
        word,
        "and"
            | "or"
            | "unless"
            | "atan2"
            | "by"
            | "without"
            | "on"
            | "ignoring"
            | "group_left"
            | "group_right"
            | "bool"
            | "offset"
    ) || AggOp::from_name(word).is_some()
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }

    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].pos
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        self.err_at(self.pos(), msg)
    }

    fn err_at(&self, pos: usize, msg: impl Into<String>) -> Error {
        Error::Parse {
            pos,
            msg: msg.into(),
        }
    }

    fn expect(&mut self, tok: Tok, context: &str) -> Result<(), Error> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            let got = self.peek().describe();
            Err(self.err(format!(
                "unexpected {got} in {context}, expected {}",
                tok.describe()
            )))
        }
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    fn binop(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Add => BinOp::Add,
            Tok::Sub => BinOp::Sub,
            Tok::Mul => BinOp::Mul,
            Tok::Div => BinOp::Div,
            Tok::Mod => BinOp::Mod,
            Tok::Pow => BinOp::Pow,
            Tok::Eql => BinOp::Eql,
            Tok::Neq => BinOp::Neq,
            Tok::Gtr => BinOp::Gtr,
            Tok::Lss => BinOp::Lss,
            Tok::Gte => BinOp::Gte,
            Tok::Lte => BinOp::Lte,
            Tok::Ident(w) => match w.to_ascii_lowercase().as_str() {
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "unless" => BinOp::Unless,
                "atan2" => BinOp::Atan2,
                _ => return None,
            },
            _ => return None,
        })
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("expression nests too deeply"));
        }
        let mut lhs = self.unary()?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_pos = self.pos();
            self.bump();
            let (return_bool, matching) = self.bin_modifiers(op)?;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            lhs = self.binary(
                op_pos,
                BinaryExpr {
                    op,
                    lhs,
                    rhs,
                    return_bool,
                    matching,
                },
            )?;
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        match self.peek() {
            Tok::Sub | Tok::Add => {
                let pos = self.pos();
                let neg = self.bump() == Tok::Sub;
                // Unary operators bind like `*`: `-a ^ b` is `-(a ^ b)`, `-a * b` is `(-a) * b`.
                let e = self.expr(BinOp::Pow.precedence())?;
                match e.value_type() {
                    ValueType::Scalar | ValueType::Vector => {}
                    t => {
                        return Err(self.err_at(
                            pos,
                            format!("unary expression only allowed on expressions of type scalar or instant vector, got {:?}", t.as_str()),
                        ));
                    }
                }
                Ok(match (neg, e) {
                    (false, e) => e,
                    (true, Expr::Number(v)) => Expr::Number(-v),
                    (true, e) => Expr::Neg(Box::new(e)),
                })
            }
            _ => {
                let e = self.primary()?;
                self.postfix(e)
            }
        }
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, Error> {
        loop {
            match self.peek() {
                Tok::LBracket => e = self.range_suffix(e)?,
                Tok::Ident(w) if w.eq_ignore_ascii_case("offset") => {
                    let pos = self.pos();
                    self.bump();
                    let neg = if *self.peek() == Tok::Sub {
                        self.bump();
                        true
                    } else {
                        false
                    };
                    let tok = self.bump();
                    let d = match duration_ms(&tok) {
                        Some(d) => {
                            if neg {
                                -d
                            } else {
                                d
                            }
                        }
                        None => {
                            let other = tok;
                            return Err(self.err(format!(
                                "unexpected {} in offset, expected duration",
                                other.describe()
                            )));
                        }
                    };
                    let slot = match &mut e {
                        Expr::Vector(vs) => &mut vs.offset_ms,
                        Expr::Matrix(ms) => &mut ms.selector.offset_ms,
                        Expr::Subquery(sq) => &mut sq.offset_ms,
                        _ => {
                            return Err(self.err_at(
                                pos,
                                "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                            ));
                        }
                    };
                    if *slot != 0 {
                        return Err(self.err_at(pos, "offset may not be set multiple times"));
                    }
                    *slot = d;
                }
                Tok::At => return Err(self.err("@ modifier is not supported by slipway")),
                _ => return Ok(e),
            }
        }
    }

    fn range_suffix(&mut self, e: Expr) -> Result<Expr, Error> {
        let open = self.pos();
        self.bump();
        let tok = self.bump();
        let range_ms = match duration_ms(&tok) {
            Some(d) if d > 0 => d,
            Some(_) => {
                return Err(self.err_at(open + 1, "duration must be greater than 0"));
            }
            None => {
                let other = tok;
                return Err(self.err(format!(
                    "unexpected {} in range, expected duration",
                    other.describe()
                )));
            }
        };
        if *self.peek() == Tok::Colon {
            self.bump();
            let step_ms = match duration_ms(self.peek()) {
                Some(d) if d > 0 => {
                    self.bump();
                    Some(d)
                }
                Some(_) => return Err(self.err("duration must be greater than 0")),
                None => None,
            };
            self.expect(Tok::RBracket, "subquery")?;
            if e.value_type() != ValueType::Vector {
                return Err(self.err_at(
                    open,
                    format!(
                        "subquery is only allowed on instant vector, got {}",
                        e.value_type().as_str()
                    ),
                ));
            }
            if let Expr::Vector(vs) = &e
                && vs.offset_ms != 0
            {
                return Err(self.err_at(open, "no offset modifiers allowed before subquery"));
            }
            return Ok(Expr::Subquery(Box::new(Subquery {
                expr: e,
                range_ms,
                step_ms,
                offset_ms: 0,
            })));
        }
        self.expect(Tok::RBracket, "range")?;
        match e {
            Expr::Vector(vs) if vs.offset_ms == 0 => Ok(Expr::Matrix(MatrixSelector {
                selector: vs,
                range_ms,
            })),
            Expr::Vector(_) => Err(self.err_at(open, "no offset modifiers allowed before range")),
            _ => Err(self.err_at(open, "ranges only allowed for vector selectors")),
        }
    }

    fn primary(&mut self) -> Result<Expr, Error> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Number(v) => {
                self.bump();
                Ok(Expr::Number(v))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::String(s))
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr(0)?;
                self.expect(Tok::RParen, "paren expression")?;
                Ok(Expr::Paren(Box::new(e)))
            }
            Tok::LBrace => self.selector(None, pos),
            Tok::Ident(word) => {
                if let Some(op) = AggOp::from_name(&word.to_ascii_lowercase())
                    && (matches!(self.peek_at(1), Tok::LParen)
                        || matches!(self.peek_at(1), Tok::Ident(w) if w.eq_ignore_ascii_case("by") || w.eq_ignore_ascii_case("without")))
                {
                    self.bump();
                    return self.aggregate(op, pos);
                }
                if *self.peek_at(1) == Tok::LParen {
                    self.bump();
                    return self.call(word, pos);
                }
                if is_keyword(&word) {
                    return Err(self.err(format!("unexpected keyword {word:?}")));
                }
                self.bump();
                self.selector(Some(word), pos)
            }
            // Prometheus 3 reads a duration where a number is expected as seconds (`1h` is 3600).
            Tok::Duration(d) => {
                self.bump();
                Ok(Expr::Number(d as f64 / 1000.0))
            }
            other => Err(self.err(format!("unexpected {}", other.describe()))),
        }
    }

    fn selector(&mut self, name: Option<String>, pos: usize) -> Result<Expr, Error> {
        let mut matchers = Vec::new();
        if *self.peek() == Tok::LBrace {
            self.bump();
            loop {
                if *self.peek() == Tok::RBrace {
                    self.bump();
                    break;
                }
                let lpos = self.pos();
                let label = match self.bump() {
                    Tok::Ident(l) if valid_label_name(&l) => l,
                    other => {
                        return Err(self.err_at(
                            lpos,
                            format!(
                                "unexpected {} in label matching, expected label name",
                                other.describe()
                            ),
                        ));
                    }
                };
                let op = match match_op(self.peek()) {
                    Some(op) => op,
                    None => {
                        let got = self.peek().describe();
                        return Err(self.err(format!(
                            "unexpected {got} in label matching, expected label matching operator"
                        )));
                    }
                };
                self.bump();
                let value = match self.bump() {
                    Tok::Str(s) => s,
                    other => {
                        return Err(self.err_at(
                            self.toks[self.i.saturating_sub(1)].pos,
                            format!(
                                "unexpected {} in label matching, expected string",
                                other.describe()
                            ),
                        ));
                    }
                };
                let m =
                    Matcher::new(op, label, value).map_err(|e| self.err_at(lpos, e.to_string()))?;
                matchers.push(m);
                match self.peek() {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RBrace => {}
                    other => {
                        let got = other.describe();
                        return Err(self.err(format!(
                            "unexpected {got} in label matching, expected \",\" or \"}}\""
                        )));
                    }
                }
            }
        }
        if let Some(n) = &name {
            if let Some(m) = matchers.iter().find(|m| m.name == METRIC_NAME) {
                return Err(self.err_at(
                    pos,
                    format!("metric name must not be set twice: {n:?} or {:?}", m.value),
                ));
            }
        } else if matchers.iter().all(|m| m.matches("")) {
            return Err(self.err_at(
                pos,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        Ok(Expr::Vector(VectorSelector {
            name,
            matchers,
            offset_ms: 0,
        }))
    }

    fn label_list(&mut self, context: &str) -> Result<Vec<String>, Error> {
        self.expect(Tok::LParen, context)?;
        let mut labels = Vec::new();
        loop {
            match self.bump() {
                Tok::RParen => return Ok(labels),
                Tok::Ident(l) if valid_label_name(&l) => labels.push(l),
                other => {
                    return Err(self.err(format!(
                        "unexpected {} in {context}, expected label",
                        other.describe()
                    )));
                }
            }
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {}
                other => {
                    let got = other.describe();
                    return Err(self.err(format!(
                        "unexpected {got} in {context}, expected \",\" or \")\""
                    )));
                }
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, Error> {
        let without = match self.peek() {
            Tok::Ident(w) if w.eq_ignore_ascii_case("by") => false,
            Tok::Ident(w) if w.eq_ignore_ascii_case("without") => true,
            _ => return Ok(None),
        };
        self.bump();
        let labels = self.label_list("grouping opts")?;
        Ok(Some(Grouping { without, labels }))
    }

    fn aggregate(&mut self, op: AggOp, pos: usize) -> Result<Expr, Error> {
        let mut grouping = self.grouping()?;
        let args_pos = self.pos();
        let mut args = self.args("aggregation")?;
        if let Some(g) = self.grouping()? {
            if grouping.is_some() {
                return Err(self.err_at(pos, "aggregation must only contain one grouping clause"));
            }
            grouping = Some(g);
        }
        let want = if op.has_param() { 2 } else { 1 };
        if args.len() != want {
            return Err(self.err_at(
                args_pos,
                format!("wrong number of arguments for aggregate expression provided, expected {want}, got {}", args.len()),
            ));
        }
        let expr = args.pop().unwrap_or(Expr::Number(0.0));
        let param = args.pop();
        if expr.value_type() != ValueType::Vector {
            return Err(self.err_at(
                args_pos,
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    expr.value_type().as_str()
                ),
            ));
        }
        if let Some(p) = &param {
            let want = if op == AggOp::CountValues {
                ValueType::String
            } else {
                ValueType::Scalar
            };
            if p.value_type() != want {
                return Err(self.err_at(
                    args_pos,
                    format!(
                        "expected type {} in aggregation parameter, got {}",
                        want.as_str(),
                        p.value_type().as_str()
                    ),
                ));
            }
        }
        Ok(Expr::Aggregate(Box::new(AggregateExpr {
            op,
            param,
            expr,
            grouping,
        })))
    }

    fn args(&mut self, context: &str) -> Result<Vec<Expr>, Error> {
        self.expect(Tok::LParen, context)?;
        let mut args = Vec::new();
        if *self.peek() == Tok::RParen {
            self.bump();
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            match self.bump() {
                Tok::Comma if *self.peek() == Tok::RParen => {
                    self.bump();
                    return Ok(args);
                }
                Tok::Comma => {}
                Tok::RParen => return Ok(args),
                other => {
                    return Err(self.err(format!(
                        "unexpected {} in {context}, expected \",\" or \")\"",
                        other.describe()
                    )));
                }
            }
        }
    }

    fn call(&mut self, func: String, pos: usize) -> Result<Expr, Error> {
        let sig = match functions::signature(&func) {
            Some(sig) => sig,
            None if functions::is_prometheus_function(&func) => {
                return Err(self.err_at(
                    pos,
                    format!("function {func:?} is not supported by slipway"),
                ));
            }
            None => return Err(self.err_at(pos, format!("unknown function with name {func:?}"))),
        };
        let args = self.args("function call")?;
        let min = sig.args.len() - sig.optional;
        let max = if sig.variadic {
            usize::MAX
        } else {
            sig.args.len()
        };
        let n = args.len();
        if n < min || n > max {
            let expected = if min == max {
                min.to_string()
            } else if n < min {
                format!("at least {min}")
            } else {
                format!("at most {max}")
            };
            return Err(self.err_at(
                pos,
                format!("expected {expected} argument(s) in call to {func:?}, got {n}"),
            ));
        }
        for (i, a) in args.iter().enumerate() {
            let want = sig.args[i.min(sig.args.len() - 1)];
            let got = a.value_type();
            if got != want {
                return Err(self.err_at(
                    pos,
                    format!(
                        "expected type {} in call to function {func:?}, got {}",
                        want.as_str(),
                        got.as_str()
                    ),
                ));
            }
        }
        Ok(Expr::Call(Call { func, args }))
    }

    fn bin_modifiers(&mut self, op: BinOp) -> Result<(bool, Option<VectorMatching>), Error> {
        let mut return_bool = false;
        if self.is_ident("bool") {
            if !op.is_comparison() {
                return Err(self.err("bool modifier can only be used on comparison operators"));
            }
            self.bump();
            return_bool = true;
        }
        let on = match self.peek() {
            Tok::Ident(w) if w.eq_ignore_ascii_case("on") => true,
            Tok::Ident(w) if w.eq_ignore_ascii_case("ignoring") => false,
            _ => return Ok((return_bool, None)),
        };
        self.bump();
        let labels = self.label_list("grouping opts")?;
        let card = match self.peek() {
            Tok::Ident(w) if w.eq_ignore_ascii_case("group_left") => Cardinality::ManyToOne,
            Tok::Ident(w) if w.eq_ignore_ascii_case("group_right") => Cardinality::OneToMany,
            _ => Cardinality::OneToOne,
        };
        let mut include = Vec::new();
        if card != Cardinality::OneToOne {
            if op.is_set() {
                return Err(self.err(format!(
                    "no grouping allowed for {:?} operation",
                    op.as_str()
                )));
            }
            self.bump();
            if *self.peek() == Tok::LParen {
                include = self.label_list("grouping opts")?;
            }
            if on && let Some(l) = include.iter().find(|l| labels.contains(l)) {
                return Err(self.err(format!(
                    "label {l:?} must not occur in ON and GROUP clause at once"
                )));
            }
        }
        Ok((
            return_bool,
            Some(VectorMatching {
                on,
                labels,
                card,
                include,
            }),
        ))
    }

    fn binary(&self, pos: usize, b: BinaryExpr) -> Result<Expr, Error> {
        let (lt, rt) = (b.lhs.value_type(), b.rhs.value_type());
        let ok = |t| matches!(t, ValueType::Scalar | ValueType::Vector);
        if !ok(lt) || !ok(rt) {
            return Err(self.err_at(
                pos,
                "binary expression must contain only scalar and instant vector types",
            ));
        }
        let both_scalar = lt == ValueType::Scalar && rt == ValueType::Scalar;
        if both_scalar && b.op.is_comparison() && !b.return_bool {
            return Err(self.err_at(pos, "comparisons between scalars must use BOOL modifier"));
        }
        if b.op.is_set() && (lt == ValueType::Scalar || rt == ValueType::Scalar) {
            return Err(self.err_at(
                pos,
                format!(
                    "set operator {:?} not allowed in binary scalar expression",
                    b.op.as_str()
                ),
            ));
        }
        if b.matching.is_some() && (lt != ValueType::Vector || rt != ValueType::Vector) {
            return Err(self.err_at(pos, "vector matching only allowed between instant vectors"));
        }
        Ok(Expr::Binary(Box::new(b)))
    }
}

/// The matcher operator a token stands for, if any.
fn match_op(tok: &Tok) -> Option<MatchOp> {
    match tok {
        Tok::Assign => Some(MatchOp::Equal),
        Tok::Neq => Some(MatchOp::NotEqual),
        Tok::EqlRegex => Some(MatchOp::Regex),
        Tok::NeqRegex => Some(MatchOp::NotRegex),
        _ => None,
    }
}
