//! DURATION: a number of seconds, or a number with `s`, `m`, `h` or `d` (`15m`).

/// Parses a DURATION into seconds; the message says what is wrong.
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        Some(_) => (text, 's'),
        None => return Err("a duration cannot be empty".to_owned()),
    };
    let factor: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}: use s, m, h or d (e.g. 15m)"
            ));
        }
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "a duration is a number of seconds, or a number with s, m, h or d (e.g. 15m)"
                .to_owned(),
        );
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&s| s <= i64::MAX as u64)
        .ok_or_else(|| "the duration is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_units() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("90"), Ok(90));
        assert_eq!(parse("90s"), Ok(90));
        assert_eq!(parse("15m"), Ok(900));
        assert_eq!(parse("2h"), Ok(7200));
        assert_eq!(parse("1d"), Ok(86_400));
    }

    proptest::proptest! {
        #[test]
        fn a_number_with_a_unit_is_that_many_seconds(n in 0u32.., unit in 0usize..5) {
            let (suffix, factor) = [("", 1), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)][unit];
            proptest::prop_assert_eq!(parse(&format!("{n}{suffix}")), Ok(u64::from(n) * factor));
        }

        #[test]
        fn anything_else_is_refused_without_panicking(text in "\\PC{0,12}") {
            let well_formed = text
                .strip_suffix(['s', 'm', 'h', 'd'])
                .unwrap_or(&text)
                .bytes()
                .all(|b| b.is_ascii_digit())
                && text.bytes().next().is_some_and(|b| b.is_ascii_digit());
            if !well_formed {
                proptest::prop_assert!(parse(&text).is_err());
            }
        }
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "s",
            "-5",
            "+5",
            "1.5h",
            "5 m",
            "5w",
            "5M",
            "m5",
            "99999999999999999999",
            "106751991167301d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
