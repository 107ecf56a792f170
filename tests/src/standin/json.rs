//! A tiny JSON value that keeps object key order and number literals.
//!
//! Why not `serde_json::Value`: Bitcoin Core answers with keys in a fixed order
//! and writes amounts as literal 8-decimal numbers (`50.00000000`), and it
//! parses request amounts (`0.001`, `1e-09`) from their literal text. A
//! `serde_json::Value` reorders keys and turns numbers into `f64` unless
//! workspace-wide features are switched on, which this crate must not do. So
//! requests are parsed into [`J`], whose numbers are the literal text, and
//! results are built as [`J`] and written back byte for byte.

use std::fmt::Write as _;

/// A JSON value with ordered objects and literal numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    /// The literal text of a number, exactly as received or to be written.
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// An integer number.
    pub fn int(v: impl Into<i128>) -> J {
        J::Num(v.into().to_string())
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> J {
        J::Str(s.into())
    }

    /// An object builder, keys kept in insertion order.
    pub fn obj() -> ObjBuilder {
        ObjBuilder(Vec::new())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, J::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            J::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_arr(&self) -> Option<&[J]> {
        match self {
            J::Arr(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_obj(&self) -> Option<&[(String, J)]> {
        match self {
            J::Obj(o) => Some(o),
            _ => None,
        }
    }

    /// An integer number (a literal with no fraction or exponent).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            J::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Member of an object by key.
    pub fn get(&self, key: &str) -> Option<&J> {
        self.as_obj()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Writes compact JSON, as Core does (no spaces).
    pub fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(n),
            J::Str(s) => write_str(s, out),
            J::Arr(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            J::Obj(o) => {
                out.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Compact JSON text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    /// Converts to `serde_json::Value` for recording and assertions (numbers
    /// go through serde_json's own parser, so nothing here depends on it).
    pub fn to_serde(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_text()).unwrap_or(serde_json::Value::Null)
    }

    /// Parses JSON text.
    pub fn parse(text: &str) -> Result<J, String> {
        let mut p = Parser {
            b: text.as_bytes(),
            i: 0,
            depth: 0,
        };
        p.ws();
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err("trailing characters".into());
        }
        Ok(v)
    }
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_string())
    }
}
impl From<String> for J {
    fn from(s: String) -> J {
        J::Str(s)
    }
}
impl From<bool> for J {
    fn from(b: bool) -> J {
        J::Bool(b)
    }
}
impl From<Vec<J>> for J {
    fn from(a: Vec<J>) -> J {
        J::Arr(a)
    }
}

/// Builds an ordered object.
pub struct ObjBuilder(Vec<(String, J)>);

impl ObjBuilder {
    pub fn put(mut self, k: &str, v: impl Into<J>) -> Self {
        self.0.push((k.to_string(), v.into()));
        self
    }

    pub fn put_if(self, cond: bool, k: &str, v: impl Into<J>) -> Self {
        if cond { self.put(k, v) } else { self }
    }

    pub fn push(&mut self, k: &str, v: impl Into<J>) {
        self.0.push((k.to_string(), v.into()));
    }

    pub fn build(self) -> J {
        J::Obj(self.0)
    }
}

impl From<ObjBuilder> for J {
    fn from(b: ObjBuilder) -> J {
        b.build()
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Recursive-descent parser; depth is bounded so a hostile body cannot blow
/// the stack of the server task.
struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn lit(&mut self, word: &str, v: J) -> Result<J, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err("invalid literal".into())
        }
    }

    fn value(&mut self) -> Result<J, String> {
        match self.peek() {
            None => Err("unexpected end".into()),
            Some(b'n') => self.lit("null", J::Null),
            Some(b't') => self.lit("true", J::Bool(true)),
            Some(b'f') => self.lit("false", J::Bool(false)),
            Some(b'"') => Ok(J::Str(self.string()?)),
            Some(b'[') => {
                self.enter()?;
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        a.push(self.value()?);
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err("expected , or ]".into()),
                        }
                    }
                }
                self.depth -= 1;
                Ok(J::Arr(a))
            }
            Some(b'{') => {
                self.enter()?;
                self.i += 1;
                let mut o = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.peek() != Some(b'"') {
                            return Err("expected key".into());
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.peek() != Some(b':') {
                            return Err("expected :".into());
                        }
                        self.i += 1;
                        self.ws();
                        let v = self.value()?;
                        o.push((k, v));
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err("expected , or }".into()),
                        }
                    }
                }
                self.depth -= 1;
                Ok(J::Obj(o))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err("unexpected character".into()),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        Ok(())
    }

    fn number(&mut self) -> Result<J, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            p.i > s
        };
        if !digits(self) {
            return Err("bad number".into());
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return Err("bad number".into());
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err("bad number".into());
            }
        }
        Ok(J::Num(
            String::from_utf8_lossy(&self.b[start..self.i]).into_owned(),
        ))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.b.get(self.i..self.i + 4).ok_or("bad escape")?;
        let v = u32::from_str_radix(std::str::from_utf8(h).map_err(|_| "bad escape")?, 16)
            .map_err(|_| "bad escape")?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or("bad escape")?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err("lone surrogate".into());
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or("bad code point")?
                        }
                        _ => return Err("bad escape".into()),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "invalid utf-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_literals() {
        let t = r#"{"b":1e-09,"a":[0.001,"x\u00e9",true,null]}"#;
        let v = J::parse(t).unwrap();
        assert_eq!(v.to_text(), r#"{"b":1e-09,"a":[0.001,"xé",true,null]}"#);
        assert_eq!(v.get("b"), Some(&J::Num("1e-09".into())));
    }
}
