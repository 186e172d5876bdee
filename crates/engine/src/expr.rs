//! The field-rule language: parsed and type-checked once at pack load into a [`Node`] tree
//! whose column references are resolved to indices, then evaluated per row without parsing.
//!
//! ```text
//! or     := and ("or" and)*
//! and    := not ("and" not)*
//! not    := "not" not | cmp
//! cmp    := add (("=="|"!="|"<"|"<="|">"|">=") add | "is" ["not"] "null" | "in" "(" lit ("," lit)* ")")?
//! add    := mul (("+"|"-"|"||") mul)*
//! mul    := unary (("*"|"/") unary)*
//! unary  := "-" unary | primary
//! primary:= number | 'text' | true | false | null | @cutoff | COLUMN | func "(" args ")" | "(" or ")"
//! ```

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use sha2::{Digest, Sha256};
use time::{Date, Month};

use crate::value::{Type, Value, to_minor};

/// A compile error at a byte offset of the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Byte offset in the expression.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError { offset, message: message.into() })
}

/// Why a row could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The record is bad data: rejected (or, for a field that allows it, migrated with a warning).
    Reject {
        /// Stable reason code.
        reason: String,
        /// What was wrong, naming the value.
        message: String,
    },
    /// The record's parent was excluded: it follows its parent out of scope.
    Cascade {
        /// The parent's exclusion reason.
        reason: String,
        /// Which parent.
        message: String,
    },
}

impl Fail {
    fn reject(reason: &str, message: String) -> Fail {
        Fail::Reject { reason: reason.to_owned(), message }
    }
}

/// Parent-key lookups, answered by the engine from the entities already processed.
pub trait Lookup {
    /// The v2 id of `key` in entity `entity`, or why there is none.
    fn lookup(&self, entity: usize, key: &Value) -> Result<Value, Fail>;
}

/// A value map's entries, by key.
pub type MapEntries = std::collections::HashMap<String, Value, foldhash::fast::RandomState>;

/// A value map of a pack (`country`, `vat_bp`, …).
#[derive(Debug, Clone)]
pub struct ValueMap {
    /// Name.
    pub name: String,
    /// Entries; keys compared after trimming and upper-casing when `case_insensitive`. Hashed
    /// with foldhash: a map is looked up for every record, most keys a few bytes long.
    pub entries: MapEntries,
    /// Type of the mapped values.
    pub ty: Type,
    /// Reason code when a value is not in the map.
    pub unknown_reason: String,
    /// Whether keys are compared case-insensitively.
    pub case_insensitive: bool,
}

impl ValueMap {
    fn get(&self, v: &Value) -> Option<&Value> {
        // Keys already in their stored form (most are) are looked up without a copy.
        match v {
            Value::Text(s) if self.case_insensitive => {
                let t = trim(s);
                if t.bytes().any(|b| b.is_ascii_lowercase() || !b.is_ascii()) {
                    self.entries.get(&t.to_uppercase())
                } else {
                    self.entries.get(t)
                }
            }
            Value::Text(s) => self.entries.get(s.as_str()),
            other => self.entries.get(&other.to_string()),
        }
    }
}

/// What an expression may refer to.
#[derive(Debug)]
pub struct Env<'a> {
    /// Source columns, in row order, with their types.
    pub columns: &'a [(String, Type)],
    /// Value maps.
    pub maps: &'a [ValueMap],
    /// Entities a lookup may name (the entity's dependencies), with their index.
    pub lookups: &'a [(String, usize)],
    /// Scope option names.
    pub options: &'a [String],
}

/// Everything evaluation needs besides the row.
#[allow(missing_debug_implementations)]
pub struct EvalCtx<'a> {
    /// History cut-off.
    pub cutoff: Date,
    /// Option values, in the order of `Env::options`.
    pub options: &'a [String],
    /// Value maps.
    pub maps: &'a [ValueMap],
    /// Parent lookups.
    pub lookup: &'a dyn Lookup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone)]
enum DateFmt {
    Dmy(u8),
    Ymd(u8),
    Compact,
}

