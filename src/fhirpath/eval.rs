//! Evaluation of a parsed FHIRPath expression against a JSON resource.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value as Json;

use crate::json_member::{in_map, member, primitive_sibling};

use super::functions;
use super::parser::{Expr, Literal};
use super::{FhirPathError, TypeModel};
use rust_decimal::Decimal;

use super::decimal;
use super::value::{Item, Temporal, Value, canonical_unit, to_base};

/// Variables of an evaluation: `%resource`, `%context`, `%rootResource` and any the caller adds.
pub struct Environment<'a> {
    pub resource: &'a Json,
    /// What the expression is evaluated on (an invariant's element); the resource if not set.
    pub context: Option<&'a Json>,
    /// The outermost resource (the Bundle or the container of a nested resource); the resource
    /// if not set.
    pub root_resource: Option<&'a Json>,
    /// The FHIR type of the focus where the caller knows it (a validator knows each element's
    /// type; JSON alone cannot tell a `dateTime` from a `string`).
    pub focus_type: Option<&'static str>,
    pub variables: HashMap<String, Value<'a>>,
    /// Element types beyond what the JSON says (see `TypeModel`).
    pub model: Option<&'a dyn TypeModel>,
}

impl<'a> Environment<'a> {
    pub fn new(resource: &'a Json) -> Self {
        Self {
            resource,
            context: None,
            root_resource: None,
            focus_type: None,
            variables: HashMap::new(),
            model: None,
        }
    }

    /// Types elements by `model` (`Patient.gender` is a `code`, `Patient.name` a `HumanName`).
    pub fn with_model(mut self, model: &'a dyn TypeModel) -> Self {
        self.model = Some(model);
        self
    }

    pub fn with_context(mut self, context: &'a Json) -> Self {
        self.context = Some(context);
        self
    }

    pub fn with_root_resource(mut self, root: &'a Json) -> Self {
        self.root_resource = Some(root);
        self
    }

    /// Types the focus as the FHIR primitive `type_code` (others are known from the JSON).
    pub fn with_focus_type(mut self, type_code: &str) -> Self {
        self.focus_type = PRIMITIVES.iter().find(|p| **p == type_code).copied();
        self
    }
}

/// The lambda scope of `where`, `select`, ... : `$this`, `$index`, `$total`.
#[derive(Clone)]
pub(super) struct Scope<'a> {
    pub this: Option<Item<'a>>,
    pub index: Option<i64>,
    pub total: Option<Value<'a>>,
}

pub(super) fn error(message: impl Into<String>) -> FhirPathError {
    FhirPathError::Evaluation(message.into())
}

/// Evaluates `expr` with `focus` (a node inside the resource) as the input collection, as FHIR
/// element invariants are evaluated.
pub fn evaluate_on<'a>(
    expr: &Expr,
    env: &Environment<'a>,
    focus: &'a Json,
) -> Result<Value<'a>, FhirPathError> {
    let input = vec![Item::Node(focus, env.focus_type)];
    let scope = Scope {
        this: input.first().cloned(),
        index: None,
        total: None,
    };
    eval(expr, env, &input, &scope)
}

/// Evaluates `expr` with the resource as the input collection.
pub fn evaluate<'a>(expr: &Expr, env: &Environment<'a>) -> Result<Value<'a>, FhirPathError> {
    let input = vec![Item::Node(env.resource, None)];
    let scope = Scope {
        this: input.first().cloned(),
        index: None,
        total: None,
    };
    eval(expr, env, &input, &scope)
}

const PRIMITIVES: &[&str] = &[
    "boolean",
    "integer",
    "string",
    "decimal",
    "uri",
    "url",
    "canonical",
    "base64Binary",
    "instant",
    "date",
    "dateTime",
    "time",
    "code",
    "oid",
    "id",
    "markdown",
    "unsignedInt",
    "positiveInt",
    "uuid",
    "xhtml",
];

/// The FHIR type named by a choice-element suffix: `Quantity` from `valueQuantity`, `dateTime`
/// from `valueDateTime` (primitive type names start in lower case).
fn choice_type(suffix: &str) -> &str {
    PRIMITIVES
        .iter()
        .find(|p| {
            p.len() == suffix.len()
                && p[1..] == suffix[1..]
                && p[..1].eq_ignore_ascii_case(&suffix[..1])
        })
        .copied()
        .unwrap_or(suffix)
}

