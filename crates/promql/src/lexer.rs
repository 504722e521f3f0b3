//! PromQL tokenizer: turns query text into tokens that carry their byte position.

use crate::Error;

/// A token kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Number(f64),
    /// A duration literal in milliseconds.
    Duration(i64),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    At,
    Assign,
    EqlRegex,
    NeqRegex,
    Eql,
    Neq,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Gtr,
    Lss,
    Gte,
    Lte,
    Eof,
}

impl Tok {
    /// How the token reads in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Number(n) => format!("number \"{}\"", crate::ast::format_number(*n)),
            Tok::Duration(d) => format!("duration \"{}\"", crate::ast::format_duration(*d)),
            Tok::Str(s) => format!("string {}", crate::ast::quote(s)),
            Tok::Eof => "end of input".to_string(),
            other => format!("\"{}\"", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::At => "@",
            Tok::Assign => "=",
            Tok::EqlRegex => "=~",
            Tok::NeqRegex => "!~",
            Tok::Eql => "==",
            Tok::Neq => "!=",
            Tok::Add => "+",
            Tok::Sub => "-",
            Tok::Mul => "*",
            Tok::Div => "/",
            Tok::Mod => "%",
            Tok::Pow => "^",
            Tok::Gtr => ">",
            Tok::Lss => "<",
            Tok::Gte => ">=",
            Tok::Lte => "<=",
            Tok::Ident(_) | Tok::Number(_) | Tok::Duration(_) | Tok::Str(_) | Tok::Eof => "",
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
}

fn err(pos: usize, msg: impl Into<String>) -> Error {
    Error::Parse {
        pos,
        msg: msg.into(),
    }
}

/// Splits `input` into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(input: &str) -> Result<Vec<Token>, Error> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let two = |x: u8| b.get(i + 1) == Some(&x);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b':' if !b.get(i + 1).is_some_and(|&n| is_ident_start(n)) => (Tok::Colon, 1),
            b'@' => (Tok::At, 1),
            b'+' => (Tok::Add, 1),
            b'-' => (Tok::Sub, 1),
            b'*' => (Tok::Mul, 1),
            b'/' => (Tok::Div, 1),
            b'%' => (Tok::Mod, 1),
            b'^' => (Tok::Pow, 1),
            b'=' if two(b'=') => (Tok::Eql, 2),
            b'=' if two(b'~') => (Tok::EqlRegex, 2),
            b'=' => (Tok::Assign, 1),
            b'!' if two(b'=') => (Tok::Neq, 2),
            b'!' if two(b'~') => (Tok::NeqRegex, 2),
            b'>' if two(b'=') => (Tok::Gte, 2),
            b'>' => (Tok::Gtr, 1),
            b'<' if two(b'=') => (Tok::Lte, 2),
            b'<' => (Tok::Lss, 1),
            b'"' | b'\'' | b'`' => {
                let (s, len) = lex_string(input, i)?;
                (Tok::Str(s), len)
            }
            b'0'..=b'9' => lex_number(input, i)?,
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => lex_number(input, i)?,
            c if is_ident_start(c) => {
                let mut j = i + 1;
                while j < b.len() && is_ident_char(b[j]) {
                    j += 1;
                }
                let word = &input[i..j];
                let tok = if word.eq_ignore_ascii_case("inf") {
                    Tok::Number(f64::INFINITY)
                } else if word.eq_ignore_ascii_case("nan") {
                    Tok::Number(f64::NAN)
                } else {
                    Tok::Ident(word.to_string())
                };
                (tok, j - i)
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(err(i, format!("unexpected character: {ch:?}")));
            }
        };
        out.push(Token { tok, pos: start });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: input.len(),
    });
    Ok(out)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn lex_number(input: &str, start: usize) -> Result<(Tok, usize), Error> {
    let b = input.as_bytes();
    let mut j = start;
    let bad = |end: usize| {
        let mut e = end;
        while e < b.len() && (is_ident_char(b[e]) || b[e] == b'.') {
            e += 1;
        }
        err(
            start,
            format!("bad number or duration syntax: {:?}", &input[start..e]),
        )
    };
    if b[j] == b'0' && matches!(b.get(j + 1), Some(b'x' | b'X')) {
        j += 2;
        let digits = j;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        if j == digits || b.get(j).is_some_and(|&c| is_ident_char(c)) {
            return Err(bad(j));
        }
        let v = u64::from_str_radix(&input[digits..j], 16).map_err(|_| bad(j))?;
        return Ok((Tok::Number(v as f64), j - start));
    }
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    let int_end = j;
    if j < b.len() && is_unit_start(b[j]) && !(b[j] == b'e' && exponent_follows(b, j)) {
        return lex_duration(input, start)
            .map(|(d, len)| (Tok::Duration(d), len))
            .map_err(|_| bad(int_end));
    }
    if b.get(j) == Some(&b'.') {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    if matches!(b.get(j), Some(b'e' | b'E')) && exponent_follows(b, j) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    if b.get(j)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    {
        return Err(bad(j));
    }
    let v: f64 = input[start..j].parse().map_err(|_| bad(j))?;
    Ok((Tok::Number(v), j - start))
}

fn exponent_follows(b: &[u8], e: usize) -> bool {
    match b.get(e + 1) {
        Some(c) if c.is_ascii_digit() => true,
        Some(b'+' | b'-') => b.get(e + 2).is_some_and(u8::is_ascii_digit),
        _ => false,
    }
}

fn is_unit_start(c: u8) -> bool {
    matches!(c, b'y' | b'w' | b'd' | b'h' | b'm' | b's')
}

/// Parses a Prometheus duration (`1h30m`, `5m`, `300ms`) starting at `start`; returns milliseconds and length.
fn lex_duration(input: &str, start: usize) -> Result<(i64, usize), ()> {
    let b = input.as_bytes();
    let mut j = start;
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    loop {
        let ds = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if ds == j {
            break;
        }
        let n: i64 = input[ds..j].parse().map_err(|_| ())?;
        let (unit_ms, len, rank) = match (b.get(j), b.get(j + 1)) {
            (Some(b'm'), Some(b's')) => (1, 2, 0),
            (Some(b'y'), _) => (365 * 86_400_000, 1, 6),
            (Some(b'w'), _) => (7 * 86_400_000, 1, 5),
            (Some(b'd'), _) => (86_400_000, 1, 4),
            (Some(b'h'), _) => (3_600_000, 1, 3),
            (Some(b'm'), _) => (60_000, 1, 2),
            (Some(b's'), _) => (1000, 1, 1),
            _ => return Err(()),
        };
        if rank >= last_rank {
            return Err(());
        }
        last_rank = rank;
        j += len;
        total = n
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or(())?;
    }
    if j == start
        || b.get(j)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    {
        return Err(());
    }
    Ok((total, j - start))
}

/// Parses a whole string as a Prometheus duration, in milliseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    match lex_duration(s, 0) {
        Ok((d, len)) if len == s.len() => Some(d),
        _ if s == "0" => Some(0),
        _ => None,
    }
}

