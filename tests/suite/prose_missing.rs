//! Missing results in the prose (issue #14, follow-up): a null result (minijinja `none`) or a
//! non-finite number never becomes a number or a word in the manuscript. minijinja orders `none`
//! before every number, makes `none | int` 0 and prints `none` as "none": each of those is an error
//! here, naming the manuscript line. "NR" is printed only where the docs promise it: a survival
//! median or an interval limit that is not reached.

use std::path::Path;

use galley::diagnostics::Diagnostic;
use galley::document::template::{environment, render};
use galley::study::manifest::FormatSection;
use minijinja::Value;
use serde_json::json;

use crate::common::{galley, root, stderr};

/// Results with the nulls the analysis blocks produce: a log-rank p that is not estimable, a
/// Kaplan-Meier median and upper limit not reached, a bootstrap upper limit not reached, a `count`
/// level with no patient (pct null), a `describe` median of no observation, and a count of 0.
fn results() -> Value {
    Value::from_serialize(json!({
        "lr": {"p": null, "chisq": null},
        "ok": {"p": 0.01, "n": 25},
        "km": {
            "groups": [
                {"level": "A", "n": 10, "events": 8, "median": 30.5, "median_lower": 20.0, "median_upper": 41.0},
                {"level": "B", "n": 12, "events": 3, "median": null, "median_lower": 25.0, "median_upper": null}
            ],
            "by_level": {
                "A": {"median": 30.5, "median_lower": 20.0, "median_upper": 41.0,
                      "median_ci": {"lower": 20.0, "upper": 41.0}},
                "B": {"median": null, "median_lower": 25.0, "median_upper": null,
                      "median_ci": {"lower": 25.0, "upper": null}}
            }
        },
        "boot": {"estimate": 12.0, "lower": 3.0, "upper": null},
        "c": {"n": 0, "levels": {"A": {"n": 0, "pct": null}}},
        "d": {"overall": {"n": 0, "median": null, "min": null}},
        "c0": {"n": 0},
        "study": {"title": "T"}
    }))
}

fn render_src(src: &str) -> Result<String, Box<Diagnostic>> {
    let env = environment(&FormatSection::default());
    render(&env, "m.md", src, Path::new("m.md"), &results()).map_err(Box::new)
}

fn ok(src: &str) -> String {
    render_src(src).unwrap_or_else(|e| panic!("`{src}` failed: {e}"))
}

/// `src` fails with a message containing each fragment, located at `line` of m.md.
fn fails(src: &str, line: usize, fragments: &[&str]) {
    let err = match render_src(src) {
        Ok(out) => panic!("`{src}` printed `{out}` instead of failing"),
        Err(e) => e,
    };
    let location = err
        .location
        .as_ref()
        .unwrap_or_else(|| panic!("`{src}`: no location: {err}"));
    assert_eq!(location.file, Path::new("m.md"), "`{src}`: {err}");
    assert_eq!(location.line, Some(line), "`{src}`: {err}");
    for fragment in fragments {
        assert!(
            err.to_string().contains(fragment),
            "`{src}`: expected `{fragment}` in: {err}"
        );
    }
}