/// Known element types where JSON alone cannot tell (dates and instants are strings).
fn element_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "birthDate" => "date",
        "lastUpdated" | "issued" => "instant",
        "authoredOn" | "effectiveDateTime" | "recorded" | "date" | "dateTime" => "dateTime",
        "start" | "end" => "dateTime",
        "deceasedDateTime" | "onsetDateTime" | "occurrenceDateTime" => "dateTime",
        _ => return None,
    })
}

pub(super) fn children<'a>(
    item: &Item<'a>,
    name: &str,
    model: Option<&'a dyn TypeModel>,
    out: &mut Value<'a>,
) {
    if let Item::TypeInfo(namespace, type_name) = item {
        match name {
            "namespace" => out.push(Item::String((*namespace).to_owned())),
            "name" => out.push(Item::String(type_name.clone())),
            _ => {}
        }
        return;
    }
    if let Item::Extended(_, element, _) = item {
        // A primitive's own children are its `id` and `extension`, kept beside it.
        return children(&Item::Node(element, Some("Element")), name, model, out);
    }
    let Item::Node(Json::Object(map), parent_type) = item else {
        return;
    };
    let mut push = |node: &'a Json, ty: Option<&'a str>| match node {
        Json::Array(items) => out.extend(items.iter().map(|i| Item::Node(i, ty))),
        other => out.push(Item::Node(other, ty)),
    };
    let value = in_map(map, name);
    let extensions = primitive_sibling(map, name);
    if value.is_some() || extensions.is_some() {
        let parent = parent_type.or_else(|| in_map(map, "resourceType").and_then(Json::as_str));
        let modelled = model
            .zip(parent)
            .and_then(|(model, parent)| model.element_type(parent, name));
        let ty = modelled.or_else(|| element_type(name));
        match extensions {
            None => push(value.unwrap_or(&Json::Null), ty),
            Some(extensions) => push_extended(value, extensions, ty, out),
        }
        return;
    }
    for (key, node) in map {
        if let Some(suffix) = key.strip_prefix(name)
            && suffix.starts_with(|c: char| c.is_ascii_uppercase())
        {
            push(node, Some(choice_type(suffix)));
        }
    }
}

/// Whether `name` on the node `focus` gives anything: what `children` would find, without
/// building it (`Presence` asks this of most data types' invariants).
pub(super) fn has_member(focus: &Json, name: &str) -> bool {
    let Json::Object(map) = focus else {
        return false;
    };
    let present = |node: &Json| !matches!(node, Json::Array(items) if items.is_empty());
    let value = in_map(map, name);
    if value.is_some_and(present) {
        return true;
    }
    if primitive_sibling(map, name).is_some() {
        // A primitive's `_name` (rare): let `children` pair it with its value.
        let mut found = Vec::new();
        children(&Item::Node(focus, None), name, None, &mut found);
        return !found.is_empty();
    }
    value.is_none()
        && map.iter().any(|(key, node)| {
            key.strip_prefix(name)
                .is_some_and(|suffix| suffix.starts_with(|c: char| c.is_ascii_uppercase()))
                && present(node)
        })
}

/// Pairs a primitive (or a list of them) with its `_name` sibling, item by item; a value given
/// only as extensions is JSON null.
fn push_extended<'a>(
    value: Option<&'a Json>,
    extensions: &'a Json,
    ty: Option<&'a str>,
    out: &mut Value<'a>,
) {
    static NULL: Json = Json::Null;
    let pair = |value: &'a Json, element: &'a Json| match element {
        Json::Object(_) => Item::Extended(value, element, ty),
        _ => Item::Node(value, ty),
    };
    match (value, extensions) {
        (Some(Json::Array(values)), Json::Array(elements)) => out.extend(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| pair(v, elements.get(i).unwrap_or(&NULL))),
        ),
        (None, Json::Array(elements)) => out.extend(elements.iter().map(|e| pair(&NULL, e))),
        (Some(Json::Array(values)), _) => out.extend(values.iter().map(|v| Item::Node(v, ty))),
        (value, element) => out.push(pair(value.unwrap_or(&NULL), element)),
    }
}

