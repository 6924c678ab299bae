//! The FHIRPath function library (the functions of FHIRPath N1 that FHIR R4 uses).

use std::cmp::Ordering;

use chrono::{Datelike, Duration, NaiveDate, Timelike};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value as Json;

use super::FhirPathError;
use super::decimal;
use super::eval::{
    Environment, Scope, as_boolean, children, error, eval, is_type, item_equal, known_type, single,
    union,
};
use super::parser::Expr;
use super::value::{Item, Temporal, Value};

fn arity(name: &str, args: &[Expr], min: usize, max: usize) -> Result<(), FhirPathError> {
    if args.len() < min || args.len() > max {
        return Err(FhirPathError::Semantic(format!(
            "{name}() takes {min} to {max} arguments, not {}",
            args.len()
        )));
    }
    Ok(())
}

/// Evaluates a lambda argument for each item of the focus.
fn each<'a>(
    focus: &Value<'a>,
    arg: &Expr,
    env: &Environment<'a>,
    scope: &Scope<'a>,
) -> Result<Vec<(Item<'a>, Value<'a>)>, FhirPathError> {
    focus
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let inner = Scope {
                this: Some(item.clone()),
                index: Some(i as i64),
                total: scope.total.clone(),
            };
            Ok((item.clone(), eval(arg, env, &vec![item.clone()], &inner)?))
        })
        .collect()
}

/// An argument evaluated once against the scope's `$this` (for non-lambda parameters).
fn argument<'a>(
    arg: &Expr,
    env: &Environment<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, FhirPathError> {
    let input: Value<'a> = scope.this.clone().into_iter().collect();
    eval(arg, env, &input, scope)
}

fn string_arg(
    arg: &Expr,
    env: &Environment<'_>,
    scope: &Scope<'_>,
) -> Result<Option<String>, FhirPathError> {
    Ok(single(&argument(arg, env, scope)?)?.and_then(|i| i.as_string()))
}

fn integer_arg(
    arg: &Expr,
    env: &Environment<'_>,
    scope: &Scope<'_>,
) -> Result<Option<i64>, FhirPathError> {
    match single(&argument(arg, env, scope)?)?.map(|i| i.primitive()) {
        Some(Item::Integer(i)) => Ok(Some(i)),
        None => Ok(None),
        _ => Err(error("expected an integer argument")),
    }
}

fn type_arg(arg: &Expr) -> Result<String, FhirPathError> {
    match arg {
        Expr::Identifier(name) => Ok(name.clone()),
        Expr::Member(target, name) => Ok(format!("{}.{name}", type_arg(target)?)),
        _ => Err(FhirPathError::Semantic("expected a type name".into())),
    }
}

fn one<'a>(item: Item<'a>) -> Value<'a> {
    vec![item]
}

fn boolean<'a>(b: bool) -> Value<'a> {
    vec![Item::Boolean(b)]
}

/// The string of a single-item focus, or None for an empty focus.
fn focus_string(focus: &Value<'_>) -> Result<Option<String>, FhirPathError> {
    match single(focus)? {
        None => Ok(None),
        Some(item) => item
            .as_string()
            .map(Some)
            .ok_or_else(|| error("expected a string")),
    }
}

fn regex(pattern: &str) -> Result<regex::Regex, FhirPathError> {
    regex::Regex::new(pattern).map_err(|_| error("invalid regular expression"))
}