#[test]
fn comparisons_with_a_missing_result_are_errors_not_words() {
    // (a) `none < 0.05` is true in minijinja: "significant" for a p-value that does not exist.
    for src in [
        "{% if lr.p < 0.05 %}significant{% endif %}",
        "{% if lr.p <= 0.05 %}significant{% endif %}",
        "{% if lr.p > 0.05 %}not significant{% endif %}",
        "{% if lr.p >= 0.05 %}not significant{% endif %}",
        "{% if 0.05 > lr.p %}significant{% endif %}",
        "{% set p = lr.p %}{% if p < 0.05 %}significant{% endif %}",
        "{% if lr.p < 0.05 and ok.n > 10 %}significant{% endif %}",
        "{{ 'significant' if lr.p < 0.05 else 'not significant' }}",
        "{% macro sig(p) %}{% if p < 0.05 %}significant{% endif %}{% endmacro %}{{ sig(lr.p) }}",
        // A median not reached is not "< 100" (nor "> 100": follow-up may end before 100).
        "{% if km.by_level.B.median < 100 %}short{% endif %}",
        "{% if km.by_level.B.median > 100 %}long{% endif %}",
        "{% for g in km.groups %}{% if g.median < 100 %}short{% endif %}{% endfor %}",
        "{% if km.by_level['B']['median'] < 100 %}short{% endif %}",
    ] {
        fails(
            &format!("line one\n{src}\n"),
            2,
            &["missing value", "is not none"],
        );
    }
    // The same comparisons of present values still work.
    assert_eq!(
        ok("{% if ok.p < 0.05 %}significant{% endif %}"),
        "significant"
    );
    assert_eq!(ok("{% if 0.05 >= ok.p %}yes{% endif %}"), "yes");
    assert_eq!(
        ok(
            "{% for g in km.groups %}{% if g.median is not none and g.median < 100 %}{{ g.level }}{% endif %}{% endfor %}"
        ),
        "A"
    );
    assert_eq!(ok("{% if 'a' < 'b' %}yes{% endif %}"), "yes");
    // Number against text would be ordered by kind alone.
    fails(
        "{% if ok.n < 'x' %}yes{% endif %}",
        1,
        &["comparison `<` of a number with a string"],
    );
    // `a < b < c` keeps `b` between two comparisons that cannot be checked: refused.
    fails(
        "\n{% if 0 < ok.p < 1 %}yes{% endif %}",
        2,
        &["chained comparison"],
    );
}

#[test]
fn tests_and_sorting_filters_refuse_a_missing_value() {
    // (a) `selectattr("median", "lt", 100)` kept the group with a median not reached.
    for src in [
        "{{ km.groups | selectattr('median', 'lt', 100) | map(attribute='level') | join(', ') }}",
        "{{ km.groups | rejectattr('median', 'greaterthan', 100) | list | length }}",
        "{{ [lr.p, 3] | select('<', 1) | list | length }}",
        "{% if lr.p is lt(0.05) %}significant{% endif %}",
        "{% if lr.p is ge(0.05) %}not significant{% endif %}",
    ] {
        fails(src, 1, &["missing value"]);
    }
    // `[none, 3] | min` is none and `| max` ignores it; sort puts none first.
    for src in [
        "{{ [lr.p, 3] | min }}",
        "{{ [lr.p, 3] | max }}",
        "{{ [3, lr.p, 1] | sort | first }}",
        "{{ (km.groups | sort(attribute='median') | first).level }}",
        "{{ (km.groups | sort(attribute='median', reverse=true) | first).level }}",
        "{{ km.groups | map(attribute='median') | max }}",
        "{{ {'a': lr.p, 'b': 1} | dictsort(by='value') | first | first }}",
    ] {
        fails(src, 1, &["missing or non-finite value"]);
    }
    assert_eq!(ok("{{ [2, 3, 1] | sort | join(',') }}"), "1,2,3");
    assert_eq!(ok("{{ [2, 3, 1] | min }} {{ [2, 3, 1] | max }}"), "1 3");
    assert_eq!(
        ok("{{ (km.groups | sort(attribute='n', reverse=true) | first).level }}"),
        "B"
    );
    assert_eq!(
        ok("{{ km.groups | selectattr('n', 'gt', 10) | map(attribute='level') | join }}"),
        "B"
    );
    // Leaving the missing ones out explicitly is the way.
    assert_eq!(
        ok(
            "{{ km.groups | rejectattr('median', 'none') | selectattr('median', 'lt', 100) | map(attribute='level') | join }}"
        ),
        "A"
    );
}

