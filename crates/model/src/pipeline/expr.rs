//! `when:` conditions: a small expression language over the run's branch, event, the
//! status of the step's dependencies and the run's parameters.
//!
//! ```text
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "(" expr ")" | operand (("==" | "!=") operand)?
//! operand := branch | event | status | params.NAME | 'text' | "text" | true | false
//! ```
//!
//! `status` is `success` when every dependency succeeded (or was skipped) and `failure`
//! otherwise; a step whose condition names `status` runs whatever happened before it.

use std::collections::BTreeMap;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Both hold.
    And(Box<Condition>, Box<Condition>),
    /// Either holds.
    Or(Box<Condition>, Box<Condition>),
    /// It does not hold.
    Not(Box<Condition>),
    /// Two operands are equal (`==`) or differ (`!=`).
    Compare {
        /// Left side.
        left: Operand,
        /// `==` when true, `!=` when false.
        equal: bool,
        /// Right side.
        right: Operand,
    },
    /// One operand taken as a boolean (`true`, or the text `true`).
    Truthy(Operand),
}

/// A value in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// The run's branch.
    Branch,
    /// What started the run: `push`, `manual`, `cron` or `retry`.
    Event,
    /// `success` or `failure` of the step's dependencies.
    Status,
    /// A run parameter.
    Param(String),
    /// A literal.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
}

/// A value a parameter has in a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean parameter.
    Bool(bool),
    /// A string or choice parameter.
    Text(String),
}

impl ParamValue {
    fn text(&self) -> String {
        match self {
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Text(s) => s.clone(),
        }
    }
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct WhenContext<'a> {
    /// The run's branch.
    pub branch: &'a str,
    /// What started the run.
    pub event: &'a str,
    /// Whether every dependency succeeded or was skipped.
    pub dependencies_ok: bool,
    /// The run's parameters (defaults applied).
    pub params: &'a BTreeMap<String, ParamValue>,
}

/// A syntax error at a character offset of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Characters from the start of the expression.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl Condition {
    /// Parses a condition; parameter names are checked against `params`.
    pub fn parse(text: &str, params: &dyn Fn(&str) -> bool) -> Result<Condition, ExprError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            at: 0,
            params,
            end: text.chars().count(),
        };
        let c = p.or()?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(ExprError {
                offset: t.offset,
                message: format!("unexpected {}", t.kind.describe()),
            });
        }
        Ok(c)
    }

    /// True when the condition names `status` (the step then runs after failures too).
    pub fn uses_status(&self) -> bool {
        match self {
            Condition::And(a, b) | Condition::Or(a, b) => a.uses_status() || b.uses_status(),
            Condition::Not(c) => c.uses_status(),
            Condition::Compare { left, right, .. } => {
                *left == Operand::Status || *right == Operand::Status
            }
            Condition::Truthy(o) => *o == Operand::Status,
        }
    }

    /// Evaluates the condition.
    pub fn eval(&self, cx: &WhenContext<'_>) -> bool {
        match self {
            Condition::And(a, b) => a.eval(cx) && b.eval(cx),
            Condition::Or(a, b) => a.eval(cx) || b.eval(cx),
            Condition::Not(c) => !c.eval(cx),
            Condition::Compare { left, equal, right } => {
                (value(left, cx) == value(right, cx)) == *equal
            }
            Condition::Truthy(o) => value(o, cx) == "true",
        }
    }
}

