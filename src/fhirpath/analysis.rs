//! What an expression can read of its input: lets a caller skip evaluating an invariant whose
//! every input property is absent (most of FHIR's `x.empty() or ...` rules, on most elements).

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
    collect(expr, &mut names).then_some(names)
}

fn collect(expr: &Expr, names: &mut Vec<String>) -> bool {
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
        Expr::Member(target, _) => collect(target, names),
        Expr::Function(target, name, args) => {
            let target_ok = match target {
                Some(t) => collect(t, names),
                None => INPUT_FREE.contains(&name.as_str()) && args.is_empty(),
            };
            target_ok && args.iter().all(|a| collect(a, names))
        }
        Expr::Index(a, b) | Expr::Binary(_, a, b) => collect(a, names) && collect(b, names),
        Expr::Unary(_, a) | Expr::Type(_, a, _) => collect(a, names),
        Expr::External(name) => constant_variable(name),
        Expr::Special(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhirpath::parse;

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
    }
}
