//! Decimals read from the text a tool or a registrar sent: a JSON number's
//! own digits, or a numeric string. Nothing passes through a binary float,
//! so `0.19999999999999998` is kept as those digits.
//!
//! A decimal holds at most 28 digits after the point and a mantissa below
//! 2^96 (28 to 29 significant digits). Text with more is rounded to the
//! nearest decimal, half away from zero, and [`ReadDecimal::written`] says
//! which side of it the text lay; the caller decides whether a rounded
//! number is refused or kept beside its text.

use std::cmp::Ordering;

use rust_decimal::Decimal;

/// The largest mantissa a decimal holds (2^96 - 1).
const MAX_MANTISSA: u128 = (1 << 96) - 1;
/// The most digits after the point a decimal holds.
const MAX_SCALE: i64 = 28;
/// The longest number text read: more than any tool's decimal sends, and
/// little enough to keep beside a rounded value in the log.
pub const MAX_NUMBER_CHARS: usize = 100;
/// Exponents beyond this magnitude round to zero or overflow alike; capping
/// them keeps the arithmetic below in range.
const EXPONENT_CAP: i64 = 1_000_000_000;

/// A decimal read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadDecimal {
    pub value: Decimal,
    /// How the number as written compares with `value`: `Equal` when the
    /// decimal holds it exactly, `Less` when it was rounded up to `value`,
    /// `Greater` when rounded down.
    pub written: Ordering,
}

impl ReadDecimal {
    pub fn is_exact(&self) -> bool {
        self.written == Ordering::Equal
    }

    /// Whether the number as written lies within `lo..=hi`. A rounded
    /// value that lands on a bound is out when the text lay beyond it
    /// (`-1e-40` is below 0 though it rounds to 0).
    pub fn within(&self, lo: Decimal, hi: Decimal) -> bool {
        self.value >= lo
            && self.value <= hi
            && !(self.value == lo && self.written == Ordering::Less)
            && !(self.value == hi && self.written == Ordering::Greater)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("is not a number")]
    NotANumber,
    #[error("is too large for a decimal (at most 79228162514264337593543950335)")]
    TooLarge,
    #[error("is longer than 100 characters")]
    TooLong,
}

/// Reads a decimal from its text: an optional sign, digits with an optional
/// point (`72.50000`, `.5`, `5.`), and an optional exponent (`1e-05`,
/// `1E+2`). Surrounding whitespace is ignored; anything else (`NaN`,
/// `1_000`, `0x10`, `1,5`) is not a number. Digits after the point are kept
/// as written (`72.50000` keeps its five places); `-0` reads as 0. Text of
/// more than [`MAX_NUMBER_CHARS`] is refused unread.
pub fn read_decimal(text: &str) -> Result<ReadDecimal, NumberError> {
    let s = text.trim().as_bytes();
    if s.len() > MAX_NUMBER_CHARS {
        return Err(NumberError::TooLong);
    }
    let (negative, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match s.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, &[][..]),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
        return Err(NumberError::NotANumber);
    }
    let exponent = match exponent {
        None => 0,
        Some(e) => {
            let (sign, e) = match e.first() {
                Some(b'-') => (-1, &e[1..]),
                Some(b'+') => (1, &e[1..]),
                _ => (1, e),
            };
            if e.is_empty() || !all_digits(e) {
                return Err(NumberError::NotANumber);
            }
            sign * e.iter().fold(0i64, |n, d| {
                (n * 10 + i64::from(d - b'0')).min(EXPONENT_CAP)
            })
        }
    };
    // The value is `digits × 10^shift`, digits without leading zeros.
    let mut digits: Vec<u8> = int.iter().chain(frac).map(|d| d - b'0').collect();
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading);
    let shift = exponent - frac.len() as i64;
    if digits.is_empty() {
        // Zero is exact whatever its exponent; keep the places written.
        let scale = (-shift).clamp(0, MAX_SCALE) as u32;
        return Ok(ReadDecimal {
            value: Decimal::new(0, scale),
            written: Ordering::Equal,
        });
    }
    let (mut value, rounded) = if shift >= 0 {
        (whole(&digits, shift)?, Ordering::Equal)
    } else {
        fraction(digits, -shift)?
    };
    // `rounded` compares the magnitude written with the value's; a minus
    // sign turns it around.
    let written = if negative { rounded.reverse() } else { rounded };
    if negative && !value.is_zero() {
        value.set_sign_negative(true);
    }
    Ok(ReadDecimal { value, written })
}