fn value(o: &Operand, cx: &WhenContext<'_>) -> String {
    match o {
        Operand::Branch => cx.branch.to_string(),
        Operand::Event => cx.event.to_string(),
        Operand::Status => if cx.dependencies_ok {
            "success"
        } else {
            "failure"
        }
        .to_string(),
        Operand::Param(name) => cx
            .params
            .get(name)
            .map(ParamValue::text)
            .unwrap_or_default(),
        Operand::Text(s) => s.clone(),
        Operand::Bool(b) => b.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    And,
    Or,
    Not,
    Eq,
    Ne,
    Open,
    Close,
    Ident(String),
    Text(String),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::And => "`&&`".into(),
            Kind::Or => "`||`".into(),
            Kind::Not => "`!`".into(),
            Kind::Eq => "`==`".into(),
            Kind::Ne => "`!=`".into(),
            Kind::Open => "`(`".into(),
            Kind::Close => "`)`".into(),
            Kind::Ident(s) => format!("`{s}`"),
            Kind::Text(s) => format!("'{s}'"),
        }
    }
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    offset: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two = |a: char, b: char| c == a && chars.get(i + 1) == Some(&b);
        let (kind, len) = if c.is_whitespace() {
            i += 1;
            continue;
        } else if two('&', '&') {
            (Kind::And, 2)
        } else if two('|', '|') {
            (Kind::Or, 2)
        } else if two('=', '=') {
            (Kind::Eq, 2)
        } else if two('!', '=') {
            (Kind::Ne, 2)
        } else if c == '!' {
            (Kind::Not, 1)
        } else if c == '(' {
            (Kind::Open, 1)
        } else if c == ')' {
            (Kind::Close, 1)
        } else if c == '\'' || c == '"' {
            let Some(close) = chars[i + 1..].iter().position(|x| *x == c) else {
                return Err(ExprError {
                    offset: i,
                    message: "unterminated string".into(),
                });
            };
            let s: String = chars[i + 1..i + 1 + close].iter().collect();
            (Kind::Text(s), close + 2)
        } else if c.is_ascii_alphabetic() || c == '_' {
            let len = chars[i..]
                .iter()
                .take_while(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
                .count();
            (Kind::Ident(chars[i..i + len].iter().collect()), len)
        } else {
            return Err(ExprError {
                offset: i,
                message: format!("unexpected character `{c}`"),
            });
        };
        out.push(Token { kind, offset: i });
        i += len;
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    params: &'a dyn Fn(&str) -> bool,
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Kind> {
        self.tokens.get(self.at).map(|t| &t.kind)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.offset)
    }

    fn or(&mut self) -> Result<Condition, ExprError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Kind::Or) {
            self.at += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ExprError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Kind::And) {
            self.at += 1;
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, ExprError> {
        match self.peek() {
            Some(Kind::Not) => {
                self.at += 1;
                Ok(Condition::Not(Box::new(self.unary()?)))
            }
            Some(Kind::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Kind::Close) {
                    return Err(ExprError {
                        offset: self.offset(),
                        message: "expected `)`".into(),
                    });
                }
                self.at += 1;
                Ok(inner)
            }
            _ => {
                let left = self.operand()?;
                let equal = match self.peek() {
                    Some(Kind::Eq) => true,
                    Some(Kind::Ne) => false,
                    _ => return Ok(Condition::Truthy(left)),
                };
                self.at += 1;
                let right = self.operand()?;
                Ok(Condition::Compare { left, equal, right })
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        let offset = self.offset();
        let Some(token) = self.tokens.get(self.at) else {
            return Err(ExprError {
                offset,
                message: "expected a value".into(),
            });
        };
        let operand = match &token.kind {
            Kind::Text(s) => Operand::Text(s.clone()),
            Kind::Ident(id) => match id.as_str() {
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                "branch" => Operand::Branch,
                "event" => Operand::Event,
                "status" => Operand::Status,
                other => match other.strip_prefix("params.") {
                    Some(name) if (self.params)(name) => Operand::Param(name.to_string()),
                    Some(name) => {
                        return Err(ExprError {
                            offset,
                            message: format!("unknown parameter `{name}`"),
                        });
                    }
                    None => {
                        return Err(ExprError {
                            offset,
                            message: format!(
                                "unknown name `{other}` (known: branch, event, status, params.NAME)"
                            ),
                        });
                    }
                },
            },
            other => {
                return Err(ExprError {
                    offset,
                    message: format!("expected a value, found {}", other.describe()),
                });
            }
        };
        self.at += 1;
        Ok(operand)
    }
}
