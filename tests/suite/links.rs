//! Issue 15, the bibliography and the links: one link policy (http, https, mailto, doi, #labels)
//! for every link of every output, the bibliography parsed only as far as it is cited, and its
//! problems (not UTF-8, an unknown style) reported by `check`, at the file, line and column.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{galley, root, stderr};

/// The tiny fixture in a temporary folder, as `s`.
fn tiny() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("s");
    copy_dir(&root().join("tests/fixtures/tiny"), &study);
    (dir, study)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut old = std::fs::read(path).unwrap();
    old.extend_from_slice(text.as_bytes());
    std::fs::write(path, old).unwrap();
}

fn set_manifest(study: &Path, from: &str, to: &str) {
    let path = study.join("study.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Build `study` into `out` (pdf and html); it must succeed. Returns stderr.
fn build(study: &Path, out: &Path) -> String {
    let result = galley(
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "pdf,html",
        ],
        &root(),
    );
    let err = stderr(&result);
    assert!(result.status.success(), "{err}");
    err
}

/// Every link target in an output: `href="..."` in the HTML, `/URI(...)` in the PDF.
fn targets(bytes: &[u8], open: &str, close: u8) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices(open)
        .map(|(at, _)| {
            let rest = &text.as_bytes()[at + open.len()..];
            let end = rest.iter().position(|&b| b == close).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        })
        .collect()
}

fn allowed(target: &str) -> bool {
    let t = target.to_ascii_lowercase();
    (t.starts_with("https://") || t.starts_with("http://") || t.starts_with("mailto:"))
        || (t.starts_with('#') && t.len() > 1)
}