fn literal<'a>(literal: &Literal) -> Result<Value<'a>, FhirPathError> {
    Ok(match literal {
        Literal::Empty => vec![],
        Literal::Boolean(b) => vec![Item::Boolean(*b)],
        Literal::String(s) => vec![Item::String(s.clone())],
        Literal::Integer(i) => vec![Item::Integer(*i)],
        Literal::Decimal(d) => vec![Item::Decimal(*d)],
        Literal::Quantity(v, u) => vec![Item::Quantity(*v, u.clone())],
        Literal::Date(d) => {
            let t = Temporal::parse_date_time(d).ok_or_else(|| error("invalid date literal"))?;
            vec![if d.contains('T') {
                Item::DateTime(t)
            } else {
                Item::Date(t)
            }]
        }
        Literal::DateTime(d) => vec![Item::DateTime(
            Temporal::parse_date_time(d).ok_or_else(|| error("invalid date-time literal"))?,
        )],
        Literal::Time(t) => vec![Item::Time(
            Temporal::parse_time(t).ok_or_else(|| error("invalid time literal"))?,
        )],
    })
}

pub(super) fn eval<'a>(
    expr: &Expr,
    env: &Environment<'a>,
    input: &Value<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, FhirPathError> {
    match expr {
        Expr::Literal(l) => literal(l),
        Expr::Identifier(name) => {
            let mut out = Vec::new();
            for item in input {
                if let Item::Node(node, _) = item
                    && member(node, "resourceType").and_then(Json::as_str) == Some(name.as_str())
                {
                    out.push(item.clone());
                    continue;
                }
                children(item, name, env.model, &mut out);
            }
            if out.is_empty()
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && input
                    .iter()
                    .any(|i| matches!(i, Item::Node(n, _) if member(n, "resourceType").is_some()))
            {
                return Err(FhirPathError::Semantic(format!(
                    "`{name}` is not the type of the input"
                )));
            }
            Ok(out)
        }
        Expr::Member(target, name) => {
            let target = eval(target, env, input, scope)?;
            let mut out = Vec::new();
            for item in &target {
                children(item, name, env.model, &mut out);
            }
            Ok(out)
        }
        Expr::Function(target, name, args) => {
            let focus = match target {
                Some(t) => eval(t, env, input, scope)?,
                None => input.clone(),
            };
            functions::call(name, &focus, args, env, scope)
        }
        Expr::Index(target, index) => {
            let target = eval(target, env, input, scope)?;
            let index = eval(index, env, input, scope)?;
            match single(&index)?.map(|i| i.primitive()) {
                Some(Item::Integer(i)) if i >= 0 => {
                    Ok(target.into_iter().nth(i as usize).into_iter().collect())
                }
                Some(Item::Integer(_)) | None => Ok(vec![]),
                _ => Err(error("an index must be an integer")),
            }
        }
        Expr::Unary(op, operand) => {
            let value = eval(operand, env, input, scope)?;
            match (op, single(&value)?.map(|i| i.primitive())) {
                (_, None) => Ok(vec![]),
                (&"+", Some(item)) => Ok(vec![item]),
                // -(-2^63) is no Integer: empty, as for the other overflows.
                (_, Some(Item::Integer(i))) => {
                    Ok(i.checked_neg().map(Item::Integer).into_iter().collect())
                }
                (_, Some(Item::Decimal(d))) => Ok(vec![Item::Decimal(decimal::negate(d))]),
                (_, Some(Item::Quantity(v, u))) => Ok(vec![Item::Quantity(decimal::negate(v), u)]),
                _ => Err(error("unary minus needs a number")),
            }
        }
        Expr::Binary(op, left, right) => {
            let l = eval(left, env, input, scope)?;
            // Short-circuits keep `a and b` defined where `b` would fail to evaluate.
            if matches!(*op, "and" | "or" | "implies") {
                match (*op, as_boolean(&l)?) {
                    ("and", Some(false)) => return Ok(vec![Item::Boolean(false)]),
                    ("or", Some(true)) => return Ok(vec![Item::Boolean(true)]),
                    ("implies", Some(false)) => return Ok(vec![Item::Boolean(true)]),
                    _ => {}
                }
            }
            let r = eval(right, env, input, scope)?;
            binary(op, l, r)
        }
        Expr::Type(op, operand, type_name) => {
            let value = eval(operand, env, input, scope)?;
            if value.len() > 1 {
                return Err(error(format!("`{op}` needs a single item")));
            }
            let Some(item) = value.into_iter().next() else {
                return Ok(vec![]);
            };
            known_type(env, type_name)?;
            let matches = is_type(&item, type_name, *op == "is");
            Ok(match *op {
                "is" => vec![Item::Boolean(matches)],
                _ if matches => vec![item],
                _ => vec![],
            })
        }
        Expr::External(name) => match name.as_str() {
            "resource" => Ok(vec![Item::Node(env.resource, None)]),
            "context" => Ok(vec![Item::Node(env.context.unwrap_or(env.resource), None)]),
            "rootResource" => Ok(vec![Item::Node(
                env.root_resource.unwrap_or(env.resource),
                None,
            )]),
            "ucum" => Ok(vec![Item::String("http://unitsofmeasure.org".into())]),
            "sct" => Ok(vec![Item::String("http://snomed.info/sct".into())]),
            "loinc" => Ok(vec![Item::String("http://loinc.org".into())]),
            other => {
                if let Some(v) = env.variables.get(other) {
                    return Ok(v.clone());
                }
                if let Some(vs) = other.strip_prefix("vs-") {
                    return Ok(vec![Item::String(format!(
                        "http://hl7.org/fhir/ValueSet/{vs}"
                    ))]);
                }
                if let Some(ext) = other.strip_prefix("ext-") {
                    return Ok(vec![Item::String(format!(
                        "http://hl7.org/fhir/StructureDefinition/{ext}"
                    ))]);
                }
                Err(FhirPathError::Semantic(format!(
                    "unknown variable %{other}"
                )))
            }
        },
        Expr::Special(name) => match name.as_str() {
            "this" => Ok(scope.this.clone().into_iter().collect()),
            "index" => Ok(scope.index.map(Item::Integer).into_iter().collect()),
            "total" => Ok(scope.total.clone().unwrap_or_default()),
            other => Err(FhirPathError::Semantic(format!("unknown ${other}"))),
        },
    }
}

