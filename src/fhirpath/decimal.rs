//! FHIRPath decimals as written: `rust_decimal` keeps the digits after the point (`1.58700` has
//! five), which `precision()`, the boundaries and equivalence (`~` rounds to the less precise
//! side) depend on, and adds without binary rounding (`0.1 + 0.2 = 0.3`). Its 28 digits are the
//! range FHIRPath gives decimals. The transcendental functions go through `f64` and back.

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

/// The default precision of `lowBoundary()`/`highBoundary()` of a decimal.
const DEFAULT_BOUNDARY_PRECISION: i64 = 8;

/// A JSON number as a decimal, its digits kept as serde_json writes them (the shortest form that
/// reads back the same). None beyond 28 digits.
pub fn from_json(number: &serde_json::Number) -> Option<Decimal> {
    let text = number.to_string();
    text.parse()
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// A decimal from text as FHIRPath writes it (`1.5`, `-0.25`, `3`).
pub fn parse(text: &str) -> Option<Decimal> {
    text.parse().ok()
}

/// The result of a floating-point function as a decimal (the shortest digits that read back the
/// same): None for NaN, infinities and values beyond the decimal range.
pub fn from_f64(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    format!("{value}")
        .parse()
        .ok()
        .or_else(|| Decimal::from_f64(value))
}

pub fn to_f64(value: Decimal) -> f64 {
    value.to_f64().unwrap_or(f64::NAN)
}

/// Digits after the point that carry meaning: trailing zeros do not (`4.040` has two).
fn significant_scale(value: Decimal) -> u32 {
    value.normalize().scale()
}

/// `~` on decimals: equal once both are rounded to the less precise one's digits.
pub fn equivalent(a: Decimal, b: Decimal) -> bool {
    let digits = significant_scale(a).min(significant_scale(b));
    let round =
        |v: Decimal| v.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
    round(a) == round(b)
}

/// `lowBoundary()`/`highBoundary()` of a decimal: the value half a unit of its last written digit
/// below or above, given to `precision` digits after the point (8 by default). A negative value's
/// boundary is the other boundary of its magnitude, negated (as the HL7 reference computes it,
/// which keeps the sign of a boundary that rounds to zero: `(-0.0034).lowBoundary(1)` is `-0.0`).
/// None for a precision outside 0..=28.
pub fn boundary(value: Decimal, precision: Option<i64>, high: bool) -> Option<Decimal> {
    let precision = precision.unwrap_or(DEFAULT_BOUNDARY_PRECISION);
    let precision = u32::try_from(precision)
        .ok()
        .filter(|p| *p <= Decimal::MAX_SCALE)?;
    if value.is_sign_negative() && !value.is_zero() {
        let mut magnitude = boundary(-value, Some(i64::from(precision)), !high)?;
        magnitude.set_sign_negative(true);
        return Some(magnitude);
    }
    // Half a unit of the last digit: none below a 28th decimal place (empty, as past the range).
    let half_unit = Decimal::try_new(5, value.scale() + 1).ok()?;
    let mut bound = if high {
        value
            .checked_add(half_unit)?
            .round_dp_with_strategy(precision, RoundingStrategy::MidpointAwayFromZero)
    } else {
        value.checked_sub(half_unit)?.trunc_with_scale(precision)
    };
    bound.rescale(precision);
    Some(bound)
}

/// `precision()` of a decimal: the digits after the point as written.
pub fn precision(value: Decimal) -> i64 {
    i64::from(value.scale())
}

/// `round(digits)`: half away from zero, as FHIRPath's "traditional" rounding.
pub fn round(value: Decimal, digits: u32) -> Decimal {
    value.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero)
}

/// Unary minus: zero negated is zero, not "-0".
pub fn negate(value: Decimal) -> Decimal {
    let mut negated = -value;
    if negated.is_zero() {
        negated.set_sign_positive(true);
    }
    negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        parse(text).unwrap()
    }

    fn bound(text: &str, precision: Option<i64>, high: bool) -> String {
        boundary(d(text), precision, high).map_or("{}".into(), |b| b.to_string())
    }

    #[test]
    fn boundaries_follow_the_written_digits() {
        assert_eq!(bound("1.587", None, false), "1.58650000");
        assert_eq!(bound("1.587", Some(2), false), "1.58");
        assert_eq!(bound("1.587", Some(2), true), "1.59");
        assert_eq!(bound("-1.587", Some(2), false), "-1.59");
        assert_eq!(bound("-1.587", Some(2), true), "-1.58");
        assert_eq!(bound("-0.0034", Some(1), false), "-0.0");
        assert_eq!(bound("120", Some(2), false), "119.50");
        assert_eq!(bound("1", Some(0), true), "2");
        assert_eq!(bound("1.587", Some(29), true), "{}");
        assert_eq!(bound("1.587", Some(-1), true), "{}");
        // Found by tests/fuzz.rs: a 28th decimal place has no half unit below it.
        assert_eq!(
            bound("-0.0034999999999999999999999999", Some(1), true),
            "{}"
        );
    }

    #[test]
    fn equivalence_rounds_to_the_less_precise_side() {
        assert!(equivalent(d("4"), d("4.040")));
        assert!(equivalent(d("1.23"), d("1.2")));
        assert!(!equivalent(d("1.26"), d("1.2")));
        assert_eq!(negate(d("0.0")).to_string(), "0.0");
        assert_eq!(precision(d("1.58700")), 5);
        assert_eq!(
            from_f64(0.1 + 0.2).map(|v| v.to_string()),
            Some("0.30000000000000004".into())
        );
    }
}
