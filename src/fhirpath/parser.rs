//! FHIRPath grammar: a precedence-climbing parser producing `Expr`.

use rust_decimal::Decimal;

use super::FhirPathError;
use super::lexer::{Token, lex};

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Empty,
    Boolean(bool),
    String(String),
    Integer(i64),
    Decimal(Decimal),
    Date(String),
    DateTime(String),
    Time(String),
    Quantity(Decimal, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    /// A name at the start of a path (a member of `$this`, or a type name).
    Identifier(String),
    /// `target.name`
    Member(Box<Expr>, String),
    /// `target.name(args)`, or `name(args)` on `$this` when target is None.
    Function(Option<Box<Expr>>, String, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    /// `is` / `as` with a type name (possibly qualified: `FHIR.string`).
    Type(&'static str, Box<Expr>, String),
    External(String),
    Special(String),
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    /// How deep the parse recursion is (parentheses and signs nest without making nodes).
    nesting: usize,
}

/// The deepest syntax tree (and parse recursion) accepted. Parsing, evaluating and dropping an
/// expression recurse over its tree, and invariants come from packages loaded at run time: a
/// deeply nested one must be a syntax error, not a stack overflow. Real invariants nest < 20.
const MAX_DEPTH: usize = 100;

/// How deep an expression's tree is (bounded: every node was checked as it was built).
fn depth(expr: &Expr) -> usize {
    1 + match expr {
        Expr::Literal(_) | Expr::Identifier(_) | Expr::External(_) | Expr::Special(_) => 0,
        Expr::Member(t, _) | Expr::Unary(_, t) | Expr::Type(_, t, _) => depth(t),
        Expr::Function(t, _, args) => t
            .iter()
            .map(|t| depth(t))
            .chain(args.iter().map(depth))
            .max()
            .unwrap_or(0),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => depth(a).max(depth(b)),
    }
}

/// Binary operators by binding power (higher binds tighter).
fn binary(token: &Token) -> Option<(&'static str, u8)> {
    Some(match token {
        Token::Symbol(s @ ("*" | "/")) => (s, 80),
        Token::Identifier(w) if w == "div" => ("div", 80),
        Token::Identifier(w) if w == "mod" => ("mod", 80),
        Token::Symbol(s @ ("+" | "-" | "&")) => (s, 70),
        Token::Identifier(w) if w == "is" => ("is", 60),
        Token::Identifier(w) if w == "as" => ("as", 60),
        Token::Symbol("|") => ("|", 50),
        Token::Symbol(s @ ("<" | ">" | "<=" | ">=")) => (s, 40),
        Token::Symbol(s @ ("=" | "~" | "!=" | "!~")) => (s, 30),
        Token::Identifier(w) if w == "in" => ("in", 20),
        Token::Identifier(w) if w == "contains" => ("contains", 20),
        Token::Identifier(w) if w == "and" => ("and", 10),
        Token::Identifier(w) if w == "or" => ("or", 5),
        Token::Identifier(w) if w == "xor" => ("xor", 5),
        Token::Identifier(w) if w == "implies" => ("implies", 2),
        _ => return None,
    })
}

const CALENDAR_UNITS: &[&str] = &[
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at].0
    }
    fn position(&self) -> usize {
        self.tokens[self.at].1
    }
    fn next(&mut self) -> Token {
        let token = self.tokens[self.at].0.clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        token
    }
    fn error(&self, message: impl Into<String>) -> FhirPathError {
        FhirPathError::Syntax {
            position: self.position(),
            message: message.into(),
        }
    }
    fn expect(&mut self, symbol: &'static str) -> Result<(), FhirPathError> {
        if self.peek() == &Token::Symbol(symbol) {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected `{symbol}`")))
        }
    }

    /// `expr`, unless its tree is deeper than `MAX_DEPTH`.
    fn bounded(&self, expr: Expr) -> Result<Expr, FhirPathError> {
        if depth(&expr) > MAX_DEPTH {
            Err(self.error("the expression is nested too deeply"))
        } else {
            Ok(expr)
        }
    }

    /// Counts one level of parse recursion; an error past `MAX_DEPTH`.
    fn descend(&mut self) -> Result<(), FhirPathError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(self.error("the expression is nested too deeply"));
        }
        Ok(())
    }

    fn expression(&mut self, min_power: u8) -> Result<Expr, FhirPathError> {
        self.descend()?;
        let expr = self.binary_expression(min_power);
        self.nesting -= 1;
        expr
    }

    fn binary_expression(&mut self, min_power: u8) -> Result<Expr, FhirPathError> {
        let mut left = self.unary()?;
        while let Some((op, power)) = binary(self.peek()) {
            if power < min_power {
                break;
            }
            self.next();
            if op == "is" || op == "as" {
                let name = self.type_name()?;
                left = self.bounded(Expr::Type(op, Box::new(left), name))?;
                continue;
            }
            let right = self.expression(power + 1)?;
            left = self.bounded(Expr::Binary(op, Box::new(left), Box::new(right)))?;
        }
        Ok(left)
    }

    fn type_name(&mut self) -> Result<String, FhirPathError> {
        let mut name = self.identifier()?;
        while self.peek() == &Token::Symbol(".") {
            self.next();
            name.push('.');
            name.push_str(&self.identifier()?);
        }
        Ok(name)
    }

    fn identifier(&mut self) -> Result<String, FhirPathError> {
        match self.next() {
            Token::Identifier(name) | Token::Delimited(name) => Ok(name),
            _ => Err(self.error("expected a name")),
        }
    }

    fn unary(&mut self) -> Result<Expr, FhirPathError> {
        match self.peek() {
            Token::Symbol(s @ ("+" | "-")) => {
                let op = *s;
                self.next();
                self.descend()?;
                let operand = self.unary()?;
                self.nesting -= 1;
                self.bounded(match (op, operand) {
                    ("-", Expr::Literal(Literal::Integer(n))) => {
                        Expr::Literal(Literal::Integer(-n))
                    }
                    ("-", Expr::Literal(Literal::Decimal(n))) => {
                        Expr::Literal(Literal::Decimal(-n))
                    }
                    ("-", Expr::Literal(Literal::Quantity(n, u))) => {
                        Expr::Literal(Literal::Quantity(-n, u))
                    }
                    (op, operand) => Expr::Unary(op, Box::new(operand)),
                })
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, FhirPathError> {
        let mut expr = self.term()?;
        loop {
            match self.peek() {
                Token::Symbol(".") => {
                    self.next();
                    let name = self.identifier()?;
                    if self.peek() == &Token::Symbol("(") {
                        let args = self.arguments()?;
                        expr = self.bounded(Expr::Function(Some(Box::new(expr)), name, args))?;
                    } else {
                        expr = self.bounded(Expr::Member(Box::new(expr), name))?;
                    }
                }
                Token::Symbol("[") => {
                    self.next();
                    let index = self.expression(0)?;
                    self.expect("]")?;
                    expr = self.bounded(Expr::Index(Box::new(expr), Box::new(index)))?;
                }
                _ => return Ok(expr),
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, FhirPathError> {
        self.expect("(")?;
        let mut args = Vec::new();
        if self.peek() != &Token::Symbol(")") {
            loop {
                args.push(self.expression(0)?);
                if self.peek() == &Token::Symbol(",") {
                    self.next();
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        Ok(args)
    }

    fn term(&mut self) -> Result<Expr, FhirPathError> {
        let position = self.position();
        match self.next() {
            Token::Symbol("(") => {
                let inner = self.expression(0)?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Symbol("{") => {
                self.expect("}")?;
                Ok(Expr::Literal(Literal::Empty))
            }
            Token::String(s) => Ok(Expr::Literal(Literal::String(s))),
            Token::Date(d) => Ok(Expr::Literal(Literal::Date(d))),
            Token::DateTime(d) => Ok(Expr::Literal(Literal::DateTime(d))),
            Token::Time(t) => Ok(Expr::Literal(Literal::Time(t))),
            Token::Number(n) => {
                let value: Decimal = n.parse().map_err(|_| FhirPathError::Syntax {
                    position,
                    message: "number out of range (decimals have 28 digits)".into(),
                })?;
                let unit = match self.peek() {
                    Token::String(unit) => Some(unit.clone()),
                    Token::Identifier(word) if CALENDAR_UNITS.contains(&word.as_str()) => {
                        Some(word.clone())
                    }
                    _ => None,
                };
                if let Some(unit) = unit {
                    self.next();
                    return Ok(Expr::Literal(Literal::Quantity(value, unit)));
                }
                if n.contains('.') {
                    Ok(Expr::Literal(Literal::Decimal(value)))
                } else {
                    n.parse::<i64>()
                        .map(|i| Expr::Literal(Literal::Integer(i)))
                        .map_err(|_| FhirPathError::Syntax {
                            position,
                            message: "integer out of range".into(),
                        })
                }
            }
            Token::External(name) => Ok(Expr::External(name)),
            Token::Special(name) => Ok(Expr::Special(name)),
            Token::Identifier(name) if name == "true" || name == "false" => {
                Ok(Expr::Literal(Literal::Boolean(name == "true")))
            }
            Token::Identifier(name) | Token::Delimited(name) => {
                if self.peek() == &Token::Symbol("(") {
                    let args = self.arguments()?;
                    self.bounded(Expr::Function(None, name, args))
                } else {
                    Ok(Expr::Identifier(name))
                }
            }
            Token::End => Err(FhirPathError::Syntax {
                position,
                message: "unexpected end of expression".into(),
            }),
            other => Err(FhirPathError::Syntax {
                position,
                message: format!("unexpected {other:?}"),
            }),
        }
    }
}

pub fn parse(text: &str) -> Result<Expr, FhirPathError> {
    let mut parser = Parser {
        tokens: lex(text)?.tokens,
        at: 0,
        nesting: 0,
    };
    let expr = parser.expression(0)?;
    if parser.peek() != &Token::End {
        return Err(parser.error("unexpected text after the expression"));
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_paths() {
        let e =
            parse("name.given.first() = 'Peter' and active implies birthDate.exists()").unwrap();
        assert!(matches!(e, Expr::Binary("implies", _, _)));
        assert!(parse("Patient.name[0].given").is_ok());
        assert!(parse("2 + 3 * 4").is_ok());
        assert!(parse("1 +").is_err());
        assert!(parse("name..given").is_err());
    }

    #[test]
    fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
        // Found by probing after tests/fuzz.rs: 1,000 nested parentheses overflowed the stack
        // of a test thread (an abort, which no catch_unwind survives).
        let n = 50_000;
        let deep = [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1", "- ".repeat(n)),
            format!("{}a", "a.".repeat(n)),
            format!("a{}", "[0]".repeat(n)),
            format!("1{}", " + 1".repeat(n)),
            format!("{}1{}", "f(".repeat(n), ")".repeat(n)),
            format!("1{}", " is Integer".repeat(n)),
        ];
        for text in &deep {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains("nested too deeply"), "{}: {err}", &text[..12]);
        }
        let ok = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&ok).is_ok());
        assert!(parse(&format!("{}a", "a.".repeat(60))).is_ok());
        assert!(matches!(
            parse("4 'mg'").unwrap(),
            Expr::Literal(Literal::Quantity(_, _))
        ));
        assert!(matches!(
            parse("value is Quantity").unwrap(),
            Expr::Type("is", _, _)
        ));
    }
}