/// Whether `item` is of type `name` (`Quantity`, `FHIR.string`, `System.Integer`, `Resource`).
const SYSTEM_TYPES: &[&str] = &[
    "Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time", "Quantity",
];

/// With a model to ask, a type name that is neither a System nor a FHIR type is an error (a typo
/// such as `as(string1)` would otherwise quietly match nothing).
pub(super) fn known_type(env: &Environment<'_>, name: &str) -> Result<(), FhirPathError> {
    let Some(model) = env.model else {
        return Ok(());
    };
    let known = match name.split_once('.') {
        // A System name that is not one (`System.Patient`) simply matches nothing.
        Some(("System", _)) => true,
        Some(("FHIR", n)) => model.is_type_name(n),
        Some(_) => false,
        None => SYSTEM_TYPES.contains(&name) || model.is_type_name(name),
    };
    if known {
        Ok(())
    } else {
        Err(error(format!("`{name}` is not a known type")))
    }
}

/// Whether `item` is of type `name` (possibly qualified: `FHIR.string`), or of a type derived from
/// it. `is` counts the primitive specializations (a `code` is a `string`, a `uuid` a `uri`); `as`
/// and `ofType` do not (`gender.as(string)` is empty), as the HL7 engines have it.
pub(super) fn is_type(item: &Item<'_>, name: &str, primitive_specializations: bool) -> bool {
    let (namespace, wanted) = match name.split_once('.') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, name),
    };
    let (kind, actual) = item.type_name();
    if namespace.is_some_and(|ns| ns != kind) {
        return false;
    }
    if actual == wanted {
        return true;
    }
    if kind != "FHIR" {
        return false;
    }
    let is_resource = matches!(item, Item::Node(n, _) if member(n, "resourceType").is_some());
    let specializes = |base: &str| -> bool {
        match actual.as_str() {
            "code" | "id" | "markdown" => base == "string",
            // In R4 the uri family derives from `uri`, not from `string`.
            "url" | "canonical" | "uuid" | "oid" => base == "uri",
            "positiveInt" | "unsignedInt" => base == "integer",
            _ => false,
        }
    };
    is_resource && matches!(wanted, "Resource" | "DomainResource")
        || (primitive_specializations && specializes(wanted))
        || matches!(
            (actual.as_str(), wanted),
            (
                "Age" | "Duration" | "Distance" | "Count" | "SimpleQuantity" | "MoneyQuantity",
                "Quantity"
            )
        )
}