#[test]
fn int_float_and_default_do_not_turn_a_missing_value_into_zero() {
    // (b)
    fails("{{ lr.p | int }}", 1, &["`int` of a missing value"]);
    fails(
        "{{ lr.p | float | num(2) }}",
        1,
        &["`float` of a missing value"],
    );
    fails(
        "{{ lr.p | default(0, true) | num(2) }}",
        1,
        &["`default` would print a missing value as `0`"],
    );
    fails(
        "{{ km.by_level.B.median | default(0, true) }}",
        1,
        &["`default`"],
    );
    fails("{{ (0 / c0.n) | int }}", 1, &["not finite"]);
    // A missing value in words is fine; present values convert as before.
    assert_eq!(
        ok("{{ lr.p | default('not estimable', true) }}"),
        "not estimable"
    );
    assert_eq!(ok("{{ ok.n | float | num(1) }} {{ '3' | int }}"), "25.0 3");
    assert_eq!(ok("{{ ok.p | default(0, true) }}"), "0.01");
}

#[test]
fn printing_or_joining_a_missing_value_is_an_error() {
    // (c) `{{ x }}` printed "none", `x ~ " days"` "none days".
    fails("\n\n{{ lr.p }}", 3, &["printing a missing value"]);
    fails(
        "{{ lr.p ~ ' days' }}",
        1,
        &["joining text with a missing value"],
    );
    fails(
        "{{ 'p ' ~ lr.p }}",
        1,
        &["joining text with a missing value"],
    );
    fails(
        "{{ km.by_level.B.median }}",
        1,
        &["printing a value not reached"],
    );
    fails(
        "{{ [lr.p, 1] | join(', ') }}",
        1,
        &["`join` of a list with a missing value"],
    );
    fails("{{ lr.p | string }}", 1, &["`string` of a missing value"]);
    assert_eq!(
        ok("{{ ok.n }} {{ ok.n ~ ' patients' }} {{ [1, 2] | join('-') }}"),
        "25 25 patients 1-2"
    );
}

#[test]
fn nr_only_for_a_median_or_limit_not_reached() {
    // (d) kept: a survival median and an interval limit not reached (docs/analysis-blocks.md).
    assert_eq!(ok("{{ km.by_level.B.median | num(1) }}"), "NR");
    assert_eq!(ok("{{ km.by_level['B']['median'] | num(1) }}"), "NR");
    assert_eq!(
        ok("{{ km.by_level.B.median_ci | ci(1) }}"),
        "25.0\u{2013}NR"
    );
    assert_eq!(
        ok("{{ span(km.by_level.B.median_lower, km.by_level.B.median_upper, 1) }}"),
        "25.0\u{2013}NR"
    );
    assert_eq!(
        ok(
            "{% for g in km.groups %}{{ g.level }} {{ g.median | num(1) }} ({{ span(g.median_lower, g.median_upper, 1) }}); {% endfor %}"
        ),
        "A 30.5 (20.0\u{2013}41.0); B NR (25.0\u{2013}NR); "
    );
    assert_eq!(
        ok("{{ boot | ci(1) }} {{ ci(boot.lower, boot.upper, 1) }}"),
        "3.0\u{2013}NR 3.0\u{2013}NR"
    );
    assert_eq!(
        ok("{% if km.by_level.B.median is none %}not reached{% endif %}"),
        "not reached"
    );
    assert_eq!(
        ok("{% if km.by_level.B.median == none %}not reached{% endif %}"),
        "not reached"
    );
    assert_eq!(
        ok("{% if km.by_level.B.median != none %}reached{% endif %}"),
        ""
    );
    // Every other null is an error: a proportion of an empty group, a `describe` median of no
    // observation, literal nones, a p-value, a count.
    fails(
        "{{ c.levels.A.pct | pct }}",
        1,
        &["`pct` of a missing value", "denominator may be 0"],
    );
    fails(
        "{{ d.overall.median | num(0) }}",
        1,
        &["`num` of a missing value"],
    );
    fails(
        "{{ d.overall.min | num(0) }}",
        1,
        &["`num` of a missing value"],
    );
    fails("{{ ci(none, none) }}", 1, &["`ci` of a missing value"]);
    fails(
        "{{ span(lr.p, lr.chisq) }}",
        1,
        &["`span` of a missing value"],
    );
    fails("{{ lr.chisq | num(2) }}", 1, &["`num` of a missing value"]);
    fails("{{ lr.p | pvalue }}", 1, &["`pvalue` of a missing value"]);
    fails("{{ lr.p | count }}", 1, &["`count` of a missing value"]);
    fails("{{ n_pct(c.n, lr.p) }}", 1, &["`n_pct` of a missing value"]);
    // "NR" is not a percentage or a p-value.
    fails(
        "{{ km.by_level.B.median | pct }}",
        1,
        &["value not reached"],
    );
    fails("{{ boot.upper | pvalue }}", 1, &["value not reached"]);
}

