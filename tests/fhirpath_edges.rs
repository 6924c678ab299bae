//! FHIRPath on extreme numbers and dates: an empty result or an error, never a panic, an
//! overflow or an endless loop (expressions come from loaded profiles, values from resources).

use iop_gateway::fhirpath::{Environment, Item, evaluate, parse};
use serde_json::json;

/// The result as text, or "error".
fn run(expression: &str) -> String {
    let resource = json!({ "resourceType": "Patient" });
    let env = Environment::new(&resource);
    let expr = parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    match evaluate(&expr, &env) {
        Ok(items) => items
            .iter()
            .map(|i| iop_gateway::fhirpath::render(i).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        Err(_) => "error".into(),
    }
}

#[test]
fn integer_overflow_is_empty() {
    let min = "(-9223372036854775807 - 1)";
    assert_eq!(run(&format!("{min} div -1")), "");
    assert_eq!(run(&format!("{min} mod -1")), "");
    assert_eq!(run(&format!("{min}.abs()")), "");
    // Ordinary cases are unchanged.
    assert_eq!(run("-7 div 2"), "-3");
    assert_eq!(run("-7 mod 2"), "-1");
    assert_eq!(run("(-7).abs()"), "7");
}

#[test]
fn adding_huge_durations_is_out_of_range() {
    for amount in [
        "2147483647 years",
        "9223372036854775807 years",
        "10000000 months",
        "9223372036854775807 months",
        "9999999999999 weeks",
        "9999999999999999 days",
        "9999999999999999 hours",
        "9999999999999999 'min'",
        "9999999999999999 'ms'",
        "99999999999999999999.5 's'",
    ] {
        assert_eq!(
            run(&format!("@2020-01-31T10:00:00Z + {amount}")),
            "error",
            "{amount}"
        );
    }
    assert_eq!(run("@2020-01-31 + 1 month"), "2020-02-29");
    assert_eq!(run("@2020-03-31 - 1 month"), "2020-02-29");
    assert_eq!(run("@2020-02-29 + 1 year"), "2021-02-28");
}

#[test]
fn a_time_zone_of_many_digits_is_not_a_date_time() {
    // Its offset in minutes would overflow, or move the instant out of any calendar.
    let resource = json!({
        "resourceType": "Patient",
        "birthDate": "2020-01-01",
        "deceasedDateTime": "2026-01-01T10:00:00+999999999999999999:00"
    });
    let env = Environment::new(&resource);
    for expression in [
        "deceased > @2020-01-01T00:00:00Z",
        "deceased.toString().toDateTime() > @2020-01-01T00:00:00Z",
        "'2026-01-01T10:00:00+99999999999:00'.toDateTime() > @2020-01-01T00:00:00Z",
    ] {
        let expr = parse(expression).unwrap();
        let result = evaluate(&expr, &env);
        assert!(
            !matches!(result.as_deref(), Ok([Item::Boolean(true)])),
            "{expression}: {result:?}"
        );
    }
    let expr = parse("'2026-01-01T10:00:00+05:30'.toDateTime() > @2026-01-01T04:00:00Z").unwrap();
    assert!(matches!(
        evaluate(&expr, &env).as_deref(),
        Ok([Item::Boolean(true)])
    ));
}