pub(super) fn single<'a>(value: &Value<'a>) -> Result<Option<Item<'a>>, FhirPathError> {
    match value.len() {
        0 => Ok(None),
        1 => Ok(value.first().cloned()),
        _ => Err(error("expected a single item, found a collection")),
    }
}

/// Singleton evaluation of collections as Boolean (FHIRPath §4.5).
pub(super) fn as_boolean(value: &Value<'_>) -> Result<Option<bool>, FhirPathError> {
    // A single non-boolean item counts as true: no conversion needed to tell.
    match value.as_slice() {
        [] => Ok(None),
        [Item::Boolean(b) | Item::Node(Json::Bool(b), _) | Item::Extended(Json::Bool(b), _, _)] => {
            Ok(Some(*b))
        }
        [_] => Ok(Some(true)),
        _ => Err(error("expected a single item, found a collection")),
    }
}

fn number(item: &Item<'_>) -> Option<Decimal> {
    match item {
        Item::Integer(i) => Some(Decimal::from(*i)),
        Item::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// Two quantities' values in one unit (the first's, or a shared base unit): exact through the
/// table of simple factors, else through UCUM. None when the units do not convert, and between a
/// calendar duration and a UCUM unit other than its own (`1 year` is no `365.25 'd'`).
fn aligned(v1: Decimal, u1: &str, v2: Decimal, u2: &str) -> Option<(Decimal, Decimal)> {
    // A calendar year or month is no UCUM `a` or `mo` (those are 365.25 and 30.4375 days).
    let calendar_year_or_month = |u: &str| matches!(u, "year" | "years" | "month" | "months");
    if calendar_year_or_month(u1) != calendar_year_or_month(u2) {
        return None;
    }
    if let (Some((a, ua)), Some((b, ub))) = (to_base(v1, u1), to_base(v2, u2))
        && ua == ub
    {
        return Some((a, b));
    }
    if is_calendar(u1) || is_calendar(u2) {
        return None;
    }
    let converted = ucum::convert(decimal::to_f64(v2), canonical_unit(u2), canonical_unit(u1));
    Some((v1, decimal::from_f64(converted.ok()?)?))
}

/// Two items as comparable values: strings that meet a date become dates.
fn coerce<'a>(a: &Item<'a>, b: &Item<'a>) -> (Item<'a>, Item<'a>) {
    let (a, b) = (a.primitive(), b.primitive());
    let as_temporal = |s: &str, like: &Item<'_>| -> Option<Item<'a>> {
        let t = Temporal::parse_date_time(s)?;
        Some(match like {
            Item::Date(_) if t.is_date_only() => Item::Date(t),
            Item::Date(_) | Item::DateTime(_) => Item::DateTime(t),
            _ => return None,
        })
    };
    match (&a, &b) {
        (Item::String(s), Item::Date(_) | Item::DateTime(_)) => {
            (as_temporal(s, &b).unwrap_or(a.clone()), b)
        }
        (Item::Date(_) | Item::DateTime(_), Item::String(s)) => {
            let converted = as_temporal(s, &a).unwrap_or(b.clone());
            (a, converted)
        }
        (Item::Time(_), Item::String(s)) => {
            let converted = Temporal::parse_time(s).map(Item::Time).unwrap_or(b.clone());
            (a, converted)
        }
        (Item::String(s), Item::Time(_)) => (
            Temporal::parse_time(s).map(Item::Time).unwrap_or(a.clone()),
            b,
        ),
        _ => (a, b),
    }
}

/// `=` on two items: Some(bool), or None where precision leaves it open.
pub(super) fn item_equal(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    if let (Item::Node(x, _), Item::Node(y, _)) = (a, b)
        && (x.is_object() || y.is_object())
    {
        return Some(x == y);
    }
    let (a, b) = coerce(a, b);
    match (&a, &b) {
        (Item::String(x), Item::String(y)) => Some(x == y),
        (Item::Boolean(x), Item::Boolean(y)) => Some(x == y),
        (Item::Integer(x), Item::Integer(y)) => Some(x == y),
        (x, y) if number(x).is_some() && number(y).is_some() => Some(number(x)? == number(y)?),
        (Item::Date(x) | Item::DateTime(x), Item::Date(y) | Item::DateTime(y))
        | (Item::Time(x), Item::Time(y)) => x.compare(y).map(|o| o == Ordering::Equal),
        (Item::Quantity(v1, u1), Item::Quantity(v2, u2)) => match aligned(*v1, u1, *v2, u2) {
            Some((a, b)) => Some(a == b),
            None if is_calendar(u1) != is_calendar(u2) => None,
            None => Some(false),
        },
        _ => Some(false),
    }
}

fn is_calendar(unit: &str) -> bool {
    matches!(
        unit,
        "year" | "years" | "month" | "months" | "week" | "weeks" | "day" | "days"
    )
}

fn normalize_text(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `~` on two items.
pub(super) fn item_equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    if let (Item::Node(x, _), Item::Node(y, _)) = (a, b)
        && (x.is_object() || y.is_object())
    {
        return x == y;
    }
    let (a, b) = coerce(a, b);
    match (&a, &b) {
        (Item::String(x), Item::String(y)) => normalize_text(x) == normalize_text(y),
        (x, y) if number(x).is_some() && number(y).is_some() => number(x)
            .zip(number(y))
            .is_some_and(|(x, y)| decimal::equivalent(x, y)),
        (Item::Quantity(v1, u1), Item::Quantity(v2, u2)) => {
            aligned(*v1, u1, *v2, u2).is_some_and(|(a, b)| decimal::equivalent(a, b))
        }
        (Item::Date(x) | Item::DateTime(x), Item::Date(y) | Item::DateTime(y))
        | (Item::Time(x), Item::Time(y)) => x.compare(y) == Some(Ordering::Equal),
        _ => item_equal(&a, &b).unwrap_or(false),
    }
}

/// `a + b` for the aggregates: None where the sum is empty (an overflow).
pub(super) fn add<'a>(a: Item<'a>, b: Item<'a>) -> Result<Option<Item<'a>>, FhirPathError> {
    Ok(arithmetic("+", a, b)?.into_iter().next())
}

/// The order of two items as `<` sees it (None where precision leaves it open).
pub(super) fn compare(a: &Item<'_>, b: &Item<'_>) -> Result<Option<Ordering>, FhirPathError> {
    let (a, b) = coerce(a, b);
    Ok(match (&a, &b) {
        (Item::String(x), Item::String(y)) => Some(x.cmp(y)),
        (x, y) if number(x).is_some() && number(y).is_some() => number(x).partial_cmp(&number(y)),
        (Item::Date(x) | Item::DateTime(x), Item::Date(y) | Item::DateTime(y))
        | (Item::Time(x), Item::Time(y)) => x.compare(y),
        (Item::Quantity(v1, u1), Item::Quantity(v2, u2)) => match aligned(*v1, u1, *v2, u2) {
            Some((a, b)) => Some(a.cmp(&b)),
            None => return Err(error("cannot compare quantities of different dimensions")),
        },
        _ => return Err(error("cannot compare these types")),
    })
}

fn distinct_push<'a>(out: &mut Value<'a>, item: Item<'a>) {
    if !out.iter().any(|o| item_equal(o, &item) == Some(true)) {
        out.push(item);
    }
}