#[test]
fn non_finite_numbers_are_refused_by_every_number_filter() {
    // (f) `0 / 0` is NaN and `1 / 0` infinity in template arithmetic.
    for src in [
        "{{ (c0.n / c0.n) | pct }}",
        "{{ (c0.n / c0.n) | pvalue }}",
        "{{ (c0.n / c0.n) | pnum }}",
        "{{ (1 / c0.n) | num }}",
        "{{ (-1 / c0.n) | num(2) }}",
        "{{ (c0.n / c0.n) | count }}",
        "{{ ci(c0.n / c0.n, 1) }}",
        "{{ span(0, 1 / c0.n) }}",
        "{{ n_pct(1 / c0.n, 3) }}",
        "{{ n_pct(1, c0.n / c0.n) }}",
    ] {
        fails(&format!("\n{src}"), 2, &["not finite"]);
    }
    fails(
        "{{ 1 / c0.n }}",
        1,
        &["printing a number that is not finite"],
    );
    fails("{{ (c0.n / c0.n) ~ '%' }}", 1, &["not finite"]);
    fails(
        "{% if (c0.n / c0.n) < 0.05 %}significant{% endif %}",
        1,
        &["not finite"],
    );
    assert_eq!(ok("{{ (ok.n / 50) | pct }}"), "50%");
}

#[test]
fn booleans_are_numbers_in_num() {
    // (i)
    assert_eq!(ok("{{ true | num(0) }} {{ false | num(1) }}"), "1 0.0");
}

/// A real build: the error names the manuscript file and line, and nothing is written.
#[test]
fn a_build_comparing_a_missing_result_fails_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("nulls");
    let fixture = root().join("tests/fixtures/invalid/undefined-variable");
    std::fs::create_dir_all(study.join("manuscript")).unwrap();
    std::fs::create_dir_all(study.join("data")).unwrap();
    for file in ["study.toml", "references.bib", "data/patients.csv"] {
        std::fs::copy(fixture.join(file), study.join(file)).unwrap();
    }
    std::fs::write(study.join("manuscript/abstract.md"), "An abstract.\n").unwrap();
    let main = "# Results\n\n```analysis\nid = \"old\"\nkind = \"count\"\ndata = \"patients\"\n\
                where = \"age > 1000\"\nby = \"group\"\nmissing = \"exclude\"\n```\n\n\
                Of group A, {{ old.levels.A.n }} were very old{% if old.levels.A.pct < 0.5 %}, a minority{% endif %}.\n";
    std::fs::write(study.join("manuscript/main.md"), main).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let result = galley(
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert!(err.contains("nulls/manuscript/main.md:12:"), "{err}");
    assert!(err.contains("comparison `<` with a missing value"), "{err}");
    assert!(err.contains("old.levels.A.pct < 0.5"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "{err}");
}

/// The audit trail prints an expression as the prose does: "NR" for a median not reached (the
/// trail renders through the same checks, not minijinja's plain rendering).
#[test]
fn the_trail_prints_nr_as_the_prose_does() {
    let env = environment(&FormatSection::default());
    let context = results();
    let json = serde_json::to_value(&context).unwrap();
    let entries = galley::document::trail::template_entries(
        &env,
        "{{ km.by_level.B.median | num(1) }} {{ c.levels.A.pct | pct }}",
        "m.md",
        1,
        "prose",
        &context,
        &json,
    );
    assert_eq!(entries[0].text.as_deref(), Some("NR"));
    assert_eq!(entries[0].value, serde_json::Value::Null);
    assert_eq!(
        entries[1].text, None,
        "the prose refuses it, the trail prints nothing"
    );
}