pub(super) fn call<'a>(
    name: &str,
    focus: &Value<'a>,
    args: &[Expr],
    env: &Environment<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, FhirPathError> {
    match name {
        "empty" => Ok(boolean(focus.is_empty())),
        "exists" => {
            arity(name, args, 0, 1)?;
            if let Some(criteria) = args.first() {
                for (_, result) in each(focus, criteria, env, scope)? {
                    if as_boolean(&result)? == Some(true) {
                        return Ok(boolean(true));
                    }
                }
                return Ok(boolean(false));
            }
            Ok(boolean(!focus.is_empty()))
        }
        "all" => {
            arity(name, args, 1, 1)?;
            for (_, result) in each(focus, &args[0], env, scope)? {
                if as_boolean(&result)? != Some(true) {
                    return Ok(boolean(false));
                }
            }
            Ok(boolean(true))
        }
        "allTrue" | "anyTrue" | "allFalse" | "anyFalse" => {
            let values: Vec<bool> = focus
                .iter()
                .map(|i| match i.primitive() {
                    Item::Boolean(b) => Ok(b),
                    _ => Err(error(format!("{name}() needs booleans"))),
                })
                .collect::<Result<_, _>>()?;
            Ok(boolean(match name {
                "allTrue" => values.iter().all(|b| *b),
                "anyTrue" => values.iter().any(|b| *b),
                "allFalse" => values.iter().all(|b| !*b),
                _ => values.iter().any(|b| !*b),
            }))
        }
        "subsetOf" | "supersetOf" => {
            arity(name, args, 1, 1)?;
            let other = argument(&args[0], env, scope)?;
            let (small, big) = if name == "subsetOf" {
                (focus, &other)
            } else {
                (&other, focus)
            };
            Ok(boolean(small.iter().all(|a| {
                big.iter().any(|b| item_equal(a, b) == Some(true))
            })))
        }
        "count" => Ok(one(Item::Integer(focus.len() as i64))),
        "distinct" => Ok(union(focus.clone(), vec![])),
        "isDistinct" => Ok(boolean(union(focus.clone(), vec![]).len() == focus.len())),
        "where" => {
            arity(name, args, 1, 1)?;
            let mut out = Vec::new();
            for (item, result) in each(focus, &args[0], env, scope)? {
                if as_boolean(&result)? == Some(true) {
                    out.push(item);
                }
            }
            Ok(out)
        }
        "select" => {
            arity(name, args, 1, 1)?;
            Ok(each(focus, &args[0], env, scope)?
                .into_iter()
                .flat_map(|(_, r)| r)
                .collect())
        }
        "repeat" => {
            arity(name, args, 1, 1)?;
            let mut out: Value<'a> = Vec::new();
            let mut frontier = focus.clone();
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for (_, result) in each(&frontier, &args[0], env, scope)? {
                    for item in result {
                        if !out.iter().any(|o| item_equal(o, &item) == Some(true)) {
                            out.push(item.clone());
                            next.push(item);
                        }
                    }
                }
                frontier = next;
            }
            Ok(out)
        }
        "ofType" => {
            arity(name, args, 1, 1)?;
            let type_name = type_arg(&args[0])?;
            known_type(env, &type_name)?;
            Ok(focus
                .iter()
                .filter(|i| is_type(i, &type_name, false))
                .cloned()
                .collect())
        }
        "is" | "as" => {
            arity(name, args, 1, 1)?;
            let type_name = type_arg(&args[0])?;
            known_type(env, &type_name)?;
            let Some(item) = single(focus)? else {
                return Ok(vec![]);
            };
            let matches = is_type(&item, &type_name, name == "is");
            Ok(if name == "is" {
                boolean(matches)
            } else if matches {
                vec![item]
            } else {
                vec![]
            })
        }
        "single" => {
            if focus.len() > 1 {
                return Err(error("single() found more than one item"));
            }
            Ok(focus.clone())
        }
        "first" => Ok(focus.first().cloned().into_iter().collect()),
        "last" => Ok(focus.last().cloned().into_iter().collect()),
        "tail" => Ok(focus.iter().skip(1).cloned().collect()),
        "skip" | "take" => {
            arity(name, args, 1, 1)?;
            let n = integer_arg(&args[0], env, scope)?.unwrap_or(0).max(0) as usize;
            Ok(if name == "skip" {
                focus.iter().skip(n).cloned().collect()
            } else {
                focus.iter().take(n).cloned().collect()
            })
        }
        "union" | "combine" | "intersect" | "exclude" => {
            arity(name, args, 1, 1)?;
            let other = argument(&args[0], env, scope)?;
            Ok(match name {
                "union" => union(focus.clone(), other),
                "combine" => focus.iter().cloned().chain(other).collect(),
                "intersect" => {
                    let mut out = Vec::new();
                    for item in focus {
                        if other.iter().any(|o| item_equal(o, item) == Some(true))
                            && !out.iter().any(|o| item_equal(o, item) == Some(true))
                        {
                            out.push(item.clone());
                        }
                    }
                    out
                }
                _ => focus
                    .iter()
                    .filter(|i| !other.iter().any(|o| item_equal(o, i) == Some(true)))
                    .cloned()
                    .collect(),
            })
        }
        "iif" => {
            arity(name, args, 2, 3)?;
            // iif's arguments see the focus as $this (it must be a single item, or none).
            let inner = match focus.len() {
                1 => Scope {
                    this: focus.first().cloned(),
                    index: scope.index,
                    total: scope.total.clone(),
                },
                0 => scope.clone(),
                _ => return Err(error("iif() needs a single item as its input")),
            };
            let condition = argument(&args[0], env, &inner)?;
            let chosen = match single(&condition)?.map(|i| i.primitive()) {
                Some(Item::Boolean(true)) => args.get(1),
                Some(Item::Boolean(false)) | None => args.get(2),
                Some(_) => return Err(error("iif() criterion must be a boolean")),
            };
            match chosen {
                Some(expr) => argument(expr, env, &inner),
                None => Ok(vec![]),
            }
        }
        "not" => Ok(as_boolean(focus)?
            .map(|b| Item::Boolean(!b))
            .into_iter()
            .collect()),
        // True only for a single primitive with a value: a collection of several is false, not
        // an error (as the specification words it, and HL7's engines do).
        "hasValue" => Ok(boolean(matches!(
            focus.as_slice(),
            [Item::Node(n, _) | Item::Extended(n, _, _)] if !n.is_object() && !n.is_array() && !n.is_null()
        ))),
        "children" => {
            let mut out = Vec::new();
            for item in focus {
                match item {
                    Item::Node(Json::Object(map), _) => {
                        // `_given` alone stands for `given` given only as extensions.
                        let names = map.keys().filter_map(|k| match k.strip_prefix('_') {
                            Some(base) if map.contains_key(base) => None,
                            Some(base) => Some(base),
                            None => (k != "resourceType").then_some(k.as_str()),
                        });
                        for key in names {
                            children(item, key, env.model, &mut out);
                        }
                    }
                    Item::Extended(_, element, _) => {
                        let element = Item::Node(element, Some("Element"));
                        for key in ["id", "extension"] {
                            children(&element, key, env.model, &mut out);
                        }
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
        "descendants" => {
            let mut out = Vec::new();
            let mut frontier = focus.clone();
            while !frontier.is_empty() {
                let next = call("children", &frontier, &[], env, scope)?;
                out.extend(next.iter().cloned());
                frontier = next;
            }
            Ok(out)
        }
        "extension" => {
            arity(name, args, 1, 1)?;
            let url = string_arg(&args[0], env, scope)?.unwrap_or_default();
            let mut out = Vec::new();
            for item in focus {
                let mut exts = Vec::new();
                children(item, "extension", env.model, &mut exts);
                out.extend(exts.into_iter().filter(|e| matches!(e, Item::Node(n, _) if n.get("url").and_then(Json::as_str) == Some(url.as_str()))));
            }
            Ok(out)
        }
        "resolve" => {
            let mut out = Vec::new();
            for item in focus {
                let reference = match item {
                    Item::Node(n, _) if n.is_object() => {
                        n.get("reference").and_then(Json::as_str).map(str::to_owned)
                    }
                    other => other.as_string(),
                };
                if let Some(reference) = reference
                    && let Some(found) = resolve(env.resource, &reference)
                {
                    out.push(Item::Node(found, None));
                }
            }
            Ok(out)
        }
        "trace" => Ok(focus.clone()),
        "aggregate" => {
            arity(name, args, 1, 2)?;
            let mut total = match args.get(1) {
                Some(init) => argument(init, env, scope)?,
                None => vec![],
            };
            for (i, item) in focus.iter().enumerate() {
                let inner = Scope {
                    this: Some(item.clone()),
                    index: Some(i as i64),
                    total: Some(total.clone()),
                };
                total = eval(&args[0], env, &vec![item.clone()], &inner)?;
            }
            Ok(total)
        }
        "today" => Ok(one(Item::Date(
            Temporal::parse_date_time(&chrono::Utc::now().format("%Y-%m-%d").to_string())
                .unwrap_or(Temporal {
                    parts: vec![],
                    offset: None,
                    time_only: false,
                }),
        ))),
        "now" => {
            let now = chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            Ok(Temporal::parse_date_time(&now)
                .map(Item::DateTime)
                .into_iter()
                .collect())
        }
        "timeOfDay" => {
            let now = chrono::Utc::now().format("%H:%M:%S%.3f").to_string();
            Ok(Temporal::parse_time(&now)
                .map(Item::Time)
                .into_iter()
                .collect())
        }
        // Strings
        "matchesFull" => {
            arity(name, args, 1, 1)?;
            let Some(s) = focus_string(focus)? else {
                return Ok(vec![]);
            };
            let Some(arg) = string_arg(&args[0], env, scope)? else {
                return Ok(vec![]);
            };
            Ok(boolean(regex(&format!("(?s)^(?:{arg})$"))?.is_match(&s)))
        }
        "sort" => sort(focus, args, env, scope),
        "type" => focus
            .iter()
            .map(|item| {
                let (namespace, name) = item.type_name();
                Ok(Item::TypeInfo(namespace, name))
            })
            .collect(),
        "startsWith" | "endsWith" | "contains" | "matches" | "indexOf" => {
            arity(name, args, 1, 1)?;
            let Some(s) = focus_string(focus)? else {
                return Ok(vec![]);
            };
            let Some(arg) = string_arg(&args[0], env, scope)? else {
                return Ok(vec![]);
            };
            Ok(match name {
                "startsWith" => boolean(s.starts_with(&arg)),
                "endsWith" => boolean(s.ends_with(&arg)),
                "contains" => boolean(s.contains(&arg)),
                "matches" => boolean(regex(&format!("(?s){arg}"))?.is_match(&s)),
                _ => one(Item::Integer(
                    s.find(&arg)
                        .map(|b| s[..b].chars().count() as i64)
                        .unwrap_or(-1),
                )),
            })
        }
        "replace" | "replaceMatches" => {
            arity(name, args, 2, 2)?;
            let Some(s) = focus_string(focus)? else {
                return Ok(vec![]);
            };
            let (Some(pattern), Some(with)) = (
                string_arg(&args[0], env, scope)?,
                string_arg(&args[1], env, scope)?,
            ) else {
                return Ok(vec![]);
            };
            Ok(one(Item::String(if name == "replace" {
                if pattern.is_empty() {
                    let mut out = with.clone();
                    for c in s.chars() {
                        out.push(c);
                        out.push_str(&with);
                    }
                    out
                } else {
                    s.replace(&pattern, &with)
                }
            } else if pattern.is_empty() {
                s
            } else {
                regex(&pattern)?.replace_all(&s, with.as_str()).into_owned()
            })))
        }
        "substring" => {
            arity(name, args, 1, 2)?;
            let Some(s) = focus_string(focus)? else {
                return Ok(vec![]);
            };
            let Some(start) = integer_arg(&args[0], env, scope)? else {
                return Ok(vec![]);
            };
            let chars: Vec<char> = s.chars().collect();
            if start < 0 || start as usize >= chars.len() {
                return Ok(vec![]);
            }
            let length = match args.get(1) {
                Some(a) => integer_arg(a, env, scope)?.unwrap_or(i64::MAX).max(0) as usize,
                None => usize::MAX,
            };
            Ok(one(Item::String(
                chars[start as usize..].iter().take(length).collect(),
            )))
        }
        "comparable" => {
            arity(name, args, 1, 1)?;
            let other = single(&argument(&args[0], env, scope)?)?.map(|i| i.primitive());
            match (single(focus)?.map(|i| i.primitive()), other) {
                (Some(Item::Quantity(_, a)), Some(Item::Quantity(_, b))) => {
                    // Calendar words (`week`) as their UCUM units (`wk`).
                    let unit = |u: &str| super::value::canonical_unit(u).to_owned();
                    Ok(one(Item::Boolean(
                        ucum::is_comparable(&unit(&a), &unit(&b)).unwrap_or(false),
                    )))
                }
                (None, _) | (_, None) => Ok(vec![]),
                _ => Err(error("comparable() compares two quantities")),
            }
        }
        "lowBoundary" | "highBoundary" => {
            arity(name, args, 0, 1)?;
            let precision = match args.first() {
                Some(arg) => integer_arg(arg, env, scope)?,
                None => None,
            };
            let high = name == "highBoundary";
            Ok(match single(focus)?.map(|i| i.primitive()) {
                Some(Item::Date(t)) => temporal_boundary(&t, precision, high)
                    .map(Item::Date)
                    .into_iter()
                    .collect(),
                Some(Item::DateTime(t)) => temporal_boundary(&t, precision, high)
                    .map(|b| {
                        if b.parts.len() <= 3 {
                            Item::Date(b)
                        } else {
                            Item::DateTime(b)
                        }
                    })
                    .into_iter()
                    .collect(),
                Some(Item::Time(t)) => temporal_boundary(&t, precision, high)
                    .map(Item::Time)
                    .into_iter()
                    .collect(),
                Some(Item::Integer(i)) => decimal::boundary(Decimal::from(i), precision, high)
                    .map(Item::Decimal)
                    .into_iter()
                    .collect(),
                Some(Item::Decimal(d)) => decimal::boundary(d, precision, high)
                    .map(Item::Decimal)
                    .into_iter()
                    .collect(),
                Some(Item::Quantity(v, unit)) => decimal::boundary(v, precision, high)
                    .map(|b| Item::Quantity(b, unit))
                    .into_iter()
                    .collect(),
                _ => vec![],
            })
        }
        "precision" => {
            arity(name, args, 0, 0)?;
            let item = match focus.as_slice() {
                [] => return Ok(vec![]),
                [item] => item.primitive(),
                _ => return Err(error("precision() needs a single value")),
            };
            match item {
                Item::Date(t) | Item::DateTime(t) | Item::Time(t) => {
                    Ok(one(Item::Integer(temporal_precision(&t))))
                }
                Item::Decimal(d) => Ok(one(Item::Integer(decimal::precision(d)))),
                _ => Ok(vec![]),
            }
        }
        "length" => Ok(focus_string(focus)?
            .map(|s| Item::Integer(s.chars().count() as i64))
            .into_iter()
            .collect()),
        "upper" => Ok(focus_string(focus)?
            .map(|s| Item::String(s.to_uppercase()))
            .into_iter()
            .collect()),
        "lower" => Ok(focus_string(focus)?
            .map(|s| Item::String(s.to_lowercase()))
            .into_iter()
            .collect()),
        "trim" => Ok(focus_string(focus)?
            .map(|s| Item::String(s.trim().to_owned()))
            .into_iter()
            .collect()),
        "toChars" => Ok(focus_string(focus)?
            .map(|s| s.chars().map(|c| Item::String(c.to_string())).collect())
            .unwrap_or_default()),
        "split" => {
            arity(name, args, 1, 1)?;
            let Some(s) = focus_string(focus)? else {
                return Ok(vec![]);
            };
            let separator = string_arg(&args[0], env, scope)?.unwrap_or_default();
            Ok(s.split(separator.as_str())
                .map(|p| Item::String(p.to_owned()))
                .collect())
        }
        "join" => {
            let separator = match args.first() {
                Some(a) => string_arg(a, env, scope)?.unwrap_or_default(),
                None => String::new(),
            };
            if focus.is_empty() {
                return Ok(vec![]);
            }
            let parts: Vec<String> = focus.iter().filter_map(|i| i.as_string()).collect();
            Ok(one(Item::String(parts.join(&separator))))
        }
        // The aggregates of FHIRPath 3.0 (`sum()`, `min()`, `max()`, `avg()`): numbers, or for
        // min and max anything ordered (strings, dates); empty in, empty out.
        "sum" | "avg" => {
            arity(name, args, 0, 0)?;
            let Some(total) = fold(focus, |sum, item| super::eval::add(sum, item))? else {
                return Ok(vec![]);
            };
            if name == "sum" {
                return Ok(one(total));
            }
            let count = Decimal::from(focus.len());
            Ok(number(&total)
                .and_then(|t| t.checked_div(count))
                .map(Item::Decimal)
                .into_iter()
                .collect())
        }
        "min" | "max" => {
            arity(name, args, 0, 0)?;
            let wanted = if name == "min" {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            let best = fold(focus, |best, item| {
                Ok(match super::eval::compare(&item, &best)? {
                    Some(order) if order == wanted => Some(item),
                    Some(_) => Some(best),
                    None => None,
                })
            })?;
            Ok(best.into_iter().collect())
        }
        "encode" | "decode" => {
            arity(name, args, 1, 1)?;
            let Some(s) = focus_string(focus)? else {
                return Ok(vec![]);
            };
            let format = string_arg(&args[0], env, scope)?.unwrap_or_default();
            Ok(encode_decode(name == "encode", &s, &format)
                .map(Item::String)
                .into_iter()
                .collect())
        }
        "escape" | "unescape" => {
            arity(name, args, 1, 1)?;
            let Some(s) = focus_string(focus)? else {
                return Ok(vec![]);
            };
            let format = string_arg(&args[0], env, scope)?.unwrap_or_default();
            Ok(one(Item::String(escape(name == "escape", &s, &format))))
        }
        // Conversions
        "toString" => convert(focus, to_string, Item::String),
        "toInteger" => convert(focus, to_integer, Item::Integer),
        "toDecimal" => convert(focus, to_decimal, Item::Decimal),
        "toBoolean" => convert(focus, to_boolean, Item::Boolean),
        "toDate" | "toDateTime" => Ok(single(focus)?
            .and_then(|i| match i.primitive() {
                Item::String(s) => Temporal::parse_date_time(&s),
                Item::Date(t) | Item::DateTime(t) => Some(t),
                _ => None,
            })
            .map(|t| {
                if name == "toDate" {
                    Item::Date(Temporal {
                        parts: t.parts.into_iter().take(3).collect(),
                        offset: None,
                        time_only: false,
                    })
                } else {
                    Item::DateTime(t)
                }
            })
            .into_iter()
            .collect()),
        "toTime" => Ok(single(focus)?
            .and_then(|i| i.as_string())
            .and_then(|s| Temporal::parse_time(&s))
            .map(Item::Time)
            .into_iter()
            .collect()),
        "toQuantity" => Ok(single(focus)?
            .and_then(|i| match i.primitive() {
                Item::Integer(n) => Some(Item::Quantity(Decimal::from(n), "1".into())),
                Item::Decimal(d) => Some(Item::Quantity(d, "1".into())),
                Item::Boolean(b) => Some(Item::Quantity(Decimal::from(u8::from(b)), "1".into())),
                q @ Item::Quantity(..) => Some(q),
                Item::String(s) => parse_quantity(&s),
                _ => None,
            })
            .into_iter()
            .collect()),
        "convertsToString" | "convertsToInteger" | "convertsToDecimal" | "convertsToBoolean"
        | "convertsToDate" | "convertsToDateTime" | "convertsToTime" | "convertsToQuantity" => {
            let Some(item) = single(focus)? else {
                return Ok(vec![]);
            };
            let target = name.trim_start_matches("convertsTo");
            let converted = call(&format!("to{target}"), &vec![item], &[], env, scope)?;
            Ok(boolean(!converted.is_empty()))
        }
        // Math
        "abs" | "ceiling" | "floor" | "truncate" | "sqrt" | "exp" | "ln" | "round" | "log"
        | "power" => math(name, focus, args, env, scope),
        "conformsTo" | "memberOf" | "htmlChecks" => Err(FhirPathError::Semantic(format!(
            "{name}() needs terminology or profiles; not available here"
        ))),
        other => Err(FhirPathError::Semantic(format!(
            "unknown function {other}()"
        ))),
    }
}

/// Folds the focus's values pairwise (`sum()`, `min()`, `max()`): None for an empty focus, and as
/// soon as a step is empty (an overflow, an order that precision leaves open).
fn fold<'a>(
    focus: &Value<'a>,
    mut step: impl FnMut(Item<'a>, Item<'a>) -> Result<Option<Item<'a>>, FhirPathError>,
) -> Result<Option<Item<'a>>, FhirPathError> {
    let mut items = focus.iter().map(Item::primitive);
    let Some(mut acc) = items.next() else {
        return Ok(None);
    };
    for item in items {
        match step(acc, item)? {
            Some(next) => acc = next,
            None => return Ok(None),
        }
    }
    Ok(Some(acc))
}

/// A single-item conversion (`toInteger()` and kin): empty when the focus is empty or does not convert.
fn convert<'a, T>(
    focus: &Value<'a>,
    to: fn(&Item<'_>) -> Option<T>,
    wrap: fn(T) -> Item<'a>,
) -> Result<Value<'a>, FhirPathError> {
    Ok(single(focus)?
        .and_then(|i| to(&i))
        .map(wrap)
        .into_iter()
        .collect())
}

fn resolve<'a>(resource: &'a Json, reference: &str) -> Option<&'a Json> {
    if let Some(local) = reference.strip_prefix('#') {
        return resource
            .get("contained")?
            .as_array()?
            .iter()
            .find(|c| c.get("id").and_then(Json::as_str) == Some(local));
    }
    let entries = resource.get("entry")?.as_array()?;
    entries.iter().find_map(|e| {
        let r = e.get("resource")?;
        let full = e.get("fullUrl").and_then(Json::as_str);
        let typed = format!(
            "{}/{}",
            r.get("resourceType")?.as_str()?,
            r.get("id").and_then(Json::as_str).unwrap_or_default()
        );
        (full == Some(reference) || reference == typed || reference.ends_with(&format!("/{typed}")))
            .then_some(r)
    })
}