pub(super) fn union<'a>(l: Value<'a>, r: Value<'a>) -> Value<'a> {
    let mut out = Vec::new();
    for item in l.into_iter().chain(r) {
        distinct_push(&mut out, item);
    }
    out
}

fn boolean<'a>(b: Option<bool>) -> Value<'a> {
    b.map(Item::Boolean).into_iter().collect()
}

fn binary<'a>(op: &str, l: Value<'a>, r: Value<'a>) -> Result<Value<'a>, FhirPathError> {
    match op {
        "and" | "or" | "xor" | "implies" => {
            let (a, b) = (as_boolean(&l)?, as_boolean(&r)?);
            Ok(boolean(match op {
                "and" => match (a, b) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                "or" => match (a, b) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                "xor" => match (a, b) {
                    (Some(x), Some(y)) => Some(x != y),
                    _ => None,
                },
                _ => match (a, b) {
                    (Some(false), _) => Some(true),
                    (Some(true), b) => b,
                    (None, Some(true)) => Some(true),
                    _ => None,
                },
            }))
        }
        "|" => Ok(union(l, r)),
        "=" | "!=" => {
            if l.is_empty() || r.is_empty() {
                return Ok(vec![]);
            }
            let equal = if l.len() != r.len() {
                Some(false)
            } else {
                let mut all = Some(true);
                for (a, b) in l.iter().zip(&r) {
                    match item_equal(a, b) {
                        Some(true) => {}
                        Some(false) => {
                            all = Some(false);
                            break;
                        }
                        None => all = None,
                    }
                }
                all
            };
            Ok(boolean(if op == "=" { equal } else { equal.map(|e| !e) }))
        }
        "~" | "!~" => {
            let equivalent = if l.is_empty() && r.is_empty() {
                true
            } else if l.len() != r.len() {
                false
            } else {
                l.iter().all(|a| r.iter().any(|b| item_equivalent(a, b)))
            };
            Ok(vec![Item::Boolean(if op == "~" {
                equivalent
            } else {
                !equivalent
            })])
        }
        "<" | ">" | "<=" | ">=" => {
            let (Some(a), Some(b)) = (single(&l)?, single(&r)?) else {
                return Ok(vec![]);
            };
            Ok(boolean(compare(&a, &b)?.map(|o| match op {
                "<" => o == Ordering::Less,
                ">" => o == Ordering::Greater,
                "<=" => o != Ordering::Greater,
                _ => o != Ordering::Less,
            })))
        }
        "in" | "contains" => {
            let (needle, haystack) = if op == "in" { (l, r) } else { (r, l) };
            let Some(item) = single(&needle)? else {
                return Ok(vec![]);
            };
            Ok(vec![Item::Boolean(
                haystack.iter().any(|h| item_equal(h, &item) == Some(true)),
            )])
        }
        "&" => {
            let text = |v: &Value<'_>| -> Result<String, FhirPathError> {
                Ok(single(v)?.and_then(|i| i.as_string()).unwrap_or_default())
            };
            Ok(vec![Item::String(text(&l)? + &text(&r)?)])
        }
        _ => {
            let (Some(a), Some(b)) = (single(&l)?, single(&r)?) else {
                return Ok(vec![]);
            };
            arithmetic(op, a.primitive(), b.primitive())
        }
    }
}

