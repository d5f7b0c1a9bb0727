//! The machine-readable records a build writes (results, trail, provenance): their formats, versions
//! and comparison, and the names galley gives the files of an output folder. Every stage may name
//! these; they name nothing of the stages.

pub mod diff;
pub mod format;

/// The marker galley writes into every report folder it makes: the study it belongs to and every
/// file galley put there. Only a folder holding exactly those files (or an earlier galley's report,
/// see `output::galley_wrote`) is replaced by a build: anything else in it might be someone's work.
pub const MARKER: &str = ".galley-output.json";

/// The build accelerators kept beside the outputs (block cache, typesetting record).
pub const CACHE_DIR: &str = ".cache";

/// A CSV cell that a spreadsheet opening the file will show as text, never evaluate. Category
/// levels, labels and captions come from the study folder, and `=HYPERLINK(...)`, `@SUM(...)`,
/// `+cmd|...` in a cell run as a formula in Excel, LibreOffice or Sheets ("CSV injection"). As
/// OWASP advises, a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return (or their
/// full-width forms, which some spreadsheets also read as formulas) gets a leading `'`. Numbers
/// stay numbers: `-1.5` and `+2e-3` are written as they are. Every CSV galley writes goes through
/// here (docs/security.md, "CSV files galley writes").
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠']);
    if risky && !is_plain_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// `-12`, `+0.5`, `-1.5e-3`, `-.5`: a decimal number and nothing else (`-1+2` is not one).
fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}
