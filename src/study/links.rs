//! The link policy: which link targets galley writes into a PDF or an HTML page, for every link in
//! every output (prose links, autolinks and reference-style links, bibliography `url` and `doi`
//! fields, the reference list rendered by hayagriva). A study folder may come from anyone: a link
//! it writes must not run anything when a reader clicks it (`javascript:`, `vbscript:`, `data:`
//! pages), open a local file (`file:`), or depend on where the output is opened (a relative path or
//! a protocol-relative `//host` resolves against wherever the PDF or page happens to be).
//!
//! It is a list of what is allowed, never of what is refused (the variants of a refused scheme are
//! endless: upper case, entities, controls a browser drops): `http://` and `https://` with a host,
//! `mailto:` with an address, `doi:10.…` (written as its `https://doi.org/` address), and `#label`
//! fragments, which the caller keeps only when the label is one of the manuscript's (a heading's
//! `{#sec-x}`, a figure's or a table's label). Anything else is shown as its text, unlinked, with a
//! warning where it was written.

/// What a link target is, once allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An external address, as it is to be written (`doi:` becomes `https://doi.org/…`).
    External(String),
    /// `#label`: a place in the manuscript (the caller checks the label exists).
    Fragment(String),
}

/// Classify a link target; `Err` says why it is refused (the rest of "the link `x` is refused: …").
pub fn check(dest: &str) -> Result<Target, String> {
    // Nothing is trimmed or decoded: browsers and PDF viewers drop leading controls and spaces and
    // tabs or newlines inside (`java\tscript:`), so a target holding any is refused as written.
    if dest.is_empty() {
        return Err("it is empty".into());
    }
    if dest.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("it holds spaces or control characters".into());
    }
    if let Some(label) = dest.strip_prefix('#') {
        return if label.is_empty() {
            Err("`#` names no label".into())
        } else {
            Ok(Target::Fragment(label.to_string()))
        };
    }
    let Some((scheme, rest)) = dest.split_once(':') else {
        return Err(
            "it is a relative address (it would depend on where the output is opened)".into(),
        );
    };
    // A scheme is ASCII letters (and digits, `+ - .`) before the first `:`; `a/b:c` has none.
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(
            "it is a relative address (it would depend on where the output is opened)".into(),
        );
    }
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => match rest.strip_prefix("//") {
            Some(host) if !host.is_empty() && !host.starts_with(['/', '?', '#']) => {
                Ok(Target::External(dest.to_string()))
            }
            _ => Err("an http(s) address needs `//` and a host".into()),
        },
        "mailto" if !rest.is_empty() => Ok(Target::External(dest.to_string())),
        "doi" => doi(rest)
            .map(|d| Target::External(format!("https://doi.org/{d}")))
            .ok_or_else(|| "a DOI starts with `10.`".into()),
        _ => Err(format!(
            "`{scheme}:` links are not kept (only http, https, mailto, doi and #labels are)"
        )),
    }
}

/// A DOI as written in a bibliography or a `doi:` link: `10.` followed by a prefix and a suffix,
/// with nothing that needs escaping in a URL path's first character.
pub fn doi(text: &str) -> Option<&str> {
    let t = text.trim();
    (t.starts_with("10.")
        && t.contains('/')
        && !t.chars().any(|c| c.is_control() || c.is_whitespace()))
    .then_some(t)
}

/// A prose link as pulldown-cmark reports it: an email autolink (`<a@b.c>`) is a `mailto:`.
pub fn prose(link_type: pulldown_cmark::LinkType, dest: &str) -> Result<Target, String> {
    match link_type {
        pulldown_cmark::LinkType::Email => check(&format!("mailto:{dest}")),
        _ => check(dest),
    }
}

/// A refused target as a message shows it: controls made visible, at most 80 characters.
pub fn shown(dest: &str) -> String {
    let mut out: String = dest.chars().take(80).flat_map(char::escape_debug).collect();
    if dest.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// An external address only (the bibliography has no labels to point at): the address to link to.
pub fn external(dest: &str) -> Result<String, String> {
    match check(dest)? {
        Target::External(url) => Ok(url),
        Target::Fragment(_) => Err("a `#label` is not an address".into()),
    }
}

/// The Typst show rule that applies the same policy to every link of the PDF, whatever made it
/// (hayagriva's reference list, a study's template): an address that is not http(s) or mailto
/// keeps its text, unlinked. Links inside the document (labels, locations) are not strings.
pub const TYPST_SHOW_RULE: &str = "#show link: it => if type(it.dest) != str or lower(it.dest).starts-with(regex(\"^(https?://[^/?#\\\\s]|mailto:[^\\\\s])\")) { it } else { it.body }\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_only_the_listed_schemes() {
        for ok in [
            "https://example.org/a?b#c",
            "HTTP://EXAMPLE.ORG",
            "mailto:a@b.c",
            "MailTo:a@b.c",
        ] {
            assert_eq!(check(ok), Ok(Target::External(ok.into())), "{ok}");
        }
        assert_eq!(
            check("doi:10.1000/x"),
            Ok(Target::External("https://doi.org/10.1000/x".into()))
        );
        assert_eq!(check("#sec-x"), Ok(Target::Fragment("sec-x".into())));
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "\u{1}javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "//evil.example/x",
            "tables/km.csv",
            "../x",
            "http:evil",
            "https:///x",
            "doi:javascript:alert(1)",
            "#",
            "",
            "mailto:",
            "&#106;avascript:alert(1)",
        ] {
            assert!(check(bad).is_err(), "{bad:?} was allowed");
        }
    }
}
