//! Number formatting: one set of rules for prose and tables, configured by the manifest's `[format]`.
//!
//! Percentages without decimals by default; p-values in journal style (`< 0.001`, else two significant
//! digits, `> 0.99` at the top); "NR" for estimates not reached; one range separator everywhere.

use crate::study::manifest::FormatSection;

/// Most decimals any number prints with. Rust's formatter panics on a precision above 65535
/// (`{{ x | num(70000) }}`, `percent_digits = 70000` in study.toml: found by fuzzing the
/// templates); more than 20 decimals of a double are noise anyway.
pub const MAX_DECIMALS: usize = 20;

/// Fixed decimals (at most [`MAX_DECIMALS`]), with a true minus sign and no negative zero (`-0.0`
/// prints as `0.0`).
pub fn fixed(x: f64, digits: usize) -> String {
    let s = format!("{:.*}", digits.min(MAX_DECIMALS), x);
    let zero = s
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.');
    if zero {
        s.trim_start_matches('-').to_string()
    } else {
        s.replacen('-', "\u{2212}", 1)
    }
}

/// An integer count with thousands separators (`1,234`).
pub fn count(n: f64) -> String {
    let negative = n < 0.0;
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if negative {
        format!("\u{2212}{out}")
    } else {
        out
    }
}

/// A proportion (0-1) as a percentage: `0.6` -> `60%`.
pub fn percent(p: f64, digits: usize) -> String {
    format!("{}%", fixed(p * 100.0, digits))
}

/// `15 (60%)`.
pub fn n_percent(n: f64, total: f64, digits: usize) -> String {
    if total > 0.0 {
        format!("{} ({})", count(n), percent(n / total, digits))
    } else {
        format!("{} (\u{2013})", count(n))
    }
}

/// The number of a p-value in journal style, without `p`: `< 0.001`, `0.42`, `0.031`, `> 0.99`.
pub fn p_number(p: f64, rules: &FormatSection) -> String {
    if p < rules.p_threshold {
        return format!("< {}", plain_decimal(rules.p_threshold));
    }
    if p > 0.99 {
        return "> 0.99".to_string();
    }
    let digits = rules.p_digits.clamp(1, MAX_DECIMALS) as i32;
    // Two significant digits, but never fewer decimals than the threshold shows (0.0012 -> 0.001 would
    // read as the threshold): decimals = significant digits below the first non-zero digit.
    // A p of 0 (with `p_threshold = 0`) has magnitude -inf (i32::MIN): saturate, and stay within
    // the decimals a double can show (subnormals reach 1e-324); found by fuzzing the templates.
    let magnitude = p.log10().floor() as i32; // 0.031 -> -2
    let decimals = (digits - 1).saturating_sub(magnitude).clamp(digits, 330) as usize;
    let s = format!("{:.*}", decimals, p);
    // Rounding can reach the next decade (0.0995 -> 0.10); keep the significant digits then.
    trim_to_significant(&s, digits as usize)
}

fn trim_to_significant(s: &str, digits: usize) -> String {
    let Some(dot) = s.find('.') else {
        return s.to_string();
    };
    let first = s
        .char_indices()
        .find(|&(_, c)| c.is_ascii_digit() && c != '0')
        .map(|(i, _)| i);
    match first {
        Some(i) if i > dot => {
            let end = (i + digits).min(s.len());
            s[..end].to_string()
        }
        Some(_) => {
            // Leading digit before the point (p rounded to 1.0): keep as printed.
            s.to_string()
        }
        None => s.to_string(),
    }
}

fn plain_decimal(x: f64) -> String {
    let s = format!("{x}");
    if s.contains('e') {
        format!("{x:.10}").trim_end_matches('0').to_string()
    } else {
        s
    }
}

/// `p = 0.03` or `p < 0.001`.
pub fn p_value(p: f64, rules: &FormatSection) -> String {
    let number = p_number(p, rules);
    if number.starts_with('<') || number.starts_with('>') {
        format!("p {number}")
    } else {
        format!("p = {number}")
    }
}

/// `1.27–1.99` (limits with the configured separator; "NR" for a limit not reached).
pub fn interval(
    lower: Option<f64>,
    upper: Option<f64>,
    digits: usize,
    rules: &FormatSection,
) -> String {
    let show = |x: Option<f64>| x.map_or_else(|| rules.not_reached.clone(), |v| fixed(v, digits));
    format!("{}{}{}", show(lower), rules.range_separator, show(upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_follow_journal_style() {
        let r = FormatSection::default();
        assert_eq!(p_value(0.0312, &r), "p = 0.031");
        assert_eq!(p_value(0.42, &r), "p = 0.42");
        assert_eq!(p_value(0.4249, &r), "p = 0.42");
        assert_eq!(p_value(0.03, &r), "p = 0.030");
        assert_eq!(p_value(0.0009, &r), "p < 0.001");
        assert_eq!(p_value(0.001, &r), "p = 0.0010");
        assert_eq!(p_value(0.995, &r), "p > 0.99");
        assert_eq!(p_value(0.0996, &r), "p = 0.10");
        assert_eq!(p_value(0.5, &r), "p = 0.50");
    }

    #[test]
    fn fixed_counts_and_percents() {
        assert_eq!(fixed(54.04, 1), "54.0");
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!(fixed(-1.25, 1), "\u{2212}1.2");
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(n_percent(15.0, 25.0, 0), "15 (60%)");
        assert_eq!(percent(0.125, 1), "12.5%");
        let r = FormatSection::default();
        assert_eq!(interval(Some(1.27), None, 2, &r), "1.27\u{2013}NR");
    }
}