/// A compiled function.
#[derive(Debug, Clone)]
enum Func {
    Trim,
    Upper,
    Lower,
    Coalesce,
    Concat,
    Map(usize),
    InMap(usize),
    Date(Vec<DateFmt>),
    Minor,
    FirstName,
    LastName,
    Lookup(usize, bool),
    Matches(Regex),
    Sha256,
    Int,
    Float,
    Text,
    SplitPart(String, usize),
    NullIf,
    StartsWith(String),
    Email,
    Replace(String, String),
    Length,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Node(Kind);

#[derive(Debug, Clone)]
enum Kind {
    Lit(Value),
    Col(usize),
    Cutoff,
    Opt(usize),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Concat(Box<Node>, Box<Node>),
    IsNull(Box<Node>, bool),
    In(Box<Node>, Vec<Value>),
    If(Box<Node>, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Var(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((Tok::LParen, i));
                i += 1;
            }
            b')' => {
                out.push((Tok::RParen, i));
                i += 1;
            }
            b',' => {
                out.push((Tok::Comma, i));
                i += 1;
            }
            b'\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match src[i..].chars().next() {
                        None => return err(start, "unterminated text literal"),
                        Some('\'') if b.get(i + 1) == Some(&b'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push((Tok::Str(s), start));
            }
            b'0'..=b'9' => {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                let t = &src[start..i];
                let tok = if t.contains('.') {
                    Tok::Float(
                        t.parse().map_err(|_| ExprError { offset: start, message: format!("bad number '{t}'") })?,
                    )
                } else {
                    Tok::Int(t.parse().map_err(|_| ExprError { offset: start, message: format!("bad number '{t}'") })?)
                };
                out.push((tok, start));
            }
            b'@' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push((Tok::Var(src[start + 1..i].to_owned()), start));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push((Tok::Ident(src[start..i].to_owned()), start));
            }
            _ => {
                let two = src.get(i..i + 2).unwrap_or("");
                let op: &'static str = match two {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    "||" => "||",
                    _ => match c {
                        b'<' => "<",
                        b'>' => ">",
                        b'+' => "+",
                        b'-' => "-",
                        b'*' => "*",
                        b'/' => "/",
                        b'=' => return err(i, "use '==' to compare"),
                        _ => {
                            let ch = src[i..].chars().next().unwrap_or('?');
                            return err(i, format!("unexpected character '{ch}'"));
                        }
                    },
                };
                i += op.len();
                out.push((Tok::Op(op), start));
            }
        }
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

// ---------------------------------------------------------------- parser + checker

struct Parser<'e, 'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    env: &'e Env<'a>,
    /// Parentheses, arguments and prefix operators open around the current token.
    depth: u32,
}

/// The longest expression accepted, in bytes. Rules are a line or two; a limit keeps the tree
/// that evaluating and dropping walk recursively shallow enough for any thread's stack.
pub const MAX_EXPR_LEN: usize = 2000;

/// How deeply parentheses, arguments and prefix operators may nest.
pub const MAX_EXPR_DEPTH: u32 = 32;

type Typed = (Node, Type, usize);

/// Compiles an expression; `expected` is checked when given.
pub fn compile(src: &str, env: &Env<'_>, expected: Option<Type>) -> Result<(Node, Type), ExprError> {
    if src.len() > MAX_EXPR_LEN {
        return err(MAX_EXPR_LEN, format!("the expression is longer than {MAX_EXPR_LEN} characters; split the rule"));
    }
    let mut p = Parser { toks: lex(src)?, pos: 0, env, depth: 0 };
    let (node, ty, at) = p.or()?;
    let (tok, off) = p.peek();
    if *tok != Tok::End {
        return err(*off, "unexpected text after the end of the expression");
    }
    if let Some(want) = expected
        && !ty.fits(want)
    {
        return err(at, format!("type mismatch: the expression gives {ty}, {want} is expected"));
    }
    Ok((node, ty))
}

fn n(k: Kind) -> Node {
    Node(k)
}

