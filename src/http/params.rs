//! Schemas of the texts the server reads from headers, query strings and
//! body fields, each with the exact constraint the parser applies, so a
//! value the document allows is one the server takes. The handlers name
//! these in their attributes (`inline(PositiveIdText)`, `value_type = …`).

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// A positive 64-bit id as text, written the only way the server reads it:
/// decimal digits, no sign, no leading zero, no spaces, at most `i64::MAX`
/// (the pattern is exact; a test derives it from `i64::MAX`).
#[derive(utoipa::ToSchema)]
#[schema(
    pattern = r"^(?:[1-9][0-9]{0,17}|[1-8][0-9]{18}|9[0-1][0-9]{17}|92[0-1][0-9]{16}|922[0-2][0-9]{15}|9223[0-2][0-9]{14}|92233[0-6][0-9]{13}|922337[0-1][0-9]{12}|92233720[0-2][0-9]{10}|922337203[0-5][0-9]{9}|9223372036[0-7][0-9]{8}|92233720368[0-4][0-9]{7}|922337203685[0-3][0-9]{6}|9223372036854[0-6][0-9]{5}|92233720368547[0-6][0-9]{4}|922337203685477[0-4][0-9]{3}|9223372036854775[0-7][0-9]{2}|922337203685477580[0-6][0-9]{0}|9223372036854775807)$"
)]
pub struct PositiveIdText(pub String);

/// A page size: any positive integer (larger values are clamped).
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[1-9][0-9]*$")]
pub struct PageLimitText(pub String);

/// A hyphenated UUID, the form the server writes.
#[derive(utoipa::ToSchema)]
#[schema(format = Uuid, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
pub struct UuidText(pub String);

/// RFC 3339 with the `T` (or `t`) separator and an offset, as `time`'s parser
/// reads it; a date alone or a space instead of `T` is refused.
#[derive(utoipa::ToSchema)]
#[schema(
    format = DateTime,
    pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)]
pub struct DateTimeText(pub String);

/// An `Idempotency-Key`: visible ASCII and spaces, 1 to 255 characters; HTTP
/// drops spaces at either end, so a key that starts or ends with one cannot
/// arrive as written.
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[!-~](?:[ -~]{0,253}[!-~])?$")]
pub struct IdempotencyKeyText(pub String);

/// The characters Rust's `str::trim` removes (Unicode `White_Space`), spelled
/// out: `\s` means another set in ECMA-262 and in Python, the two dialects a
/// client of the document is likely to check patterns with.
const WS: &str = r"\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A text that, once trimmed, has 1 to `max` characters and no NUL.
pub fn trimmed_text_pattern(max: usize) -> String {
    format!(r"^[{WS}]*{}[{WS}]*$", visible_core(max))
}

/// At most `max` characters without NUL, starting and ending with a visible one.
fn visible_core(max: usize) -> String {
    // First and last visible characters, at most `max - 2` of anything between.
    let middle = match max.checked_sub(2) {
        Some(inner) => format!(r"(?:[^\u0000]{{0,{inner}}}[^{WS}\u0000])?"),
        None => String::new(),
    };
    format!(r"[^{WS}\u0000]{middle}")
}

/// `term` of the message search: 1 to 200 characters once trimmed.
pub fn search_term() -> ObjectBuilder {
    let max = crate::domain::message::MAX_TERM_CHARS;
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(Some(trimmed_text_pattern(max)))
}

/// A webhook's `description`: empty (none), or once trimmed up to the limit;
/// `null` is taken as absent.
pub fn webhook_description() -> ObjectBuilder {
    let max = crate::domain::webhook::MAX_DESCRIPTION_CHARS;
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(format!(
            "Free text, up to {max} characters once trimmed; on a change, an empty one removes it."
        )))
        .pattern(Some(format!(r"^[{WS}]*(?:{})?[{WS}]*$", visible_core(max))))
}

#[cfg(test)]
mod tests {
    use super::PositiveIdText;
    use utoipa::PartialSchema;

    /// A regex for the decimal numbers 1..=`max`, in canonical spelling.
    fn decimal_up_to(max: u64) -> String {
        let digits: Vec<u8> = max.to_string().into_bytes();
        let n = digits.len();
        let mut alternatives = Vec::new();
        if n > 1 {
            // Every shorter number.
            alternatives.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
        }
        // As long as `max`: equal up to position `i`, smaller there, anything after.
        for (i, &d) in digits.iter().enumerate() {
            let lowest = if i == 0 { b'1' } else { b'0' };
            if d > lowest {
                let prefix = String::from_utf8_lossy(&digits[..i]);
                let rest = n - i - 1;
                alternatives.push(format!("{prefix}[{}-{}][0-9]{{{rest}}}", lowest as char, (d - 1) as char));
            }
        }
        alternatives.push(String::from_utf8_lossy(&digits).into_owned());
        format!("^(?:{})$", alternatives.join("|"))
    }

    fn matches(pattern: &str, text: &str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": pattern});
        jsonschema::validator_for(&schema).map(|v| v.is_valid(&serde_json::json!(text))).unwrap_or(false)
    }

    #[test]
    fn the_decimal_pattern_takes_exactly_the_canonical_numbers_up_to_its_maximum() {
        for max in [1_u64, 9, 10, 20, 105, 200, 999] {
            let pattern = decimal_up_to(max);
            for n in 0..=1_100_u64 {
                assert_eq!(matches(&pattern, &n.to_string()), (1..=max).contains(&n), "{n} against {max}: {pattern}");
            }
            for text in ["", "01", "+1", " 1", "1 ", "1.0", "-1"] {
                assert!(!matches(&pattern, text), "{text:?} against {max}");
            }
        }
        let pattern = decimal_up_to(i64::MAX.unsigned_abs());
        for (text, ok) in [
            ("9223372036854775807", true),
            ("9223372036854775806", true),
            ("999999999999999999", true),
            ("9223372036854775808", false),
            ("9223372036854775810", false),
            ("9300000000000000000", false),
            ("10000000000000000000", false),
        ] {
            assert_eq!(matches(&pattern, text), ok, "{text}");
        }
    }

    #[test]
    fn the_id_schema_is_the_decimal_pattern_up_to_i64_max() {
        let schema = serde_json::to_value(PositiveIdText::schema()).unwrap_or_default();
        assert_eq!(schema["pattern"], decimal_up_to(i64::MAX.unsigned_abs()), "{schema}");
        assert_eq!(schema["type"], "string", "{schema}");
    }
}