const HOSTILE_BIB: &str = r#"
@string{js = "javascript:alert(1)"}
@misc{evil1, title = {Evil one}, url = {javascript:alert(document.domain)}}
@misc{evil2, title = {Evil two}, url = js, doi = {javascript:alert(2)}}
@misc{evil3, title = {Evil three}, url = { JaVaScRiPt:alert(3)}}
@misc{evil4, title = {Evil four}, url = {data:text/html,<script>alert(4)</script>}}
@misc{evil5, title = {Evil five}, url = {file:///etc/passwd}, doi = {https://doi.org/10.1/x}}
@misc{evil6, title = {Evil six}, url = {vbscript:msgbox(6)}}
@misc{evil7, title = {Evil seven}, crossref = {evil1}}
@misc{good, title = {Good}, url = {https://example.org/good}, doi = {10.1000/good}}
"#;

const HOSTILE_PROSE: &str = "
Links: [a](javascript:alert(1)) [b](JaVaScRiPt:alert(1)) [c](<java\tscript:alert(1)>)
[d](&#106;avascript:alert(1)) [e](vbscript:msgbox) [f](data:text/html,x) [g](file:///etc/passwd)
[h](//evil.example) <javascript:alert(9)> [i](%20javascript:alert(1)) [ref][r1] [j](tables/x.csv)
[nosec](#nowhere) [ok](https://example.org/ok) [sec](#sec-intro) <a@b.org> [k](doi:10.1000/k)

Cited [@evil1; @evil2; @evil3; @evil4; @evil5; @evil6; @evil7; @good].

[r1]: javascript:alert(7)
";

/// Row 3: a `javascript:` url in references.bib used to become `<a href="javascript:...">` in the
/// HTML and a URI action in the PDF; prose `javascript:`, `data:` and `file:` links were kept in
/// the PDF. Now no output links anything the policy refuses, in any spelling, and each refusal is
/// a warning at its file and line; allowed links (and `#sec-intro`) still work.
#[test]
fn every_link_of_every_output_follows_one_policy() {
    let (dir, study) = tiny();
    append(&study.join("references.bib"), HOSTILE_BIB);
    append(&study.join("manuscript/main.md"), HOSTILE_PROSE);
    let out = dir.path().join("out");
    let err = build(&study, &out);
    let report = out.join("s");

    let html = std::fs::read(report.join("manuscript.html")).unwrap();
    let hrefs = targets(&html, "href=\"", b'"');
    let bad: Vec<&String> = hrefs.iter().filter(|t| !allowed(t)).collect();
    assert!(bad.is_empty(), "refused links in the HTML: {bad:?}");
    for kept in [
        "https://example.org/ok",
        "https://doi.org/10.1000/good",
        "https://doi.org/10.1000/k",
        "mailto:a@b.org",
        "#sec-intro",
    ] {
        assert!(hrefs.iter().any(|h| h == kept), "{kept} lost: {hrefs:?}");
    }
    let lower = String::from_utf8_lossy(&html).to_ascii_lowercase();
    assert!(!lower.contains("href=\"javascript") && !lower.contains("href=\"data:"));

    let pdf = std::fs::read(report.join("manuscript.pdf")).unwrap();
    let uris = targets(&pdf, "/URI(", b')');
    assert!(!uris.is_empty(), "no link found in the PDF");
    let bad: Vec<&String> = uris.iter().filter(|t| !allowed(t)).collect();
    assert!(bad.is_empty(), "refused links in the PDF: {bad:?}");
    assert!(
        uris.iter().any(|u| u == "https://doi.org/10.1000/good"),
        "{uris:?}"
    );
    let pdf_text = String::from_utf8_lossy(&pdf).to_ascii_lowercase();
    for scheme in ["javascript:", "vbscript:", "data:text", "file:///"] {
        assert!(!pdf_text.contains(scheme), "{scheme} in the PDF");
    }

    // The subset handed to Typst keeps no refused link either.
    let bib = std::fs::read_to_string(report.join("references.bib")).unwrap();
    let entries: String = bib.lines().filter(|l| !l.starts_with("@string")).collect();
    assert!(
        !entries.to_ascii_lowercase().contains("javascript"),
        "{bib}"
    );

    // Each refusal is a located warning.
    for located in [
        "references.bib:13:34", // evil1's url
        "references.bib:14:44", // evil2's doi
        "references.bib:17:63", // evil5's doi holding an address
        "references.bib:18:34", // evil6's vbscript:
        "main.md:55:",
        "main.md:56:",
        "main.md:57:",
        "main.md:58:",
        "`#nowhere` is not the label",
        "`vbscript:` links are not kept",
    ] {
        assert!(err.contains(located), "no warning `{located}` in:\n{err}");
    }
}

/// Row 3 in Hayagriva YAML, whose `url` may also sit in a `parent`.
#[test]
fn hayagriva_links_follow_the_policy_too() {
    let (dir, study) = tiny();
    std::fs::write(
        study.join("references.yml"),
        "kaplan1958:\n  type: article\n  title: KM\n  url: JAVASCRIPT:alert(1)\n  parent:\n    type: periodical\n    title: J\n    url: data:text/html,x\nok:\n  type: web\n  title: Fine\n  url: https://example.org/fine\n",
    )
    .unwrap();
    set_manifest(&study, "references.bib", "references.yml");
    append(&study.join("manuscript/main.md"), "\nSee [@ok].\n");
    let out = dir.path().join("out");
    let err = build(&study, &out);
    assert!(err.contains("references.yml:4:"), "{err}");
    let html = std::fs::read(out.join("s/manuscript.html")).unwrap();
    let hrefs = targets(&html, "href=\"", b'"');
    assert!(hrefs.iter().all(|t| allowed(t)), "{hrefs:?}");
    assert!(
        hrefs.iter().any(|t| t == "https://example.org/fine"),
        "{hrefs:?}"
    );
    let uris = targets(
        &std::fs::read(out.join("s/manuscript.pdf")).unwrap(),
        "/URI(",
        b')',
    );
    assert!(uris.iter().all(|t| allowed(t)), "{uris:?}");
}

/// Run galley under a hard cap on its address space (a regression fails, not the machine).
fn galley_capped(bytes: u64, args: &[&str]) -> Output {
    Command::new("prlimit")
        .arg(format!("--as={bytes}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_galley"))
        .args(args)
        .current_dir(root())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("prlimit (util-linux) runs")
}

/// Row 7: a bibliography of 200,000 entries (32 MB; 600,000 took 37 s and 10 GB) builds in a
/// bounded address space: only the cited entries are parsed and handed to Typst and the HTML.
#[test]
fn only_cited_entries_are_parsed() {
    let (dir, study) = tiny();
    let mut bib = std::fs::read_to_string(study.join("references.bib")).unwrap();
    for i in 0..200_000 {
        bib.push_str(&format!(
            "@article{{k{i},\n  author = {{Author, A. and Other, B.}},\n  title = {{Title number {i} about things}},\n  journal = {{J}},\n  year = {{2001}},\n  doi = {{10.1000/{i}}}\n}}\n"
        ));
    }
    std::fs::write(study.join("references.bib"), bib).unwrap();
    append(&study.join("manuscript/main.md"), "\nAlso [@k123456].\n");
    let out = dir.path().join("out");
    let result = galley_capped(
        1536 << 20,
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "pdf,html",
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let subset = std::fs::read_to_string(out.join("s/references.bib")).unwrap();
    assert!(subset.contains("@article{k123456,"), "{subset}");
    assert!(subset.contains("@article{kaplan1958,"), "{subset}");
    assert_eq!(subset.matches('@').count(), 2, "{subset}");
}

fn check_fails(study: &Path, expected: &[&str]) -> String {
    let result = galley(&["check", study.to_str().unwrap()], &root());
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    for fragment in expected {
        assert!(err.contains(fragment), "expected `{fragment}` in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Row 14: `csl = "/etc/passwd"` passed `check` (a style name nobody has), and a `.csl` file
/// that is not a style failed only when typesetting.
#[test]
fn check_refuses_an_unknown_style() {
    let (_dir, study) = tiny();
    set_manifest(
        &study,
        "bibliography = \"references.bib\"",
        "bibliography = \"references.bib\"\ncsl = \"/etc/passwd\"",
    );
    check_fails(
        &study,
        &["study.toml:38:", "`/etc/passwd`", "neither a style name"],
    );

    let (_dir, study) = tiny();
    std::fs::write(study.join("style.csl"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    set_manifest(
        &study,
        "bibliography = \"references.bib\"",
        "bibliography = \"references.bib\"\ncsl = \"style.csl\"",
    );
    check_fails(&study, &["style.csl", "the CSL style could not be read"]);

    // A style Typst knows passes.
    let (_dir, study) = tiny();
    set_manifest(
        &study,
        "bibliography = \"references.bib\"",
        "bibliography = \"references.bib\"\ncsl = \"vancouver\"",
    );
    let ok = galley(&["check", study.to_str().unwrap()], &root());
    assert!(ok.status.success(), "{}", stderr(&ok));
}

/// Row 14: invalid UTF-8 in the .bib was caught only at typesetting, in a temporary copy; now
/// `check` names references.bib, the line and the column. So is an entry that is never closed.
#[test]
fn check_locates_a_broken_bibliography() {
    let (_dir, study) = tiny();
    append(
        &study.join("references.bib"),
        "\n@misc{latin1,\n  title = {Caf\u{e9}s}\n}\n",
    );
    // Latin-1: é is the one byte 0xE9.
    let path = study.join("references.bib");
    let bytes: Vec<u8> = std::fs::read_to_string(&path)
        .unwrap()
        .replace('\u{e9}', "\u{0}")
        .into_bytes()
        .into_iter()
        .map(|b| if b == 0 { 0xE9 } else { b })
        .collect();
    std::fs::write(&path, bytes).unwrap();
    check_fails(&study, &["references.bib:13:15", "not valid UTF-8"]);

    let (_dir, study) = tiny();
    append(
        &study.join("references.bib"),
        "\n@misc{open,\n  title = {Never {closed}\n",
    );
    check_fails(&study, &["references.bib:12:1", "not closed"]);
}

/// `GET /` with these headers from the preview server on `port`: the status code.
fn preview_status(port: u16, headers: &[&str]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = String::from("GET / HTTP/1.1\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// Row 10: the preview server took any `Host` starting with `127.` (`127.attacker.example`, a
/// name DNS rebinding can point at 127.0.0.1) as the loopback. Now only `localhost`, 127.0.0.0/8
/// literals and `[::1]` pass, with an optional port, and a foreign `Origin` is refused too.
#[test]
fn preview_answers_only_loopback_hosts() {
    let server = galley::cmd::serve::LiveServer::start(0, "t").unwrap();
    let port = server.port();
    for host in [
        "127.0.0.1",
        "127.0.0.1:8000",
        "127.1.2.3",
        "localhost",
        "LocalHost:8000",
        "[::1]",
        "[::1]:8000",
        "[::ffff:127.0.0.1]",
    ] {
        assert_eq!(
            preview_status(port, &[&format!("Host: {host}")]),
            200,
            "{host}"
        );
    }
    for host in [
        "127.attacker.example",
        "127.0.0.1.nip.io",
        "localhost.attacker.example",
        "attacker.example",
        "127.0.0.1:80@attacker.example",
        "127.0.0.1:x",
        "127.0.0.1:",
        "127.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "[::1",
        "[::2]",
        "[::1]x",
        "192.168.1.1",
        "",
    ] {
        assert_eq!(
            preview_status(port, &[&format!("Host: {host}")]),
            403,
            "{host:?}"
        );
    }
    // Two Hosts, or a foreign Origin with a loopback Host.
    assert_eq!(
        preview_status(port, &["Host: 127.0.0.1", "Host: attacker.example"]),
        403
    );
    assert_eq!(
        preview_status(
            port,
            &["Host: 127.0.0.1", "Origin: http://attacker.example"]
        ),
        403
    );
    assert_eq!(
        preview_status(port, &["Host: 127.0.0.1", "Origin: http://127.0.0.1:9"]),
        200
    );
}

/// Row 6: template memory had no bound: `{{ ([1] * 10**9) | length }}` aborted (rc 134,
/// "memory allocation of 72000000000 bytes failed") and a doubling loop grew until the OOM killer.
/// Each way of growing memory now stops at `template_memory_mb` with a message naming the file
/// and the limit, exit code 1, under a hard cap on the address space (1.5 GiB).
#[test]
fn template_memory_is_bounded() {
    let loop40 = |body: &str, init: &str, show: &str| {
        format!(
            "{{% set ns = namespace(v={init}) %}}{{% for i in range(40) %}}{{% set ns.v = {body} %}}{{% endfor %}}{{{{ {show} }}}}"
        )
    };
    let cases = [
        "{{ ([1] * 10**9) | length }}".to_string(),
        "{{ ([1, 2] * 10**9) | join(',') | length }}".to_string(),
        loop40("ns.v ~ ns.v", "'x'", "ns.v | length"),
        loop40("ns.v + ns.v", "[1]", "ns.v | length"),
        loop40("ns.v | replace('x', 'xx')", "'xx'", "ns.v | length"),
        loop40("[ns.v, ns.v] | join", "'x'", "ns.v | length"),
        loop40("ns.v ~ ns.v", "'x'", "ns.v | upper | length"),
    ];
    for case in cases {
        let (_dir, study) = tiny();
        append(
            &study.join("manuscript/main.md"),
            &format!("\nGrowing: {case}\n"),
        );
        let result = galley_capped(1536 << 20, &["check", study.to_str().unwrap()]);
        let err = stderr(&result);
        assert_eq!(result.status.code(), Some(1), "{case}\n{err}");
        assert!(
            err.contains("template_memory_mb") && err.contains("main.md"),
            "{case}\n{err}"
        );
    }
    // The limit can be lowered (and a raised one is a number of MiB above 0).
    let (_dir, study) = tiny();
    append(
        &study.join("manuscript/main.md"),
        "\n{{ ('x' * 10**7) | length }}\n",
    );
    let ok = galley_capped(1536 << 20, &["check", study.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let low = galley_capped(
        1536 << 20,
        &[
            "check",
            study.to_str().unwrap(),
            "--limit",
            "template_memory_mb=5",
        ],
    );
    assert!(stderr(&low).contains("more than 5 MiB"), "{}", stderr(&low));
    let zero = galley(
        &[
            "check",
            study.to_str().unwrap(),
            "--limit",
            "template_memory_mb=0",
        ],
        &root(),
    );
    assert!(
        stderr(&zero).contains("`template_memory_mb` is 0"),
        "{}",
        stderr(&zero)
    );
}
