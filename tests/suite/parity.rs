//! The two renderers show the same manuscript: every section, float, footnote, citation, reported
//! value and appendix of the typed manuscript (its inventory) appears in the Typst source and in
//! the HTML page a build writes. Checked on the croome2016 study and on the tiny fixture (which has
//! footnotes, a pipe table and section references), with `--audit` (linked values, the trail
//! appendix).

use std::path::Path;

use galley::document::ir::{FloatKind, Inventory};
use galley::pipeline::{self, BuildOptions};

use crate::common::{galley, root, stderr};

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Build `study` with `--audit` into a temporary folder; the IR's inventory and both manuscripts.
fn build(study: &Path) -> (Inventory, String, String) {
    let out = tempfile::tempdir().unwrap();
    let r = galley(
        &[
            "-q",
            "build",
            study.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
            "--audit",
            "--format",
            "pdf,html",
        ],
        &root(),
    );
    assert!(r.status.success(), "{}", stderr(&r));
    let name = study.file_name().unwrap();
    let typ = std::fs::read_to_string(out.path().join(name).join("manuscript.typ")).unwrap();
    let html = std::fs::read_to_string(out.path().join(name).join("manuscript.html")).unwrap();
    let options = BuildOptions {
        audit: true,
        ..BuildOptions::default()
    };
    let prepared = pipeline::prepare_only(study, &options).unwrap();
    // What the build wrote is what the renderers write from this manuscript.
    assert_eq!(
        typ,
        galley::render::typst::render(&prepared.manuscript),
        "the Typst source differs from the renderer's"
    );
    let page = galley::render::html::render(&prepared.manuscript).unwrap();
    assert_eq!(
        html.as_bytes(),
        page.as_slice(),
        "the HTML differs from the renderer's"
    );
    (prepared.manuscript.inventory(), typ, html)
}

fn check_parity(inv: &Inventory, typ: &str, html: &str) {
    for id in &inv.sections {
        assert!(
            typ.contains(&format!("#label(\"{id}\")")),
            "section {id} not in the Typst"
        );
        assert!(
            html.contains(&format!(" id=\"{id}\"")),
            "section {id} not in the HTML"
        );
    }
    for kind in [FloatKind::Figure, FloatKind::Table] {
        let floats: Vec<_> = inv.floats.iter().filter(|f| f.0 == kind).collect();
        let typst_kind = match kind {
            FloatKind::Figure => "kind: image)",
            FloatKind::Table => "kind: table)",
        };
        assert_eq!(
            count(typ, typst_kind),
            floats.len(),
            "{kind:?}s in the Typst"
        );
        for (i, (_, number, label)) in floats.iter().enumerate() {
            assert_eq!(*number, i + 1, "{kind:?}s are numbered in order");
            let caption = format!(
                "<span class=\"caption-label\">{} {number}.</span>",
                kind.name()
            );
            assert_eq!(count(html, &caption), 1, "{caption} in the HTML");
            if let Some(label) = label {
                assert!(
                    typ.contains(&format!("#label(\"{label}\")")),
                    "{label} in the Typst"
                );
                assert!(
                    html.contains(&format!(" id=\"{label}\"")),
                    "{label} in the HTML"
                );
            }
        }
    }
    assert_eq!(
        count(typ, "#footnote["),
        inv.footnotes,
        "footnotes in the Typst"
    );
    assert_eq!(
        count(html, "class=\"footnote-ref\""),
        inv.footnotes,
        "footnotes in the HTML"
    );
    for n in 1..=inv.footnotes {
        assert!(
            html.contains(&format!("<li id=\"fn-{n}\">")),
            "note {n} in the HTML"
        );
    }
    assert_eq!(
        count(html, "<span class=\"citation\">"),
        inv.cite_groups,
        "citation groups in the HTML"
    );
    for key in &inv.citations {
        let cited = inv.citations.iter().filter(|k| *k == key).count();
        assert_eq!(
            count(typ, &format!("#cite(label(\"{key}\")")),
            cited,
            "@{key} in the Typst"
        );
        assert!(
            html.contains(&format!("id=\"ref-{key}\"")),
            "@{key} in the HTML's references"
        );
    }
    for (trail, linked) in &inv.values {
        let uses = inv.values.iter().filter(|(t, _)| t == trail).count();
        if *linked {
            assert_eq!(
                count(typ, &format!("#link(label(\"trail-{trail}\"))")),
                uses
            );
            assert_eq!(count(html, &format!("href=\"#trail-{trail}\"")), uses);
        }
    }
    for id in &inv.appendices {
        assert!(
            typ.contains(&format!("#label(\"{id}\")")),
            "appendix {id} in the Typst"
        );
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "appendix {id} in the HTML"
        );
    }
}

#[test]
fn croome2016_shows_the_same_manuscript_in_both_renderers() {
    let (inv, typ, html) = build(&root().join("study/croome2016"));
    assert!(inv.floats.len() >= 5, "{inv:?}");
    assert!(
        inv.values.len() >= 50 && inv.values.iter().all(|(_, l)| *l),
        "{:?}",
        inv.values
    );
    assert!(!inv.citations.is_empty());
    assert_eq!(inv.appendices, ["appendix-audit-trail"]);
    check_parity(&inv, &typ, &html);
}

#[test]
fn the_tiny_fixture_shows_the_same_manuscript_in_both_renderers() {
    let (inv, typ, html) = build(&root().join("tests/fixtures/tiny"));
    assert_eq!(inv.footnotes, 1, "{inv:?}");
    assert!(inv.sections.contains(&"sec-intro".to_string()));
    check_parity(&inv, &typ, &html);
}