/// The mantissa the digits spell, when a decimal holds it.
fn mantissa(digits: &[u8]) -> Option<u128> {
    if digits.len() > 29 {
        return None;
    }
    let m = digits.iter().fold(0u128, |m, &d| m * 10 + u128::from(d));
    (m <= MAX_MANTISSA).then_some(m)
}

/// `digits × 10^shift`, a whole number: exact or too large.
fn whole(digits: &[u8], shift: i64) -> Result<Decimal, NumberError> {
    if digits.len() as i64 + shift > 29 {
        return Err(NumberError::TooLarge);
    }
    let mut m = mantissa(digits).ok_or(NumberError::TooLarge)?;
    for _ in 0..shift {
        m *= 10;
    }
    if m > MAX_MANTISSA {
        return Err(NumberError::TooLarge);
    }
    Decimal::try_from_i128_with_scale(m as i128, 0).map_err(|_| NumberError::TooLarge)
}

/// `digits × 10^-scale`, rounded to the nearest decimal when it holds too
/// many digits; with how the digits compare with the value kept.
fn fraction(mut digits: Vec<u8>, mut scale: i64) -> Result<(Decimal, Ordering), NumberError> {
    // Trailing zeros beyond what a decimal holds change nothing.
    while digits.last() == Some(&0)
        && scale > 0
        && (scale > MAX_SCALE || mantissa(&digits).is_none())
    {
        digits.pop();
        scale -= 1;
    }
    if scale <= MAX_SCALE {
        if let Some(m) = mantissa(&digits) {
            return Ok((decimal(m, scale)?, Ordering::Equal));
        }
    }
    // Round: keep as many places as fit, from 28 down. The digits dropped
    // end in a non-zero digit, so the value always differs from the text.
    let len = digits.len() as i64;
    let mut places = scale.min(MAX_SCALE);
    while places >= 0 {
        let keep = len - (scale - places);
        if keep <= 29 {
            let kept = if keep > 0 {
                mantissa(&digits[..keep as usize])
            } else {
                Some(0)
            };
            if let Some(kept) = kept {
                let first_dropped = if keep >= 0 { digits[keep as usize] } else { 0 };
                let up = first_dropped >= 5;
                let m = kept + u128::from(up);
                if m <= MAX_MANTISSA {
                    let written = if up {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                    return Ok((decimal(m, places)?, written));
                }
            }
        }
        places -= 1;
    }
    Err(NumberError::TooLarge)
}

fn decimal(m: u128, scale: i64) -> Result<Decimal, NumberError> {
    Decimal::try_from_i128_with_scale(m as i128, scale as u32).map_err(|_| NumberError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn read(text: &str) -> (String, Ordering) {
        let r = read_decimal(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (r.value.to_string(), r.written)
    }

    fn exact(text: &str) -> String {
        let (value, written) = read(text);
        assert_eq!(written, Ordering::Equal, "{text} read as {value}");
        value
    }

    #[test]
    fn float_texts_keep_every_digit() {
        assert_eq!(exact("0.19999999999999998"), "0.19999999999999998");
        assert_eq!(exact("1.0000000000000002e-05"), "0.000010000000000000002");
        assert_eq!(exact("1.6666666666666665"), "1.6666666666666665");
        assert_eq!(
            read("5e-324"),
            ("0.0000000000000000000000000000".into(), Ordering::Greater)
        );
    }

    #[test]
    fn places_written_are_kept_and_exponents_shift_them() {
        assert_eq!(exact("72.50000"), "72.50000");
        assert_eq!(exact("1E+2"), "100");
        assert_eq!(exact("1e2"), "100");
        assert_eq!(exact("1.50e1"), "15.0");
        assert_eq!(exact("100e-2"), "1.00");
        assert_eq!(exact(".5"), "0.5");
        assert_eq!(exact("5."), "5");
        assert_eq!(exact("+7"), "7");
        assert_eq!(exact(" 83.25\n"), "83.25");
        assert_eq!(exact("0.00"), "0.00");
    }

    #[test]
    fn negative_zero_reads_as_zero() {
        for text in ["-0", "-0.0", "-0e5", "-0.000e-99"] {
            let r = read_decimal(text).unwrap();
            assert!(r.value.is_zero() && r.value.is_sign_positive(), "{text}");
            assert!(r.is_exact());
        }
        assert_eq!(exact("-0.0"), "0.0");
    }

    #[test]
    fn the_largest_and_smallest_decimals_are_exact() {
        assert_eq!(
            exact("79228162514264337593543950335"),
            Decimal::MAX.to_string()
        );
        assert_eq!(
            exact("-79228162514264337593543950335"),
            Decimal::MIN.to_string()
        );
        assert_eq!(
            exact("0.0000000000000000000000000001"),
            "0.0000000000000000000000000001"
        );
        // Trailing zeros beyond 28 places change nothing.
        assert_eq!(
            exact("1.000000000000000000000000000000000000"),
            "1.0000000000000000000000000000"
        );
        assert_eq!(
            exact("79228162514264337593543950335.000"),
            Decimal::MAX.to_string()
        );
        assert_eq!(exact("0e999999999999999999999"), "0");
    }

    #[test]
    fn more_digits_than_a_decimal_holds_round_to_nearest_and_say_which_way() {
        assert_eq!(
            read("0.1234567890123456789012345678901234"),
            ("0.1234567890123456789012345679".into(), Ordering::Less)
        );
        assert_eq!(
            read("0.12345678901234567890123456784"),
            ("0.1234567890123456789012345678".into(), Ordering::Greater)
        );
        // Half rounds away from zero.
        assert_eq!(
            read("0.00000000000000000000000000005"),
            ("0.0000000000000000000000000001".into(), Ordering::Less)
        );
        assert_eq!(
            read("1e-40"),
            ("0.0000000000000000000000000000".into(), Ordering::Greater)
        );
        assert_eq!(
            read("-1e-40"),
            ("0.0000000000000000000000000000".into(), Ordering::Less)
        );
        assert_eq!(
            read("-0.1234567890123456789012345678901234"),
            ("-0.1234567890123456789012345679".into(), Ordering::Greater)
        );
        // Long mantissas keep as many places as fit beside the whole part.
        assert_eq!(
            read("999999999999.99999999999999999999"),
            ("1000000000000.0000000000000000".into(), Ordering::Less)
        );
        assert_eq!(
            read("79228162514264337593543950334.6"),
            ("79228162514264337593543950335".into(), Ordering::Less)
        );
        assert_eq!(
            read("1e-999999999999999"),
            ("0.0000000000000000000000000000".into(), Ordering::Greater)
        );
    }

    #[test]
    fn numbers_beyond_a_decimal_are_too_large() {
        for text in [
            "79228162514264337593543950336",
            "79228162514264337593543950335.5",
            "1e29",
            "1e309",
            "9e99999999999",
            "-1e40",
            "123456789012345678901234567890",
        ] {
            assert_eq!(read_decimal(text), Err(NumberError::TooLarge), "{text}");
        }
        assert_eq!(exact("1e28"), "10000000000000000000000000000");
        assert_eq!(
            exact("123456789012345678901234567890e-1"),
            "12345678901234567890123456789"
        );
    }

    #[test]
    fn text_that_is_not_a_number_is_refused() {
        for text in [
            "", " ", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "NaN", "inf", "Infinity", "1_000",
            "0x10", "1,5", "12a", "--1", "+-1", "1 000", "１２", "1e5.5", "\u{0}1",
        ] {
            assert_eq!(read_decimal(text), Err(NumberError::NotANumber), "{text:?}");
        }
    }

    #[test]
    fn text_longer_than_a_hundred_characters_is_refused_unread() {
        let long = format!("0.{}", "1".repeat(98));
        assert!(read_decimal(&long).is_ok());
        assert_eq!(read_decimal(&format!("{long}1")), Err(NumberError::TooLong));
        assert_eq!(
            read_decimal(&"9".repeat(1_000_000)),
            Err(NumberError::TooLong)
        );
    }

    #[test]
    fn bounds_are_judged_on_the_number_as_written() {
        let zero = Decimal::ZERO;
        let top = Decimal::from(1_000_000_000_000i64);
        assert!(read_decimal("0").unwrap().within(zero, top));
        assert!(read_decimal("1e-40").unwrap().within(zero, top));
        assert!(!read_decimal("-1e-40").unwrap().within(zero, top));
        assert!(read_decimal("999999999999.99999999999999999999")
            .unwrap()
            .within(zero, top));
        assert!(!read_decimal("1000000000000.00000000000000000001")
            .unwrap()
            .within(zero, top));
        assert!(read_decimal("1000000000000").unwrap().within(zero, top));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Every decimal's own text reads back as itself, places and all.
            #[test]
            fn a_decimals_text_reads_back_exactly(m in any::<i64>(), scale in 0u32..=28) {
                let d = Decimal::new(m, scale);
                let r = read_decimal(&d.to_string()).unwrap();
                prop_assert!(r.is_exact());
                prop_assert_eq!(r.value.to_string(), d.to_string());
            }

            /// A float's shortest text and its exponent form read as the
            /// same decimal (when a decimal holds it), and as what
            /// rust_decimal reads from the plain text.
            #[test]
            fn a_floats_texts_agree(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
                let plain = f.to_string();
                let sci = format!("{f:e}");
                if plain.len() > MAX_NUMBER_CHARS {
                    prop_assert_eq!(read_decimal(&plain), Err(NumberError::TooLong));
                    return Ok(());
                }
                match (read_decimal(&plain), read_decimal(&sci)) {
                    (Ok(a), Ok(b)) => {
                        prop_assert_eq!(a.value, b.value);
                        prop_assert_eq!(a.written, b.written);
                        if a.is_exact() {
                            prop_assert_eq!(Some(a.value), Decimal::from_str(&plain).ok());
                        }
                    }
                    (Err(a), Err(b)) => prop_assert_eq!(a, b),
                    (a, b) => prop_assert!(false, "{} read as {:?}, {} as {:?}", plain, a, sci, b),
                }
            }

            /// A rounded number is within one unit of the last place kept,
            /// on the side `written` says.
            #[test]
            fn rounding_is_to_the_nearest(int in 0u64..1_000_000, frac in "[0-9]{20,40}") {
                let text = format!("{int}.{frac}");
                let r = read_decimal(&text).unwrap();
                let kept = r.value.to_string();
                let (_, kept_frac) = kept.split_once('.').unwrap_or((&kept, ""));
                prop_assert!(kept_frac.len() <= 28);
                if r.is_exact() {
                    prop_assert_eq!(kept.trim_end_matches('0'), text.trim_end_matches('0').trim_end_matches('.'));
                } else {
                    // Truncating the text to the places kept and rounding by
                    // the next digit gives the value.
                    let places = kept_frac.len();
                    let truncated = Decimal::from_str(&format!("{int}.{}", &frac[..places])).unwrap();
                    let up = frac.as_bytes()[places] >= b'5';
                    let unit = Decimal::new(1, places as u32);
                    let expect = if up { truncated + unit } else { truncated };
                    prop_assert_eq!(r.value, expect);
                    prop_assert_eq!(r.written, if up { Ordering::Less } else { Ordering::Greater });
                }
            }
        }
    }
}