fn number(item: &Item<'_>) -> Option<Decimal> {
    match item.primitive() {
        Item::Integer(i) => Some(Decimal::from(i)),
        Item::Decimal(d) => Some(d),
        _ => None,
    }
}

fn math<'a>(
    name: &str,
    focus: &Value<'a>,
    args: &[Expr],
    env: &Environment<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, FhirPathError> {
    let Some(item) = single(focus)? else {
        return Ok(vec![]);
    };
    let item = item.primitive();
    if let (Item::Quantity(v, u), "abs") = (&item, name) {
        return Ok(one(Item::Quantity(v.abs(), u.clone())));
    }
    let x = number(&item).ok_or_else(|| error(format!("{name}() needs a number")))?;
    let integer = matches!(item, Item::Integer(_));
    let arg = |i: usize| -> Result<Option<Item<'a>>, FhirPathError> {
        match args.get(i) {
            Some(a) => Ok(single(&argument(a, env, scope)?)?.map(|v| v.primitive())),
            None => Ok(None),
        }
    };
    // The transcendental functions in binary floating point; their results as decimals.
    let float = |v: f64| -> Value<'a> {
        decimal::from_f64(v)
            .map(Item::Decimal)
            .into_iter()
            .collect()
    };
    let whole = |v: Decimal| -> Value<'a> { v.to_i64().map(Item::Integer).into_iter().collect() };
    let fx = decimal::to_f64(x);
    Ok(match name {
        "abs" if integer => match item {
            Item::Integer(i) => i.checked_abs().map(Item::Integer).into_iter().collect(),
            _ => vec![],
        },
        "abs" => one(Item::Decimal(x.abs())),
        "ceiling" => whole(x.ceil()),
        "floor" => whole(x.floor()),
        "truncate" => whole(x.trunc()),
        "sqrt" if fx < 0.0 => vec![],
        "sqrt" => float(fx.sqrt()),
        "exp" => float(fx.exp()),
        "ln" => float(fx.ln()),
        "log" => match arg(0)?.as_ref().and_then(number) {
            Some(base) => float(fx.ln() / decimal::to_f64(base).ln()),
            None => vec![],
        },
        "power" => match arg(0)? {
            Some(exponent) => {
                let Some(p) = number(&exponent) else {
                    return Ok(vec![]);
                };
                let r = fx.powf(decimal::to_f64(p));
                if integer && matches!(exponent, Item::Integer(_)) && r.is_finite() {
                    one(Item::Integer(r as i64))
                } else {
                    float(r)
                }
            }
            None => vec![],
        },
        _ => {
            let digits = match arg(0)? {
                Some(Item::Integer(d)) => d,
                None => 0,
                Some(_) => return Err(error("round() takes an integer precision")),
            };
            let digits = u32::try_from(digits)
                .map_err(|_| error("round() needs a precision of zero or more"))?;
            one(Item::Decimal(decimal::round(
                x,
                digits.min(Decimal::MAX_SCALE),
            )))
        }
    })
}

