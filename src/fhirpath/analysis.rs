//! What an expression can read of its input: lets a caller skip evaluating an invariant whose
//! every input property is absent (most of FHIR's `x.empty() or ...` rules, on most elements).

use serde_json::Value as Json;

use super::parser::Expr;

/// Functions that ignore their input when called without a target.
const INPUT_FREE: &[&str] = &["today", "now", "timeOfDay"];

/// Variables that do not depend on the resource.
fn constant_variable(name: &str) -> bool {
    matches!(name, "ucum" | "sct" | "loinc") || name.starts_with("vs-") || name.starts_with("ext-")
}

/// The property names through which `expr` can read the node it is evaluated on, or None when it
/// can also read that node in other ways (`$this`, `exists()` on the input, `%resource`, a type
/// name such as `Patient`). When Some, evaluating on a node that has none of these properties
/// gives the same result as evaluating on an empty object.
pub fn input_properties(expr: &Expr) -> Option<Vec<String>> {
    let mut names = Vec::new();
    collect(expr, &mut names, false).then_some(names)
}

/// Functions that evaluate their arguments on each item of their target: there `$this` and
/// `$index` name that item, not the input (tim-9's `when.select($this in (...))`).
const ITERATING: &[&str] = &["where", "select", "all", "exists", "repeat"];

/// Collects the names `expr` reads of its input; `iterating` is whether it is (inside) an
/// argument of an `ITERATING` function.
fn collect(expr: &Expr, names: &mut Vec<String>, iterating: bool) -> bool {
    match expr {
        Expr::Literal(_) => true,
        Expr::Identifier(name) => {
            // An upper-case name may be a type test on the input (`Patient.name`).
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                return false;
            }
            if !names.contains(name) {
                names.push(name.clone());
            }
            true
        }
        Expr::Member(target, _) => collect(target, names, iterating),
        Expr::Function(target, name, args) => {
            let target_ok = match target {
                Some(t) => collect(t, names, iterating),
                None => INPUT_FREE.contains(&name.as_str()) && args.is_empty(),
            };
            // Items of the target come from the names collected (or from literals, which do not
            // depend on the input), so `$this` in the arguments reads nothing else.
            let iterates = iterating || (target.is_some() && ITERATING.contains(&name.as_str()));
            target_ok && args.iter().all(|a| collect(a, names, iterates))
        }
        Expr::Index(a, b) | Expr::Binary(_, a, b) => {
            collect(a, names, iterating) && collect(b, names, iterating)
        }
        Expr::Unary(_, a) | Expr::Type(_, a, _) => collect(a, names, iterating),
        Expr::External(name) => constant_variable(name),
        Expr::Special(name) => iterating && matches!(name.as_str(), "this" | "index"),
    }
}

/// An invariant about nothing but which members of its focus are present —
/// `duration.empty() or durationUnit.exists()`, `detail.empty() or reference.empty()`, most of
/// Timing's and many other data types' rules — decided without the evaluator: each leaf is a
/// member looked up as the evaluator looks it up (`children`), and the connectives see only
/// booleans, so two-valued logic gives the evaluator's answer.
#[derive(Debug, Clone)]
pub enum Presence {
    Exists(String),
    Not(Box<Presence>),
    Both(&'static str, Box<Presence>, Box<Presence>),
}

impl Presence {
    /// The formula `expr` is, if it is one.
    pub fn of(expr: &Expr) -> Option<Self> {
        match expr {
            Expr::Function(Some(target), name, args) if args.is_empty() => {
                match (name.as_str(), target.as_ref()) {
                    ("exists", Expr::Identifier(member)) if is_member(member) => {
                        Some(Self::Exists(member.clone()))
                    }
                    ("empty", Expr::Identifier(member)) if is_member(member) => {
                        Some(Self::Not(Box::new(Self::Exists(member.clone()))))
                    }
                    ("not", inner) => Some(Self::Not(Box::new(Self::of(inner)?))),
                    _ => None,
                }
            }
            Expr::Binary(op @ ("and" | "or" | "xor" | "implies"), a, b) => Some(Self::Both(
                op,
                Box::new(Self::of(a)?),
                Box::new(Self::of(b)?),
            )),
            _ => None,
        }
    }