fn arithmetic<'a>(op: &str, a: Item<'a>, b: Item<'a>) -> Result<Value<'a>, FhirPathError> {
    use Item::*;
    Ok(vec![match (op, a, b) {
        ("+", String(x), String(y)) => String(x + &y),
        ("+" | "-" | "*", Integer(x), Integer(y)) => {
            let r = match op {
                "+" => x.checked_add(y),
                "-" => x.checked_sub(y),
                _ => x.checked_mul(y),
            };
            match r {
                Some(r) => Integer(r),
                None => return Ok(vec![]),
            }
        }
        // Empty for a zero divisor and for the one overflowing case (the smallest integer by -1).
        ("div", Integer(x), Integer(y)) => match x.checked_div(y) {
            Some(r) => Integer(r),
            None => return Ok(vec![]),
        },
        ("mod", Integer(x), Integer(y)) => match x.checked_rem(y) {
            Some(r) => Integer(r),
            None => return Ok(vec![]),
        },
        (op, Date(t) | DateTime(t), Quantity(v, u)) if op == "+" || op == "-" => {
            let amount = if op == "-" { -v } else { v };
            let date_only = t.is_date_only();
            let shifted = functions::add_duration(&t, decimal::to_f64(amount), &u)?;
            if date_only {
                Date(shifted)
            } else {
                DateTime(shifted)
            }
        }
        (op, Quantity(v1, u1), Quantity(v2, u2)) if op == "+" || op == "-" => {
            let sum = |a: rust_decimal::Decimal, b: rust_decimal::Decimal| {
                if op == "+" {
                    a.checked_add(b)
                } else {
                    a.checked_sub(b)
                }
            };
            if u1 == u2 {
                return Ok(sum(v1, v2).map(|r| Quantity(r, u1)).into_iter().collect());
            }
            let (Some((a, ua)), Some((b, ub))) = (to_base(v1, &u1), to_base(v2, &u2)) else {
                return Ok(vec![]);
            };
            if ua != ub {
                return Ok(vec![]);
            }
            return Ok(sum(a, b).map(|r| Quantity(r, ua)).into_iter().collect());
        }
        // Products and quotients of quantities compose their units as UCUM does (`(cm).(m)`),
        // which compares with `m2` through UCUM conversion.
        (op @ ("*" | "/"), Quantity(v1, u1), Quantity(v2, u2)) => {
            let (u1, u2) = (canonical_unit(&u1), canonical_unit(&u2));
            let value = if op == "*" {
                v1.checked_mul(v2)
            } else {
                v1.checked_div(v2)
            };
            let unit = match (u1, u2) {
                ("1", "1") => "1".to_owned(),
                (u, "1") => u.to_owned(),
                ("1", u) if op == "*" => u.to_owned(),
                _ => format!("({u1}){}({u2})", if op == "*" { "." } else { "/" }),
            };
            return Ok(value.map(|v| Quantity(v, unit)).into_iter().collect());
        }
        ("*", Quantity(v, u), x) | ("*", x, Quantity(v, u)) if number(&x).is_some() => {
            match number(&x).and_then(|n| v.checked_mul(n)) {
                Some(r) => Quantity(r, u),
                None => return Ok(vec![]),
            }
        }
        ("/", Quantity(v, u), x) if number(&x).is_some() => {
            match number(&x).and_then(|n| v.checked_div(n)) {
                Some(r) => Quantity(r, u),
                None => return Ok(vec![]),
            }
        }
        (op, x, y) if number(&x).is_some() && number(&y).is_some() => {
            let (Some(x), Some(y)) = (number(&x), number(&y)) else {
                return Ok(vec![]);
            };
            // Overflow and a zero divisor are empty, as for integers.
            let result = match op {
                "+" => x.checked_add(y).map(Decimal),
                "-" => x.checked_sub(y).map(Decimal),
                "*" => x.checked_mul(y).map(Decimal),
                "/" => x.checked_div(y).map(Decimal),
                "div" => x
                    .checked_div(y)
                    .and_then(|q| rust_decimal::prelude::ToPrimitive::to_i64(&q.trunc()))
                    .map(Integer),
                "mod" => x.checked_rem(y).map(Decimal),
                _ => return Err(error(format!("unknown operator {op}"))),
            };
            match result {
                Some(r) => r,
                None => return Ok(vec![]),
            }
        }
        (op, _, _) => return Err(error(format!("`{op}` is not defined for these operands"))),
    }])
}

