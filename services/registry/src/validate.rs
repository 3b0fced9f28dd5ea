//! What a well-formed symbol looks like. Each check returns the description
//! a caller sees in the field violation.

use wizdata::r#type::v1::AssetClass;

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_QUERY_LEN: usize = 100;

/// Upper-cases and checks a ticker: letters and digits, optionally joined by
/// single '.' or '-' (share classes: "BRK.B") and at most one '/' (pairs:
/// "BTC/USDT"), starting and ending with a letter or digit.
pub fn ticker(raw: &str) -> Result<String, String> {
    let ticker = raw.trim().to_ascii_uppercase();
    if ticker.is_empty() {
        return Err("must not be empty".into());
    }
    wizdata_common::symbols::check_symbol_length(&ticker)?;
    let is_separator = |c: char| matches!(c, '.' | '-' | '/');
    if let Some(bad) = ticker.chars().find(|c| !c.is_ascii_alphanumeric() && !is_separator(*c)) {
        return Err(format!("{bad:?} is not allowed; use letters, digits, '.', '-' and '/'"));
    }
    let starts_and_ends_alphanumeric = ticker.starts_with(|c: char| c.is_ascii_alphanumeric())
        && ticker.ends_with(|c: char| c.is_ascii_alphanumeric());
    let adjacent_separators =
        ticker.as_bytes().windows(2).any(|w| is_separator(w[0] as char) && is_separator(w[1] as char));
    if !starts_and_ends_alphanumeric || adjacent_separators {
        return Err("separators must sit between letters or digits".into());
    }
    if ticker.matches('/').count() > 1 {
        return Err("may contain at most one '/'".into());
    }
    Ok(ticker)
}

pub fn name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// An ISO 4217 code or a crypto asset code: 3 to 10 letters or digits.
pub fn currency(raw: &str) -> Result<String, String> {
    let currency = raw.trim().to_ascii_uppercase();
    if !(3..=10).contains(&currency.len()) || !currency.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("must be 3 to 10 letters or digits, e.g. \"ZAR\" or \"USDT\"".into());
    }
    Ok(currency)
}

/// A defined asset class other than UNSPECIFIED.
pub fn asset_class(raw: i32) -> Result<AssetClass, String> {
    match AssetClass::try_from(raw) {
        Ok(AssetClass::Unspecified) => Err("must be specified".into()),
        Ok(class) => Ok(class),
        Err(_) => Err(format!("{raw} is not a known asset class")),
    }
}

/// A filter's asset class: UNSPECIFIED means any.
pub fn asset_class_filter(raw: i32) -> Result<Option<AssetClass>, String> {
    match AssetClass::try_from(raw) {
        Ok(AssetClass::Unspecified) => Ok(None),
        Ok(class) => Ok(Some(class)),
        Err(_) => Err(format!("{raw} is not a known asset class")),
    }
}

pub fn exchange_code(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.is_empty() {
        return Err("must not be empty".into());
    }
    if code.len() > 16 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("must be up to 16 letters or digits, e.g. \"JSE\"".into());
    }
    Ok(code)
}

pub fn query(raw: &str) -> Result<String, String> {
    let query = raw.trim();
    if query.chars().count() > MAX_QUERY_LEN {
        return Err(format!("must be at most {MAX_QUERY_LEN} characters"));
    }
    Ok(query.to_lowercase())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a client sends, validation answers without panicking, and
        /// what it accepts is canonical: validating it again changes nothing.
        #[test]
        fn ticker_validation_is_total_and_canonical(raw in any::<String>()) {
            if let Ok(ticker) = ticker(&raw) {
                prop_assert_eq!(super::ticker(&ticker), Ok(ticker.clone()));
                prop_assert!(ticker.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || ".-/".contains(c)));
                prop_assert!((1..=wizdata_common::symbols::MAX_SYMBOL_CHARS).contains(&ticker.len()));
            }
        }

        #[test]
        fn ticker_like_strings_are_accepted(base in "[A-Z0-9]{1,8}", quote in proptest::option::of("[A-Z0-9]{2,6}")) {
            let raw = match &quote { Some(quote) => format!("{base}/{quote}"), None => base.clone() };
            prop_assert_eq!(ticker(&raw.to_lowercase()), Ok(raw));
        }
    }

    #[test]
    fn accepts_real_tickers_and_normalises_case() {
        for good in ["NPN", "BRK.B", "BTC/USDT", "USD/ZAR", "RDS-A", "7203"] {
            assert_eq!(ticker(good).as_deref(), Ok(good), "{good}");
        }
        assert_eq!(ticker(" npn ").as_deref(), Ok("NPN"));
    }

    #[test]
    fn rejects_malformed_tickers() {
        for bad in ["", "   ", "NP N", "NPN!", "/USDT", "BTC/", "A//B", "A.-B", "A/B/C", "ÄPPL", &"X".repeat(25)] {
            assert!(ticker(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn asset_class_rejects_unspecified_and_unknown_values() {
        assert_eq!(asset_class(1), Ok(AssetClass::Equity));
        assert!(asset_class(0).is_err());
        assert!(asset_class(99).is_err());
        assert_eq!(asset_class_filter(0), Ok(None));
        assert!(asset_class_filter(-3).is_err());
    }

    #[test]
    fn currency_and_name_bounds() {
        assert_eq!(currency("usdt").as_deref(), Ok("USDT"));
        assert!(currency("R").is_err());
        assert!(currency("US$").is_err());
        assert!(name("").is_err());
        assert!(name("a\u{0}b").is_err());
        assert!(name(&"n".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