pub(super) fn to_string(item: &Item<'_>) -> Option<String> {
    Some(match item.primitive() {
        Item::String(s) => s,
        Item::Boolean(b) => b.to_string(),
        Item::Integer(i) => i.to_string(),
        Item::Decimal(d) => d.to_string(),
        // A calendar duration is written with its word (`1 week`), a UCUM unit quoted.
        Item::Quantity(v, u) if super::value::canonical_unit(&u) != u => format!("{v} {u}"),
        Item::Quantity(v, u) => format!("{v} '{u}'"),
        Item::Date(t) | Item::DateTime(t) | Item::Time(t) => format_temporal(&t),
        Item::Node(..) | Item::Extended(..) | Item::TypeInfo(..) => return None,
    })
}

/// The earliest (or latest) moment a date, date-time or time could stand for, to `precision`
/// digits (date-times: 4 year, 6 month, 8 day, 10 hour, 12 minute, 14 second, 17 millisecond;
/// times: 2, 4, 6, 9). A date-time without an offset spans every zone: +14:00 at its earliest,
/// -12:00 at its latest. None for a precision that names no boundary.
fn temporal_boundary(t: &Temporal, precision: Option<i64>, high: bool) -> Option<Temporal> {
    let widths = part_widths(t);
    let full: i64 = widths.iter().sum();
    let wanted = precision.unwrap_or(full);
    let mut digits = 0;
    let mut count = None;
    for (i, w) in widths.iter().enumerate() {
        digits += w;
        if digits == wanted {
            count = Some(i + 1);
        }
    }
    let count = count?;
    let start = if t.time_only { 3 } else { 0 };
    let mut parts = t.parts.clone();
    parts.truncate(count);
    while parts.len() < count {
        let k = parts.len() + start;
        let value = match (k, high) {
            (1, false) | (2, false) => 1,
            (1, true) => 12,
            (2, true) => days_in_month(parts[0], parts[1]),
            (3, true) => 23,
            (4, true) | (5, true) => 59,
            (6, true) => 999,
            _ => 0,
        };
        parts.push(value);
    }
    let offset = match t.offset {
        Some(o) => Some(o),
        None if !t.time_only && count > 3 => Some(if high { -12 * 60 } else { 14 * 60 }),
        None => None,
    };
    Some(Temporal {
        parts,
        offset: if count > 3 { offset } else { None },
        time_only: t.time_only,
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let first = |y: i64, m: i64| NaiveDate::from_ymd_opt(y as i32, m as u32, 1);
    let next = if month == 12 {
        first(year + 1, 1)
    } else {
        first(year, month + 1)
    };
    match (first(year, month), next) {
        (Some(a), Some(b)) => (b - a).num_days(),
        _ => 31,
    }
}

/// How many digits a date, date-time or time was given with (`@2014` 4, `@T10:30` 4,
/// `@2014-01-05T10:30:00.000` 17): milliseconds count three, every other part two, the year four.
fn temporal_precision(t: &Temporal) -> i64 {
    part_widths(t).iter().take(t.parts.len()).sum()
}

/// The digits each part of a date-time (year .. millisecond) or a time (hour ..) is written with.
fn part_widths(t: &Temporal) -> &'static [i64] {
    if t.time_only {
        &[2, 2, 2, 3]
    } else {
        &[4, 2, 2, 2, 2, 2, 3]
    }
}

fn format_temporal(t: &Temporal) -> String {
    let p = &t.parts;
    let mut out = String::new();
    let start = if t.time_only { 3 } else { 0 };
    for (i, v) in p.iter().enumerate() {
        let k = i + start;
        match k {
            0 => out.push_str(&format!("{v:04}")),
            1 | 2 => out.push_str(&format!("-{v:02}")),
            3 => out.push_str(&format!("{}{v:02}", if t.time_only { "" } else { "T" })),
            4 | 5 => out.push_str(&format!(":{v:02}")),
            _ => out.push_str(&format!(".{v:03}")),
        }
    }
    match t.offset {
        Some(0) => out.push('Z'),
        Some(o) => out.push_str(&format!(
            "{}{:02}:{:02}",
            if o < 0 { '-' } else { '+' },
            o.abs() / 60,
            o.abs() % 60
        )),
        None => {}
    }
    out
}

fn to_integer(item: &Item<'_>) -> Option<i64> {
    match item.primitive() {
        Item::Integer(i) => Some(i),
        Item::Boolean(b) => Some(i64::from(b)),
        Item::String(s) => {
            let t = s.strip_prefix('+').unwrap_or(&s);
            (!t.is_empty()
                && t.trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
        }
        _ => None,
    }
}

fn to_decimal(item: &Item<'_>) -> Option<Decimal> {
    match item.primitive() {
        Item::Integer(i) => Some(Decimal::from(i)),
        Item::Decimal(d) => Some(d),
        Item::Boolean(b) => Some(Decimal::from(u8::from(b))),
        Item::String(s) => {
            let t = s.strip_prefix(['+', '-']).unwrap_or(&s);
            let ok = !t.is_empty()
                && t.chars().all(|c| c.is_ascii_digit() || c == '.')
                && t.matches('.').count() <= 1
                && !t.ends_with('.')
                && !t.starts_with('.');
            if ok { decimal::parse(&s) } else { None }
        }
        _ => None,
    }
}

fn to_boolean(item: &Item<'_>) -> Option<bool> {
    match item.primitive() {
        Item::Boolean(b) => Some(b),
        Item::Integer(1) => Some(true),
        Item::Integer(0) => Some(false),
        Item::Decimal(d) if d == Decimal::ONE => Some(true),
        Item::Decimal(d) if d.is_zero() => Some(false),
        Item::String(s) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn parse_quantity<'a>(s: &str) -> Option<Item<'a>> {
    let s = s.trim();
    let (number, unit) = match s.split_once(' ') {
        Some((n, u)) => {
            let u = u.trim();
            let quoted = u.len() >= 2 && u.starts_with('\'') && u.ends_with('\'');
            let calendar = matches!(
                u,
                "year"
                    | "years"
                    | "month"
                    | "months"
                    | "week"
                    | "weeks"
                    | "day"
                    | "days"
                    | "hour"
                    | "hours"
                    | "minute"
                    | "minutes"
                    | "second"
                    | "seconds"
                    | "millisecond"
                    | "milliseconds"
            );
            if !quoted && !calendar {
                return None;
            }
            (n, u.trim_matches('\'').to_owned())
        }
        None => (s, "1".to_owned()),
    };
    Some(Item::Quantity(
        to_decimal(&Item::String(number.to_owned()))?,
        unit,
    ))
}

fn encode_decode(encode: bool, s: &str, format: &str) -> Option<String> {
    use base64::Engine as _;
    let engines = (
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    );
    match (encode, format) {
        (true, "hex") => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
        (false, "hex") => {
            let bytes: Option<Vec<u8>> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect();
            String::from_utf8(bytes?).ok()
        }
        (true, "base64") => Some(engines.0.encode(s)),
        (true, "urlbase64") => Some(engines.1.encode(s)),
        (false, "base64") => String::from_utf8(engines.0.decode(s).ok()?).ok(),
        (false, "urlbase64") => String::from_utf8(engines.1.decode(s).ok()?).ok(),
        _ => None,
    }
}

fn escape(escape: bool, s: &str, format: &str) -> String {
    let table: &[(&str, &str)] = match format {
        "html" => &[
            ("&", "&amp;"),
            ("<", "&lt;"),
            (">", "&gt;"),
            ("\"", "&quot;"),
            ("'", "&#39;"),
        ],
        _ => &[
            ("\\", "\\\\"),
            ("\"", "\\\""),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
        ],
    };
    let mut out = s.to_owned();
    if escape {
        for (raw, escaped) in table {
            out = out.replace(raw, escaped);
        }
    } else {
        for (raw, escaped) in table.iter().rev() {
            out = out.replace(escaped, raw);
        }
    }
    out
}

/// Adds a duration (calendar units or UCUM time units) to a date or date-time.
pub(super) fn add_duration(
    t: &Temporal,
    amount: f64,
    unit: &str,
) -> Result<Temporal, FhirPathError> {
    let mut parts = t.parts.clone();
    let whole = amount.trunc() as i64;
    let (y, m, d) = (
        parts[0],
        parts.get(1).copied().unwrap_or(1),
        parts.get(2).copied().unwrap_or(1),
    );
    let date = NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
        .ok_or_else(|| error("invalid date"))?;
    let time = chrono::NaiveTime::from_hms_milli_opt(
        parts.get(3).copied().unwrap_or(0) as u32,
        parts.get(4).copied().unwrap_or(0) as u32,
        parts.get(5).copied().unwrap_or(0) as u32,
        parts.get(6).copied().unwrap_or(0) as u32,
    )
    .ok_or_else(|| error("invalid time"))?;
    let at = date.and_time(time);
    // Amounts come from expressions and data: every step is checked, so a huge one is "date out
    // of range", never an overflow.
    let plus = |delta: Option<Duration>| delta.and_then(|d| at.checked_add_signed(d));
    let shifted = match unit {
        // UCUM `a` and `mo` are not calendar durations (a UCUM year is 365.25 days): FHIRPath
        // refuses them in date arithmetic, as it does any unit not listed here.
        "year" | "years" => i32::try_from(whole)
            .ok()
            .and_then(|w| at.year().checked_add(w))
            .and_then(|year| {
                at.with_year(year)
                    .or_else(|| (at - Duration::days(1)).with_year(year))
            }),
        "month" | "months" => (i64::from(at.year()) * 12 + i64::from(at.month0()))
            .checked_add(whole)
            .and_then(|months| {
                let year = i32::try_from(months.div_euclid(12)).ok()?;
                let month = months.rem_euclid(12) as u32 + 1;
                // The same day, or the month's last day when it is shorter (Jan 31 + 1 month).
                (1..=at.day())
                    .rev()
                    .find_map(|day| NaiveDate::from_ymd_opt(year, month, day))
                    .map(|d| d.and_time(at.time()))
            }),
        "week" | "weeks" | "wk" => plus(Duration::try_weeks(whole)),
        "day" | "days" | "d" => plus(Duration::try_days(whole)),
        "hour" | "hours" | "h" => plus(Duration::try_hours(whole)),
        "minute" | "minutes" | "min" => plus(Duration::try_minutes(whole)),
        // The decimal part of seconds is ignored (FHIRPath: only milliseconds add below a second).
        "second" | "seconds" | "s" => plus(Duration::try_seconds(whole)),
        "millisecond" | "milliseconds" | "ms" => plus(Duration::try_milliseconds(whole)),
        _ => return Err(error("cannot add a quantity with that unit to a date")),
    }
    .ok_or_else(|| error("date out of range"))?;
    let all = [
        i64::from(shifted.year()),
        i64::from(shifted.month()),
        i64::from(shifted.day()),
        i64::from(shifted.hour()),
        i64::from(shifted.minute()),
        i64::from(shifted.second()),
        i64::from(shifted.nanosecond() / 1_000_000),
    ];
    let keep = parts.len();
    parts = all[..keep].to_vec();
    Ok(Temporal {
        parts,
        offset: t.offset,
        time_only: false,
    })
}

/// `sort()` and `sort(key, -key, ...)`: stable, ascending unless the key is negated.
fn sort<'a>(
    focus: &Value<'a>,
    args: &[Expr],
    env: &Environment<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, FhirPathError> {
    use std::cmp::Ordering;
    let keys: Vec<(bool, &Expr)> = args
        .iter()
        .map(|a| match a {
            Expr::Unary("-", inner) => (true, inner.as_ref()),
            other => (false, other),
        })
        .collect();
    let mut rows = Vec::new();
    for (i, item) in focus.iter().enumerate() {
        let inner = Scope {
            this: Some(item.clone()),
            index: Some(i as i64),
            total: scope.total.clone(),
        };
        let mut values = Vec::new();
        if keys.is_empty() {
            values.push(Some(item.primitive()));
        }
        for (_, key) in &keys {
            values.push(
                single(&eval(key, env, &vec![item.clone()], &inner)?)?.map(|v| v.primitive()),
            );
        }
        rows.push((values, item.clone()));
    }
    let order = |a: &Option<Item<'_>>, b: &Option<Item<'_>>| -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, _) => Ordering::Greater,
            (_, None) => Ordering::Less,
            (Some(x), Some(y)) => match (x, y) {
                (Item::String(x), Item::String(y)) => x.cmp(y),
                (Item::Integer(x), Item::Integer(y)) => x.cmp(y),
                _ => number(x).partial_cmp(&number(y)).unwrap_or(Ordering::Equal),
            },
        }
    };
    rows.sort_by(|(a, _), (b, _)| {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let descending = keys.get(i).is_some_and(|(d, _)| *d);
            let o = order(x, y);
            if o != Ordering::Equal {
                return if descending { o.reverse() } else { o };
            }
        }
        Ordering::Equal
    });
    Ok(rows.into_iter().map(|(_, item)| item).collect())
}