#[cfg(test)]
mod tests {
    use crate::fhirpath::{Environment, evaluate, parse, render};

    fn eval(text: &str) -> Vec<String> {
        let resource = serde_json::json!({ "resourceType": "Patient" });
        let result = evaluate(&parse(text).unwrap(), &Environment::new(&resource)).unwrap();
        result.iter().map(|i| render(i).unwrap()).collect()
    }

    #[test]
    fn integer_overflow_is_empty_not_a_panic() {
        let min = "(-9223372036854775807 - 1)";
        assert_eq!(eval(&format!("{min} div -1")), Vec::<String>::new());
        assert_eq!(eval(&format!("{min} mod -1")), Vec::<String>::new());
        assert_eq!(eval(&format!("-{min}")), Vec::<String>::new());
        assert_eq!(eval(&format!("{min}.abs()")), Vec::<String>::new());
        assert_eq!(eval("-7 div 2"), ["-3"]);
        assert_eq!(eval("-7 mod 2"), ["-1"]);
        assert_eq!(eval("-(-7)"), ["7"]);
    }

    #[test]
    fn aggregates_fold_the_collection() {
        assert_eq!(eval("(1 | 2 | 3).sum()"), ["6"]);
        assert_eq!(eval("(1 | 2.5).avg() = 1.75"), ["true"]);
        assert_eq!(eval("('b' | 'a' | 'c').min()"), ["a"]);
        assert_eq!(eval("(@2020-01-01 | @2021-06-01).max()"), ["2021-06-01"]);
        assert_eq!(eval("{}.sum()"), Vec::<String>::new());
        assert_eq!(
            eval("(9223372036854775807 | 1).sum()"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn date_arithmetic_past_any_calendar_is_an_error_not_a_panic() {
        let resource = serde_json::json!({});
        let env = Environment::new(&resource);
        for unit in [
            "years",
            "months",
            "weeks",
            "days",
            "hours",
            "minutes",
            "seconds",
            "milliseconds",
        ] {
            for change in [
                "+ 9223372036854775807",
                "- 9223372036854775807",
                "+ 99999999999999999999.0",
            ] {
                let text = format!("@2026-01-31T10:00:00 {change} {unit}");
                assert!(evaluate(&parse(&text).unwrap(), &env).is_err(), "{text}");
            }
        }
        assert_eq!(eval("@2026-01-31 + 1 month"), ["2026-02-28"]);
        assert_eq!(eval("@2024-02-29 + 1 year"), ["2025-02-28"]);
    }
}