    /// Does the formula hold on `focus`?
    pub fn holds(&self, focus: &Json) -> bool {
        match self {
            Self::Exists(member) => super::eval::has_member(focus, member),
            Self::Not(inner) => !inner.holds(focus),
            Self::Both(op, a, b) => {
                let a = a.holds(focus);
                match *op {
                    "and" => a && b.holds(focus),
                    "or" => a || b.holds(focus),
                    "xor" => a != b.holds(focus),
                    _ => !a || b.holds(focus),
                }
            }
        }
    }
}

/// A lower-case name: a member (an upper-case one may be a type test on the input).
fn is_member(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhirpath::parse;
    use serde_json::json;

    fn names(text: &str) -> Option<Vec<String>> {
        input_properties(&parse(text).unwrap())
    }

    #[test]
    fn names_what_the_expression_reads() {
        assert_eq!(
            names("duration.empty() or durationUnit.exists()"),
            Some(vec!["duration".into(), "durationUnit".into()])
        );
        assert_eq!(
            names("code.exists() implies ((system = %ucum) and value.exists())"),
            Some(vec!["code".into(), "system".into(), "value".into()])
        );
        assert_eq!(names("hasValue() or children().count() > 0"), None);
        assert_eq!(names("$this.exists()"), None);
        assert_eq!(names("Patient.name.exists()"), None);
        assert_eq!(names("reference in %resource.contained.id"), None);
        assert_eq!(names("start <= today()"), Some(vec!["start".into()]));
        // `$this` inside an iterating function's argument is an item of its target.
        assert_eq!(
            names(
                "offset.empty() or (when.exists() and when.select($this in ('C' | 'CM')).allFalse())"
            ),
            Some(vec!["offset".into(), "when".into()])
        );
        assert_eq!(
            names("code.where($this = 'a').exists()"),
            Some(vec!["code".into()])
        );
        assert_eq!(names("iif($this.exists(), true, false)"), None);
        assert_eq!(names("select($this.code)"), None);
        assert_eq!(names("code.where(%resource.id = $this)"), None);
    }

    #[test]
    fn a_presence_formula_answers_as_the_evaluator_does() {
        let formulas = [
            "duration.empty() or durationUnit.exists()",
            "detail.empty() or reference.empty()",
            "value.exists() implies unit.exists()",
            "(low.exists() and high.exists()).not() xor given.empty()",
            "given.exists().not() and family.empty()",
        ];
        let focuses = [
            json!({}),
            json!({ "duration": 3 }),
            json!({ "duration": 3, "durationUnit": "min" }),
            json!({ "detail": {}, "reference": { "reference": "x" } }),
            json!({ "valueQuantity": { "value": 1 } }),
            json!({ "valueQuantity": { "value": 1 }, "unit": "mg" }),
            json!({ "value": [] , "valueString": "x" }),
            json!({ "given": [], "_given": [{ "id": "a" }] }),
            json!({ "_durationUnit": { "extension": [] } }),
            json!({ "low": 1, "high": 2 }),
            json!({ "given": ["Ann"] }),
            json!("a primitive"),
        ];
        for text in formulas {
            let expr = parse(text).unwrap();
            let presence = Presence::of(&expr).unwrap_or_else(|| panic!("{text} is one"));
            for focus in &focuses {
                let env = crate::fhirpath::Environment::new(focus);
                let evaluated = crate::fhirpath::evaluate_on(&expr, &env, focus).unwrap();
                let holds = !matches!(
                    evaluated.as_slice(),
                    [] | [crate::fhirpath::Item::Boolean(false)]
                );
                assert_eq!(presence.holds(focus), holds, "{text} on {focus}");
            }
        }
        for not_one in [
            "value > 0",
            "name.given.exists()",
            "Patient.exists()",
            "exists()",
        ] {
            assert!(
                Presence::of(&parse(not_one).unwrap()).is_none(),
                "{not_one}"
            );
        }
    }
}