fn lex_string(input: &str, start: usize) -> Result<(String, usize), Error> {
    let quote = input.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = input[start + 1..].char_indices();
    let unterminated = || err(start, "unterminated quoted string");
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, off + 2)),
            '\n' if quote != '`' => return Err(unterminated()),
            '\\' if quote != '`' => {
                let (eoff, e) = chars.next().ok_or_else(unterminated)?;
                let epos = start + 1 + eoff;
                let mut hex = |n: usize| -> Result<u32, Error> {
                    let mut v = 0u32;
                    for _ in 0..n {
                        let (_, h) = chars.next().ok_or_else(unterminated)?;
                        v = v * 16
                            + h.to_digit(16)
                                .ok_or_else(|| err(epos, "invalid escape sequence"))?;
                    }
                    Ok(v)
                };
                let decoded = match e {
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\x0b',
                    '\\' => '\\',
                    '\'' => '\'',
                    '"' => '"',
                    'x' => char::from_u32(hex(2)?)
                        .ok_or_else(|| err(epos, "invalid escape sequence"))?,
                    'u' => char::from_u32(hex(4)?).ok_or_else(|| {
                        err(epos, "invalid unicode code point in escape sequence")
                    })?,
                    'U' => char::from_u32(hex(8)?).ok_or_else(|| {
                        err(epos, "invalid unicode code point in escape sequence")
                    })?,
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let (_, o) = chars.next().ok_or_else(unterminated)?;
                            v = v * 8
                                + o.to_digit(8)
                                    .ok_or_else(|| err(epos, "invalid escape sequence"))?;
                        }
                        char::from_u32(v)
                            .filter(|_| v < 256)
                            .ok_or_else(|| err(epos, "invalid escape sequence"))?
                    }
                    other => return Err(err(epos, format!("unknown escape sequence {other:?}"))),
                };
                out.push(decoded);
            }
            c => out.push(c),
        }
    }
    Err(unterminated())
}
