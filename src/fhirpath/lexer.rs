//! Tokens of a FHIRPath expression.

use super::FhirPathError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Identifier(String),
    /// `` `quoted` `` identifiers.
    Delimited(String),
    String(String),
    Number(String),
    Date(String),
    DateTime(String),
    Time(String),
    /// `%name` or `%'name'`.
    External(String),
    /// `$this`, `$index`, `$total`.
    Special(String),
    Symbol(&'static str),
    End,
}

pub struct Lexed {
    pub tokens: Vec<(Token, usize)>,
}

const SYMBOLS: &[&str] = &[
    "<=", ">=", "!=", "!~", "(", ")", "[", "]", "{", "}", ".", ",", "+", "-", "*", "/", "&", "|",
    "=", "~", "<", ">",
];

fn syntax(position: usize, message: impl Into<String>) -> FhirPathError {
    FhirPathError::Syntax {
        position,
        message: message.into(),
    }
}

fn unescape(raw: &str, position: usize) -> Result<String, FhirPathError> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .map_err(|_| syntax(position, "bad \\u escape"))?;
                out.push(char::from_u32(code).ok_or_else(|| syntax(position, "bad \\u escape"))?);
            }
            Some(other) => out.push(other),
            None => return Err(syntax(position, "dangling escape")),
        }
    }
    Ok(out)
}

pub fn lex(text: &str) -> Result<Lexed, FhirPathError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            if i + 1 >= chars.len() {
                return Err(syntax(start, "unterminated comment"));
            }
            i += 2;
            continue;
        }
        if c == '\'' || c == '`' {
            let quote = c;
            i += 1;
            let mut raw = String::new();
            while i < chars.len() && chars[i] != quote {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    raw.push(chars[i]);
                    i += 1;
                }
                raw.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err(syntax(start, "unterminated string"));
            }
            i += 1;
            let value = unescape(&raw, start)?;
            tokens.push((
                if quote == '\'' {
                    Token::String(value)
                } else {
                    Token::Delimited(value)
                },
                start,
            ));
            continue;
        }
        if c == '@' {
            i += 1;
            let mut raw = String::new();
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || matches!(chars[i], '-' | ':' | '.' | '+' | 'T' | 'Z'))
            {
                // A '.' belongs to the literal only as the decimal point of seconds.
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                    break;
                }
                // A '+'/'-' only continues the literal as part of a time-zone offset.
                if matches!(chars[i], '+' | '-')
                    && !raw.contains('T')
                    && raw.len() >= 4
                    && chars[i] == '+'
                {
                    break;
                }
                raw.push(chars[i]);
                i += 1;
            }
            let token = if let Some(time) = raw.strip_prefix('T') {
                Token::Time(time.to_owned())
            } else if raw.contains('T') {
                Token::DateTime(raw)
            } else {
                Token::Date(raw)
            };
            tokens.push((token, start));
            continue;
        }
        if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            tokens.push((Token::Number(chars[start..i].iter().collect()), start));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((Token::Identifier(chars[start..i].iter().collect()), start));
            continue;
        }
        if c == '%' || c == '$' {
            i += 1;
            let name = if i < chars.len() && (chars[i] == '\'' || chars[i] == '`') {
                let quote = chars[i];
                i += 1;
                let s = i;
                while i < chars.len() && chars[i] != quote {
                    i += 1;
                }
                let name: String = chars[s..i.min(chars.len())].iter().collect();
                i += 1;
                name
            } else {
                let s = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || chars[i] == '_'
                        || (c == '%' && chars[i] == '-'))
                {
                    i += 1;
                }
                chars[s..i].iter().collect()
            };
            if name.is_empty() {
                return Err(syntax(start, "expected a name"));
            }
            tokens.push((
                if c == '%' {
                    Token::External(name)
                } else {
                    Token::Special(name)
                },
                start,
            ));
            continue;
        }
        let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            Some(symbol) => {
                tokens.push((Token::Symbol(symbol), start));
                i += symbol.chars().count();
            }
            None => return Err(syntax(start, format!("unexpected character `{c}`"))),
        }
    }
    tokens.push((Token::End, chars.len()));
    Ok(Lexed { tokens })
}