impl Parser<'_, '_> {
    fn peek(&self) -> &(Tok, usize) {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> (Tok, usize) {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().0, Tok::Ident(s) if s == kw)
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<usize, ExprError> {
        let (t, off) = self.next();
        if t == want { Ok(off) } else { err(off, format!("expected {what}")) }
    }

    /// Runs a step one level deeper, refusing past [`MAX_EXPR_DEPTH`].
    fn nested(&mut self, at: usize, f: impl FnOnce(&mut Self) -> Result<Typed, ExprError>) -> Result<Typed, ExprError> {
        if self.depth >= MAX_EXPR_DEPTH {
            return err(at, format!("the expression nests deeper than {MAX_EXPR_DEPTH} levels"));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
    fn or(&mut self) -> Result<Typed, ExprError> {
        let at = self.peek().1;
        self.nested(at, Self::or_chain)
    }
    fn or_chain(&mut self) -> Result<Typed, ExprError> {
        let mut l = self.and()?;
        while self.is_kw("or") {
            self.next();
            let r = self.and()?;
            bool_operand(&l)?;
            bool_operand(&r)?;
            l = (n(Kind::Or(Box::new(l.0), Box::new(r.0))), Type::Bool, l.2);
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Typed, ExprError> {
        let mut l = self.not()?;
        while self.is_kw("and") {
            self.next();
            let r = self.not()?;
            bool_operand(&l)?;
            bool_operand(&r)?;
            l = (n(Kind::And(Box::new(l.0), Box::new(r.0))), Type::Bool, l.2);
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Typed, ExprError> {
        if self.is_kw("not") {
            let (_, at) = self.next();
            let e = self.nested(at, Self::not)?;
            bool_operand(&e)?;
            return Ok((n(Kind::Not(Box::new(e.0))), Type::Bool, at));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Typed, ExprError> {
        let l = self.add()?;
        let (tok, at) = self.peek().clone();
        let op = match tok {
            Tok::Op("==") => Cmp::Eq,
            Tok::Op("!=") => Cmp::Ne,
            Tok::Op("<") => Cmp::Lt,
            Tok::Op("<=") => Cmp::Le,
            Tok::Op(">") => Cmp::Gt,
            Tok::Op(">=") => Cmp::Ge,
            Tok::Ident(ref k) if k == "is" => {
                self.next();
                let neg = self.is_kw("not");
                if neg {
                    self.next();
                }
                if !self.is_kw("null") {
                    return err(self.peek().1, "expected 'null' after 'is'");
                }
                self.next();
                return Ok((n(Kind::IsNull(Box::new(l.0), neg)), Type::Bool, l.2));
            }
            Tok::Ident(ref k) if k == "in" => {
                self.next();
                self.expect(Tok::LParen, "'(' after 'in'")?;
                let mut items = Vec::new();
                loop {
                    let (t, off) = self.next();
                    let v = match t {
                        Tok::Str(s) => Value::Text(s),
                        Tok::Int(i) => Value::Int(i),
                        _ => return err(off, "'in' lists text or integer literals"),
                    };
                    let vt = if matches!(v, Value::Text(_)) { Type::Text } else { Type::Int };
                    if !comparable(l.1, vt) {
                        return err(off, format!("cannot compare {} with {vt}", l.1));
                    }
                    items.push(v);
                    match self.next() {
                        (Tok::Comma, _) => continue,
                        (Tok::RParen, _) => break,
                        (_, off) => return err(off, "expected ',' or ')'"),
                    }
                }
                return Ok((n(Kind::In(Box::new(l.0), items)), Type::Bool, l.2));
            }
            _ => return Ok(l),
        };
        self.next();
        let r = self.add()?;
        if !comparable(l.1, r.1) {
            return err(at, format!("cannot compare {} with {}", l.1, r.1));
        }
        if matches!(op, Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge) && matches!(l.1, Type::Bool | Type::Bytes | Type::Uuid) {
            return err(at, format!("{} values have no order", l.1));
        }
        Ok((n(Kind::Cmp(op, Box::new(l.0), Box::new(r.0))), Type::Bool, l.2))
    }
    fn add(&mut self) -> Result<Typed, ExprError> {
        let mut l = self.mul()?;
        loop {
            let (tok, at) = self.peek().clone();
            match tok {
                Tok::Op("||") => {
                    self.next();
                    let r = self.mul()?;
                    l = (n(Kind::Concat(Box::new(l.0), Box::new(r.0))), Type::Text, l.2);
                }
                Tok::Op(o @ ("+" | "-")) => {
                    self.next();
                    let r = self.mul()?;
                    let ty = numeric(&l, &r, at)?;
                    let op = if o == "+" { Arith::Add } else { Arith::Sub };
                    l = (n(Kind::Arith(op, Box::new(l.0), Box::new(r.0))), ty, l.2);
                }
                _ => return Ok(l),
            }
        }
    }
    fn mul(&mut self) -> Result<Typed, ExprError> {
        let mut l = self.unary()?;
        loop {
            let (tok, at) = self.peek().clone();
            match tok {
                Tok::Op(o @ ("*" | "/")) => {
                    self.next();
                    let r = self.unary()?;
                    let ty = numeric(&l, &r, at)?;
                    let (op, ty) = if o == "*" { (Arith::Mul, ty) } else { (Arith::Div, Type::Float) };
                    l = (n(Kind::Arith(op, Box::new(l.0), Box::new(r.0))), ty, l.2);
                }
                _ => return Ok(l),
            }
        }
    }
    fn unary(&mut self) -> Result<Typed, ExprError> {
        if self.peek().0 == Tok::Op("-") {
            let (_, at) = self.next();
            let e = self.nested(at, Self::unary)?;
            if !matches!(e.1, Type::Int | Type::Float | Type::Null) {
                return err(at, format!("cannot negate {}", e.1));
            }
            return Ok((n(Kind::Neg(Box::new(e.0))), e.1, at));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Typed, ExprError> {
        let (tok, at) = self.next();
        match tok {
            Tok::Int(i) => Ok((n(Kind::Lit(Value::Int(i))), Type::Int, at)),
            Tok::Float(f) => Ok((n(Kind::Lit(Value::Float(f))), Type::Float, at)),
            Tok::Str(s) => Ok((n(Kind::Lit(Value::Text(s))), Type::Text, at)),
            Tok::Var(v) if v == "cutoff" => Ok((n(Kind::Cutoff), Type::Date, at)),
            Tok::Var(v) => err(at, format!("unknown variable '@{v}'; known: @cutoff")),
            Tok::LParen => {
                let e = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok((n(Kind::Lit(Value::Bool(true))), Type::Bool, at)),
                "false" => Ok((n(Kind::Lit(Value::Bool(false))), Type::Bool, at)),
                "null" => Ok((n(Kind::Lit(Value::Null)), Type::Null, at)),
                _ if self.peek().0 == Tok::LParen => {
                    self.next();
                    let mut args = Vec::new();
                    if self.peek().0 == Tok::RParen {
                        self.next();
                    } else {
                        loop {
                            args.push(self.or()?);
                            match self.next() {
                                (Tok::Comma, _) => continue,
                                (Tok::RParen, _) => break,
                                (_, off) => return err(off, "expected ',' or ')' in the argument list"),
                            }
                        }
                    }
                    self.call(&name, args, at)
                }
                _ => match self.env.columns.iter().position(|(c, _)| *c == name) {
                    Some(i) => Ok((n(Kind::Col(i)), self.env.columns[i].1, at)),
                    None => {
                        let near = self.env.columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(&name));
                        let hint = near.map(|(c, _)| format!("; did you mean {c}?")).unwrap_or_default();
                        err(at, format!("unknown column '{name}'{hint}"))
                    }
                },
            },
            Tok::End => err(at, "unexpected end of the expression"),
            other => err(at, format!("unexpected {}", describe(&other))),
        }
    }

    fn call(&mut self, name: &str, args: Vec<Typed>, at: usize) -> Result<Typed, ExprError> {
        let arity = |lo: usize, hi: usize| -> Result<(), ExprError> {
            if args.len() < lo || args.len() > hi {
                let want = if lo == hi {
                    lo.to_string()
                } else if hi == usize::MAX {
                    format!("{lo} or more")
                } else {
                    format!("{lo} to {hi}")
                };
                return err(at, format!("{name}() takes {want} arguments, {} given", args.len()));
            }
            Ok(())
        };
        let lit_text = |i: usize, what: &str| -> Result<String, ExprError> {
            match &args.get(i).map(|a| &a.0.0) {
                Some(Kind::Lit(Value::Text(s))) => Ok(s.clone()),
                _ => err(args.get(i).map_or(at, |a| a.2), format!("{name}(): {what} must be a text literal")),
            }
        };
        let want = |i: usize, types: &[Type]| -> Result<(), ExprError> {
            let t = args[i].1;
            if t == Type::Null || types.contains(&t) {
                Ok(())
            } else {
                let names: Vec<_> = types.iter().map(|t| t.name()).collect();
                err(args[i].2, format!("{name}(): argument {} is {t}, expected {}", i + 1, names.join(" or ")))
            }
        };
        let (func, ty) = match name {
            "trim" | "upper" | "lower" | "first_name" | "last_name" | "email" => {
                arity(1, 1)?;
                want(0, &[Type::Text])?;
                let f = match name {
                    "trim" => Func::Trim,
                    "upper" => Func::Upper,
                    "lower" => Func::Lower,
                    "first_name" => Func::FirstName,
                    "last_name" => Func::LastName,
                    _ => Func::Email,
                };
                (f, Type::Text)
            }
            "length" => {
                arity(1, 1)?;
                want(0, &[Type::Text])?;
                (Func::Length, Type::Int)
            }
            "coalesce" | "if" | "nullif" => {
                let (skip, f) = match name {
                    "coalesce" => {
                        arity(1, usize::MAX)?;
                        (0, Func::Coalesce)
                    }
                    "nullif" => {
                        arity(2, 2)?;
                        (0, Func::NullIf)
                    }
                    _ => {
                        arity(3, 3)?;
                        want(0, &[Type::Bool])?;
                        (1, Func::Coalesce)
                    }
                };
                let mut ty = Type::Null;
                for a in &args[skip..] {
                    if ty == Type::Null {
                        ty = a.1;
                    } else if a.1.fits(ty) {
                    } else if ty.fits(a.1) {
                        ty = a.1;
                    } else {
                        return err(a.2, format!("{name}(): arguments mix {ty} and {}", a.1));
                    }
                }
                if name == "if" {
                    let mut it = args.into_iter().map(|a| Box::new(a.0));
                    let (c, t, e) = (it.next(), it.next(), it.next());
                    return match (c, t, e) {
                        (Some(c), Some(t), Some(e)) => Ok((n(Kind::If(c, t, e)), ty, at)),
                        _ => err(at, "if() takes 3 arguments"),
                    };
                }
                (f, ty)
            }
            "concat" => {
                arity(1, usize::MAX)?;
                (Func::Concat, Type::Text)
            }
            "map" | "in_map" => {
                arity(2, 2)?;
                want(0, &[Type::Text, Type::Int])?;
                let m = lit_text(1, "the map name")?;
                let Some(i) = self.env.maps.iter().position(|x| x.name == m) else {
                    let names: Vec<_> = self.env.maps.iter().map(|x| x.name.as_str()).collect();
                    return err(args[1].2, format!("unknown map '{m}'; the pack has: {}", names.join(", ")));
                };
                if name == "map" { (Func::Map(i), self.env.maps[i].ty) } else { (Func::InMap(i), Type::Bool) }
            }
            "date" => {
                arity(2, usize::MAX)?;
                want(0, &[Type::Text, Type::Date])?;
                let mut fmts = Vec::new();
                for i in 1..args.len() {
                    let f = lit_text(i, "each format")?;
                    fmts.push(match f.as_str() {
                        "DD.MM.YYYY" => DateFmt::Dmy(b'.'),
                        "DD/MM/YYYY" => DateFmt::Dmy(b'/'),
                        "DD-MM-YYYY" => DateFmt::Dmy(b'-'),
                        "YYYY-MM-DD" => DateFmt::Ymd(b'-'),
                        "YYYY.MM.DD" => DateFmt::Ymd(b'.'),
                        "YYYY/MM/DD" => DateFmt::Ymd(b'/'),
                        "YYYYMMDD" => DateFmt::Compact,
                        other => {
                            return err(
                                args[i].2,
                                format!("unknown date format '{other}'; use DD.MM.YYYY, DD/MM/YYYY, DD-MM-YYYY, YYYY-MM-DD, YYYY.MM.DD, YYYY/MM/DD or YYYYMMDD"),
                            );
                        }
                    });
                }
                (Func::Date(fmts), Type::Date)
            }
            "minor" => {
                arity(1, 1)?;
                want(0, &[Type::Float, Type::Int])?;
                (Func::Minor, Type::Int)
            }
            "int" | "float" | "text" => {
                arity(1, 1)?;
                match name {
                    "int" => {
                        want(0, &[Type::Text, Type::Int, Type::Float, Type::Bool])?;
                        (Func::Int, Type::Int)
                    }
                    "float" => {
                        want(0, &[Type::Text, Type::Int, Type::Float])?;
                        (Func::Float, Type::Float)
                    }
                    _ => (Func::Text, Type::Text),
                }
            }
            "lookup" | "lookup_opt" => {
                arity(2, 2)?;
                let e = lit_text(0, "the entity name")?;
                let Some(&(_, idx)) = self.env.lookups.iter().find(|(n, _)| *n == e) else {
                    let names: Vec<_> = self.env.lookups.iter().map(|(n, _)| n.as_str()).collect();
                    return err(
                        args[0].2,
                        format!(
                            "{name}('{e}', …): '{e}' is not a dependency of this entity (depends_on: {})",
                            names.join(", ")
                        ),
                    );
                };
                want(1, &[Type::Int, Type::Text])?;
                (Func::Lookup(idx, name == "lookup_opt"), Type::Uuid)
            }
            "matches" => {
                arity(2, 2)?;
                want(0, &[Type::Text])?;
                let re = lit_text(1, "the pattern")?;
                let re = Regex::new(&re)
                    .map_err(|e| ExprError { offset: args[1].2, message: format!("bad pattern: {e}") })?;
                (Func::Matches(re), Type::Bool)
            }
            "starts_with" => {
                arity(2, 2)?;
                want(0, &[Type::Text])?;
                (Func::StartsWith(lit_text(1, "the prefix")?), Type::Bool)
            }
            "sha256" => {
                arity(1, 1)?;
                want(0, &[Type::Bytes, Type::Text])?;
                (Func::Sha256, Type::Text)
            }
            "split_part" => {
                arity(3, 3)?;
                want(0, &[Type::Text])?;
                let sep = lit_text(1, "the separator")?;
                let idx = match &args[2].0.0 {
                    Kind::Lit(Value::Int(i)) if *i >= 1 => *i as usize,
                    _ => return err(args[2].2, "split_part(): the part must be an integer literal from 1"),
                };
                (Func::SplitPart(sep, idx), Type::Text)
            }
            "replace" => {
                arity(3, 3)?;
                want(0, &[Type::Text])?;
                (Func::Replace(lit_text(1, "the text to replace")?, lit_text(2, "the replacement")?), Type::Text)
            }
            "option" => {
                arity(1, 1)?;
                let o = lit_text(0, "the option name")?;
                let Some(i) = self.env.options.iter().position(|x| *x == o) else {
                    return err(
                        args[0].2,
                        format!("unknown option '{o}'; the pack has: {}", self.env.options.join(", ")),
                    );
                };
                return Ok((n(Kind::Opt(i)), Type::Text, at));
            }
            _ => return err(at, format!("unknown function '{name}'")),
        };
        // Keep only the operands the function evaluates (literal arguments are compiled into it).
        let keep = match &func {
            Func::Map(_)
            | Func::InMap(_)
            | Func::Date(_)
            | Func::Matches(_)
            | Func::StartsWith(_)
            | Func::SplitPart(..)
            | Func::Replace(..) => 1,
            Func::Lookup(..) => {
                let key = args.into_iter().nth(1).map(|a| a.0);
                return Ok((n(Kind::Call(func, key.into_iter().collect())), ty, at));
            }
            _ => usize::MAX,
        };
        Ok((n(Kind::Call(func, args.into_iter().take(keep).map(|a| a.0).collect())), ty, at))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Op(o) => format!("'{o}'"),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        other => format!("{other:?}"),
    }
}

fn bool_operand(t: &Typed) -> Result<(), ExprError> {
    if matches!(t.1, Type::Bool | Type::Null) {
        Ok(())
    } else {
        err(t.2, format!("expected a condition (bool), found {}", t.1))
    }
}

fn comparable(a: Type, b: Type) -> bool {
    a == b
        || a == Type::Null
        || b == Type::Null
        || matches!((a, b), (Type::Int, Type::Float) | (Type::Float, Type::Int))
}

fn numeric(l: &Typed, r: &Typed, at: usize) -> Result<Type, ExprError> {
    match (l.1, r.1) {
        (Type::Int, Type::Int) => Ok(Type::Int),
        (Type::Int | Type::Float | Type::Null, Type::Int | Type::Float | Type::Null) => Ok(Type::Float),
        (a, b) => err(at, format!("arithmetic needs numbers, found {a} and {b}")),
    }
}

// ---------------------------------------------------------------- evaluation

impl Node {
    /// The entity a rule that is nothing but `lookup('e', …)` or `lookup_opt('e', …)` looks up:
    /// its value is then always null or the id of a record of that entity the run migrated.
    pub fn looked_up_entity(&self) -> Option<usize> {
        match &self.0 {
            Kind::Call(Func::Lookup(entity, _), _) => Some(*entity),
            _ => None,
        }
    }

    /// [`Node::eval`] without copying a column or a literal: comparisons and function
    /// arguments mostly only look at them.
    fn eval_ref<'r>(&'r self, row: &'r [Value], cx: &EvalCtx<'_>) -> Result<Cow<'r, Value>, Fail> {
        Ok(match &self.0 {
            Kind::Lit(v) => Cow::Borrowed(v),
            Kind::Col(i) => row.get(*i).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
            _ => Cow::Owned(self.eval(row, cx)?),
        })
    }

    /// Evaluates against a row.
    pub fn eval(&self, row: &[Value], cx: &EvalCtx<'_>) -> Result<Value, Fail> {
        Ok(match &self.0 {
            Kind::Lit(v) => v.clone(),
            Kind::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            Kind::Cutoff => Value::Date(cx.cutoff),
            Kind::Opt(i) => cx.options.get(*i).map_or(Value::Null, |s| Value::Text(s.clone())),
            Kind::Not(e) => Value::Bool(!truthy(&e.eval(row, cx)?)),
            Kind::Neg(e) => match e.eval(row, cx)? {
                Value::Int(i) => Value::Int(i.checked_neg().ok_or_else(|| overflow(i))?),
                Value::Float(f) => Value::Float(-f),
                _ => Value::Null,
            },
            Kind::And(a, b) => Value::Bool(truthy(&a.eval(row, cx)?) && truthy(&b.eval(row, cx)?)),
            Kind::Or(a, b) => Value::Bool(truthy(&a.eval(row, cx)?) || truthy(&b.eval(row, cx)?)),
            Kind::Cmp(op, a, b) => Value::Bool(compare(*op, &*a.eval_ref(row, cx)?, &*b.eval_ref(row, cx)?)),
            Kind::Arith(op, a, b) => arith(*op, a.eval(row, cx)?, b.eval(row, cx)?)?,
            Kind::Concat(a, b) => {
                let (a, b) = (a.eval(row, cx)?, b.eval(row, cx)?);
                if a.is_null() || b.is_null() { Value::Null } else { Value::Text(format!("{a}{b}")) }
            }
            Kind::IsNull(e, neg) => Value::Bool(e.eval_ref(row, cx)?.is_null() != *neg),
            Kind::In(e, items) => {
                let v = e.eval_ref(row, cx)?;
                Value::Bool(items.iter().any(|i| compare(Cmp::Eq, &v, i)))
            }
            Kind::If(c, t, e) => {
                if truthy(&c.eval(row, cx)?) {
                    t.eval(row, cx)?
                } else {
                    e.eval(row, cx)?
                }
            }
            Kind::Call(f, args) => call(f, args, row, cx)?,
        })
    }
}

fn overflow(i: i64) -> Fail {
    Fail::reject("invalid_number", format!("number {i} is out of range"))
}

fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

fn compare(op: Cmp, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (Value::Null, Value::Null) => return matches!(op, Cmp::Eq | Cmp::Le | Cmp::Ge),
        (Value::Null, _) | (_, Value::Null) => return op == Cmp::Ne,
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (x, y) => {
            let eq = x == y;
            return match op {
                Cmp::Eq => eq,
                Cmp::Ne => !eq,
                _ => false,
            };
        }
    };
    match (ord, op) {
        (None, Cmp::Ne) => true,
        (None, _) => false,
        (Some(o), Cmp::Eq) => o == Ordering::Equal,
        (Some(o), Cmp::Ne) => o != Ordering::Equal,
        (Some(o), Cmp::Lt) => o == Ordering::Less,
        (Some(o), Cmp::Le) => o != Ordering::Greater,
        (Some(o), Cmp::Gt) => o == Ordering::Greater,
        (Some(o), Cmp::Ge) => o != Ordering::Less,
    }
}

fn arith(op: Arith, a: Value, b: Value) -> Result<Value, Fail> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) if op != Arith::Div => {
            let r = match op {
                Arith::Add => x.checked_add(y),
                Arith::Sub => x.checked_sub(y),
                _ => x.checked_mul(y),
            };
            Value::Int(r.ok_or_else(|| Fail::reject("invalid_number", format!("{x} and {y} overflow")))?)
        }
        (Value::Null, _) | (_, Value::Null) => Value::Null,
        (a, b) => {
            let f = |v: &Value| match v {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => f64::NAN,
            };
            let (x, y) = (f(&a), f(&b));
            let r = match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div if y == 0.0 => return Ok(Value::Null),
                Arith::Div => x / y,
            };
            Value::Float(r)
        }
    })
}

/// `s` without leading and trailing whitespace, as [`str::trim`] gives it; a text that starts
/// and ends with a visible ASCII character (most do) is returned without looking for the
/// whitespace characters of all of Unicode at both ends, three or four times a record.
pub(crate) fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

fn text_arg(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

// Inlined into `Node::eval`, its one caller: the value it returned was read back through memory
// right after it was written there, and that read stalled (a dry run of TPC-H's mapping at
// scale 0.5, alternated three times: 5.99-6.45 s to 5.42-5.72 s).
#[inline(always)]
fn call(f: &Func, args: &[Node], row: &[Value], cx: &EvalCtx<'_>) -> Result<Value, Fail> {
    // Lazy forms first: coalesce stops at the first non-null argument.
    if let Func::Coalesce = f {
        for a in args {
            let v = a.eval(row, cx)?;
            if !v.is_null() {
                return Ok(v);
            }
        }
        return Ok(Value::Null);
    }
    let first = match args.first() {
        Some(a) => a.eval_ref(row, cx)?,
        None => Cow::Owned(Value::Null),
    };
    Ok(match f {
        // Handled lazily above.
        Func::Coalesce => Value::Null,
        Func::Concat => {
            let mut s = text_arg(&first).unwrap_or_default().into_owned();
            for a in &args[1..] {
                if let Some(t) = text_arg(&*a.eval_ref(row, cx)?) {
                    s.push_str(&t);
                }
            }
            Value::Text(s)
        }
        Func::NullIf => {
            let second = args.get(1).map(|a| a.eval_ref(row, cx)).transpose()?.unwrap_or(Cow::Owned(Value::Null));
            if compare(Cmp::Eq, &first, &second) { Value::Null } else { first.into_owned() }
        }
        Func::Lookup(entity, optional) => {
            if first.is_null() && *optional {
                Value::Null
            } else {
                cx.lookup.lookup(*entity, &first)?
            }
        }
        _ if first.is_null() => match f {
            Func::InMap(_) => Value::Bool(false),
            Func::Length => Value::Null,
            _ => Value::Null,
        },
        Func::Trim => Value::Text(trim(&text_arg(&first).unwrap_or_default()).to_owned()),
        Func::Upper => Value::Text(text_arg(&first).unwrap_or_default().to_uppercase()),
        Func::Lower => Value::Text(text_arg(&first).unwrap_or_default().to_lowercase()),
        Func::Length => Value::Int(text_arg(&first).map_or(0, |s| s.chars().count() as i64)),
        Func::Map(m) => {
            let map = &cx.maps[*m];
            match map.get(&first) {
                Some(v) => v.clone(),
                None => return Err(Fail::reject(&map.unknown_reason, format!("'{first}' is not in map {}", map.name))),
            }
        }
        Func::InMap(m) => Value::Bool(cx.maps[*m].get(&first).is_some()),
        Func::Date(fmts) => match &*first {
            Value::Date(d) => Value::Date(*d),
            other => {
                let s = text_arg(other).unwrap_or_default();
                let t = trim(&s);
                if t.is_empty() {
                    Value::Null
                } else {
                    match fmts.iter().find_map(|f| parse_date(t, f)) {
                        Some(d) => Value::Date(d),
                        None => return Err(Fail::reject("invalid_date", format!("'{s}' is not a valid date"))),
                    }
                }
            }
        },
        Func::Minor => match *first {
            Value::Int(i) => Value::Int(i.checked_mul(100).ok_or_else(|| overflow(i))?),
            Value::Float(x) => match to_minor(x) {
                Some(m) => Value::Int(m),
                None => {
                    return Err(Fail::reject(
                        "invalid_number",
                        format!("amount {x} cannot be converted to minor units"),
                    ));
                }
            },
            _ => Value::Null,
        },
        Func::FirstName | Func::LastName => {
            let s = text_arg(&first).unwrap_or_default();
            let (first_name, last_name) = split_name(&s);
            let part = if matches!(f, Func::FirstName) { first_name } else { last_name };
            if part.is_empty() { Value::Null } else { Value::Text(part.to_owned()) }
        }
        Func::Matches(re) => Value::Bool(re.is_match(&text_arg(&first).unwrap_or_default())),
        Func::StartsWith(p) => Value::Bool(text_arg(&first).unwrap_or_default().starts_with(p.as_str())),
        Func::Sha256 => {
            let digest = match &*first {
                Value::Bytes(b) => Sha256::digest(b),
                other => Sha256::digest(other.to_string().as_bytes()),
            };
            Value::Text(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
        Func::Int => match *first {
            Value::Int(i) => Value::Int(i),
            Value::Bool(b) => Value::Int(i64::from(b)),
            Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 => Value::Int(x as i64),
            ref other => {
                let s = other.to_string();
                match s.trim().parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => return Err(Fail::reject("invalid_number", format!("'{s}' is not a whole number"))),
                }
            }
        },
        Func::Float => match *first {
            Value::Int(i) => Value::Float(i as f64),
            Value::Float(x) => Value::Float(x),
            ref other => {
                let s = other.to_string();
                match s.trim().replace(',', ".").parse::<f64>() {
                    Ok(x) if x.is_finite() => Value::Float(x),
                    _ => return Err(Fail::reject("invalid_number", format!("'{s}' is not a number"))),
                }
            }
        },
        Func::Text => Value::Text(first.to_string()),
        Func::SplitPart(sep, idx) => {
            let s = text_arg(&first).unwrap_or_default();
            s.split(sep.as_str()).nth(idx - 1).map_or(Value::Null, |p| Value::Text(p.trim().to_owned()))
        }
        Func::Replace(from, to) => Value::Text(text_arg(&first).unwrap_or_default().replace(from.as_str(), to)),
        Func::Email => {
            let s = text_arg(&first).unwrap_or_default();
            let t = s.trim().to_lowercase();
            if t.is_empty() {
                Value::Null
            } else if valid_email(&t) {
                Value::Text(t)
            } else {
                return Err(Fail::reject("invalid_email", format!("'{s}' is not a valid e-mail address")));
            }
        }
    })
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-@".contains(c))
}

/// "Last, First" or "First Middle Last" → (first, last).
fn split_name(s: &str) -> (&str, &str) {
    let s = s.trim();
    if let Some((last, first)) = s.split_once(',') {
        return (first.trim(), last.trim());
    }
    match s.rsplit_once(' ') {
        Some((first, last)) => (first.trim(), last.trim()),
        None => ("", s),
    }
}

fn parse_date(s: &str, f: &DateFmt) -> Option<Date> {
    let num = |t: &str| -> Option<u32> {
        if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() { t.parse().ok() } else { None }
    };
    let (y, m, d) = match f {
        DateFmt::Dmy(sep) => {
            let mut it = s.split(*sep as char);
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || y.len() != 4 {
                return None;
            }
            (num(y)?, num(m)?, num(d)?)
        }
        DateFmt::Ymd(sep) => {
            let mut it = s.split(*sep as char);
            let (y, m, d) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || y.len() != 4 {
                return None;
            }
            (num(y)?, num(m)?, num(d)?)
        }
        DateFmt::Compact => {
            if s.len() != 8 {
                return None;
            }
            (num(&s[0..4])?, num(&s[4..6])?, num(&s[6..8])?)
        }
    };
    if y < 1 {
        return None;
    }
    let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
    Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()
}

#[cfg(test)]
mod tests;
