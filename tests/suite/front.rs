//! The front door: `galley new`, the HTML manuscript, `galley watch --serve` driven in a real headless
//! Chromium, and the user guide's examples.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::build::copy_dir;
use crate::common::{galley, root, stderr, stdout};

fn build_ok(args: &[&str], cwd: &Path) -> String {
    let out = galley(args, cwd);
    assert!(
        out.status.success(),
        "galley {args:?} failed:\n{}",
        stderr(&out)
    );
    stdout(&out)
}

/// The visible text of an HTML page, roughly: tags removed, entities decoded, whitespace collapsed.
fn html_text(html: &str) -> String {
    let body = html.split("</style>").last().unwrap_or(html);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .replace('\u{a0}', " ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "Figure 1", "Table 2", ... in the order they occur in `text`.
fn numbered(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "Figure" || w[0] == "Table")
        .filter_map(|w| {
            let digits: String = w[1].chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty()).then(|| format!("{} {digits}", w[0]))
        })
        .collect()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A tool the test needs: in CI its absence fails the test; locally the test is skipped.
fn require_tool(found: Option<PathBuf>, what: &str, install: &str) -> Option<PathBuf> {
    if found.is_none() {
        assert!(
            !in_ci(),
            "{what} is not installed, and CI must run this test: {install}"
        );
        eprintln!("skipped: {what} is not installed ({install})");
    }
    found
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

// ---- galley new ----

#[test]
fn new_study_builds_at_once_to_pdf_and_html_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let said = build_ok(&["new", "study/demo"], dir.path());
    assert!(said.contains("study/demo/study.toml"), "{said}");
    assert!(said.contains("galley build study/demo"), "{said}");
    let said = build_ok(
        &[
            "build",
            "study/demo",
            "--format",
            "pdf,html",
            "--deny-warnings",
        ],
        dir.path(),
    );
    assert!(said.contains("wrote output/demo/manuscript.pdf"), "{said}");
    assert!(said.contains("wrote output/demo/manuscript.html"), "{said}");
    let out = dir.path().join("output/demo");
    assert!(
        std::fs::read(out.join("manuscript.pdf"))
            .unwrap()
            .starts_with(b"%PDF-")
    );
    let html = std::fs::read_to_string(out.join("manuscript.html")).unwrap();
    let text = html_text(&html);
    assert!(
        text.contains("Overall Survival with a New Treatment"),
        "{text}"
    );
    assert!(
        text.contains("Figure 1. Overall survival by treatment"),
        "{text}"
    );
    assert!(
        text.contains("Table 1. Overall survival by treatment"),
        "{text}"
    );
    assert!(text.contains("Table 2. Cox proportional hazards"), "{text}");
    assert!(text.contains("Kaplan EL, Meier P."), "{text}");
    assert!(html.contains("<svg"), "no inline figure");
    // The survival blocks ran on the simulated data: the medians are in the prose.
    let results: Value = crate::common::record(&out.join("results.json"));
    assert_eq!(results["cohort"]["result"]["n"], 120);
    assert!(results["km"]["result"]["events"].as_u64().unwrap() > 20);
}

#[test]
fn new_refuses_an_existing_folder_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study/demo");
    std::fs::create_dir_all(&study).unwrap();
    std::fs::write(study.join("notes.md"), "mine").unwrap();
    let out = galley(&["new", "study/demo"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&study).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_to_string(study.join("notes.md")).unwrap(),
        "mine"
    );
    let out = galley(&["new", "study/other", "--template", "nope"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cohort-survival"), "{}", stderr(&out));
    assert!(!dir.path().join("study/other").exists());
}

// ---- HTML ----

#[test]
fn html_has_the_numbers_captions_references_and_numbering_of_the_pdf() {
    let out = tempfile::tempdir().unwrap();
    build_ok(
        &[
            "-q",
            "build",
            "tests/fixtures/survival",
            "--out",
            out.path().to_str().unwrap(),
            "--format",
            "pdf,html",
        ],
        &root(),
    );
    let dir = out.path().join("survival");
    let html = std::fs::read_to_string(dir.join("manuscript.html")).unwrap();
    let text = html_text(&html);

    // Self-contained: no script, no stylesheet or image from elsewhere.
    for needle in ["<script", "<link", "src=\"http", "@import", "url("] {
        assert!(!html.contains(needle), "the page loads something: {needle}");
    }
    // Every value the trail says the PDF prints is printed in the page.
    let trail: Vec<Value> = crate::common::record(&dir.join("trail.json"));
    assert!(trail.len() > 20);
    for entry in &trail {
        let printed = entry["text"].as_str().unwrap().replace('\u{a0}', " ");
        assert!(
            text.contains(&printed),
            "`{printed}` ({}) is not in the HTML",
            entry["expression"]
        );
    }
    // Numbering and cross-references as Typst does them.
    for (label, shown) in [
        ("fig:km", "Figure 1"),
        ("tab:km", "Table 1"),
        ("tab:cox", "Table 2"),
        ("fig:cox", "Figure 2"),
    ] {
        assert!(
            html.contains(&format!(
                "<a class=\"xref\" href=\"#{label}\">{}</a>",
                shown.replace(' ', "\u{a0}")
            )),
            "no link `{shown}` to {label}"
        );
        assert!(
            html.contains(&format!("id=\"{label}\"")),
            "no target {label}"
        );
    }
    // Citations in the order of the text, linked to the references (AMA: superscript numbers).
    assert!(
        text.contains("product-limit method 1 , compared with the log-rank test 2 and modelled with proportional hazards 3"),
        "{text}"
    );
    assert!(html.contains("<a href=\"#ref-kaplan1958\"><sup>1</sup></a>"));
    let refs = &text[text.find("References").unwrap()..];
    let order: Vec<usize> = ["Kaplan EL", "Mantel N", "Cox DR"]
        .iter()
        .map(|a| {
            refs.find(a)
                .unwrap_or_else(|| panic!("{a} not in the references"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{refs}");

    // Where poppler's pdftotext is installed (CI installs it), the PDF's "Figure N"/"Table N" sequence
    // (captions and references, in reading order) is the page's.
    if let Some(pdftotext) = require_tool(
        which(&["pdftotext"]),
        "pdftotext",
        "apt-get install -y poppler-utils",
    ) {
        let pdf = Command::new(pdftotext)
            .arg(dir.join("manuscript.pdf"))
            .arg("-")
            .output()
            .unwrap();
        let pdf_text = String::from_utf8_lossy(&pdf.stdout);
        let from_pdf = numbered(&pdf_text);
        assert!(from_pdf.len() >= 8, "{from_pdf:?}");
        assert_eq!(numbered(&text), from_pdf);
    }
}

#[test]
fn footnotes_and_section_references_in_html() {
    let out = tempfile::tempdir().unwrap();
    build_ok(
        &[
            "-q",
            "build",
            "tests/fixtures/tiny",
            "--out",
            out.path().to_str().unwrap(),
            "--format",
            "html",
        ],
        &root(),
    );
    let dir = out.path().join("tiny");
    assert!(
        !dir.join("manuscript.pdf").exists(),
        "html only was asked for"
    );
    let html = std::fs::read_to_string(dir.join("manuscript.html")).unwrap();
    assert!(html.contains("<a class=\"xref\" href=\"#sec-intro\">Introduction</a>"));
    assert!(html.contains("<h2 id=\"sec-intro\">Introduction</h2>"));
    assert!(html.contains("<li id=\"fn-1\">A footnote with a number: 7."));
    // Characters that mean something in HTML print literally.
    assert!(html.contains("# $ * _ &lt; &gt; @ [ ] ~ / \\"), "escaping");
    // The table of the reproduction block is Table 1.
    assert!(html.contains("href=\"#tbl:reproduction\">Table\u{a0}1</a>"));
}

#[test]
fn html_builds_are_reproducible_and_verify() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    build_ok(
        &[
            "-q",
            "build",
            "tests/fixtures/survival",
            "--out",
            o,
            "--format",
            "pdf,html",
        ],
        &root(),
    );
    let first = std::fs::read(out.path().join("survival/manuscript.html")).unwrap();
    // The output root is far from the study: verify is told where it is.
    let verify = galley(
        &[
            "verify",
            &format!("{o}/survival"),
            "--study",
            "tests/fixtures/survival",
        ],
        &root(),
    );
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    build_ok(
        &[
            "-q",
            "build",
            "tests/fixtures/survival",
            "--out",
            o,
            "--format",
            "html,pdf",
        ],
        &root(),
    );
    assert_eq!(
        first,
        std::fs::read(out.path().join("survival/manuscript.html")).unwrap()
    );
}

#[test]
fn quiet_prints_nothing_and_verbose_prints_stage_timings() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let quiet = galley(
        &["--quiet", "build", "tests/fixtures/tiny", "--out", o],
        &root(),
    );
    assert!(quiet.status.success());
    assert_eq!(stdout(&quiet), "");
    let verbose = galley(
        &["build", "tests/fixtures/tiny", "--out", o, "--verbose"],
        &root(),
    );
    assert!(verbose.status.success());
    let err = stderr(&verbose);
    for stage in ["load data", "analysis", "typeset", "write", "total"] {
        assert!(err.contains(stage), "no `{stage}` timing in:\n{err}");
    }
    // Not a terminal: no progress drawing in the output.
    assert!(!err.contains('\u{1b}'), "escape codes on a pipe:\n{err}");
    assert!(stdout(&verbose).contains("manuscript.pdf"));
}

// ---- galley watch --serve in a real browser ----

/// Kills a child process (by its own handle) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A minimal Chrome DevTools Protocol client over the browser's websocket.
struct Cdp {
    socket: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    fn connect(port: u16, path: &str) -> Cdp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (socket, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        Cdp {
            socket,
            next_id: 0,
            session: None,
        }
    }

    /// Send a command and wait for its answer (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            message["sessionId"] = json!(s);
        }
        self.socket
            .send(tungstenite::Message::text(message.to_string()))
            .map_err(|e| e.to_string())?;
        loop {
            let reply = match self.socket.read() {
                Ok(reply) => reply,
                // A signal (e.g. a child process ending) interrupts the blocking read; tungstenite
                // keeps the partial frame, so reading again resumes it.
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                    continue;
                }
                Err(e) => return Err(format!("{method}: {e}")),
            };
            let tungstenite::Message::Text(text) = reply else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
            if value["id"] == json!(id) {
                if let Some(error) = value.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(value["result"].clone());
            }
        }
    }

    /// Evaluate JavaScript in the page; the value, or an error (e.g. while the page reloads).
    fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(e.to_string());
        }
        Ok(r["result"]["value"].clone())
    }

    /// Poll `expression` until it is `true`.
    fn wait_for(&mut self, expression: &str, what: &str, timeout: Duration) {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < timeout {
            match self.eval(expression) {
                Ok(Value::Bool(true)) => return,
                Ok(v) => last = v.to_string(),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let page = self
            .eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
            .unwrap_or_default();
        panic!("timed out waiting for {what} (last: {last}); the page shows:\n{page}");
    }

    fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .expect("screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// A real mouse click at the middle of the element matching `selector` (scrolled into view).
    fn click(&mut self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
            sel = serde_json::to_string(selector).unwrap()
        );
        let at = self.eval(&js).expect("element to click");
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .expect("click");
        }
    }
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GALLEY_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    which(&[
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ])
}

/// Start headless Chromium with remote debugging on a free loopback port; the DevTools port and
/// browser path come from the `DevToolsActivePort` file it writes.
fn start_chromium(binary: &Path, profile: &Path, log: &Path) -> (Killed, u16, String) {
    let child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1000,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("chromium starts");
    let child = Killed(child);
    let file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return (child, port.trim().parse().unwrap(), path.trim().to_string());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "chromium did not open its DevTools port; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET of `path` on the preview server (status line and body).
fn http_get(port: u16, path: &str, host: &str) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn live_preview_in_headless_chromium() {
    let Some(browser) = require_tool(
        chromium(),
        "Chromium",
        "apt-get install -y chromium chromium-driver (or set GALLEY_CHROMIUM)",
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let study = work.path().join("survival");
    copy_dir(&root().join("tests/fixtures/survival"), &study);
    let port = free_port();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(["watch", "survival", "--serve", "--port", &port.to_string()])
        .current_dir(work.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("galley watch starts");
    // Everything the watcher prints, for the assertions and for a failure's message.
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        Box::new(watch.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(watch.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let _watch = Killed(watch);
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !said
        .iter()
        .any(|l: &String| l.starts_with("wrote ") && l.ends_with("manuscript.html"))
    {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => said.push(line),
            Err(_) => panic!(
                "the first build did not finish; galley said:\n{}",
                said.join("\n")
            ),
        }
    }
    let url = format!("http://127.0.0.1:{port}/");
    assert!(said.iter().any(|l| l.contains(&url)), "{said:?}");

    // The server answers on loopback names only, and only GETs what it serves.
    assert!(http_get(port, "/", &format!("127.0.0.1:{port}")).starts_with("HTTP/1.1 200"));
    assert!(http_get(port, "/", "evil.example").starts_with("HTTP/1.1 403"));
    assert!(http_get(port, "/../study.toml", "localhost").starts_with("HTTP/1.1 404"));

    let profile = tempfile::tempdir().unwrap();
    let log = work.path().join("chromium.log");
    let (_chromium, devtools, path) = start_chromium(&browser, profile.path(), &log);
    let mut cdp = Cdp::connect(devtools, &path);
    let target = cdp
        .call("Target.createTarget", json!({"url": "about:blank"}))
        .unwrap();
    let session = cdp
        .call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .unwrap();
    cdp.session = Some(session["sessionId"].as_str().unwrap().to_string());
    cdp.call("Page.enable", json!({})).unwrap();
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1000, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
    )
    .unwrap();
    cdp.call("Page.navigate", json!({"url": url})).unwrap();
    let long = Duration::from_secs(60);

    // The page loads and shows the title, the tables and the figures (drawn: the SVGs have a size).
    cdp.wait_for(
        "document.readyState === 'complete' && !!document.querySelector('h1.title')",
        "the report",
        long,
    );
    let title = cdp
        .eval("document.querySelector('h1.title').textContent")
        .unwrap();
    assert_eq!(title, "A Simulated Two-Arm Trial: Overall Survival");
    assert_eq!(cdp.eval("document.title").unwrap(), title);
    let tables = cdp
        .eval("document.querySelectorAll('figure.table table.booktable tbody tr').length")
        .unwrap();
    assert!(tables.as_u64().unwrap() >= 10, "table rows: {tables}");
    let figures = cdp
        .eval("Array.from(document.querySelectorAll('figure.figure svg')).filter(s => s.getBoundingClientRect().width > 300 && s.getBoundingClientRect().height > 150).length")
        .unwrap();
    assert_eq!(figures, json!(2), "drawn figures");
    let caption = cdp
        .eval("document.querySelector('#fig\\\\:km figcaption').innerText")
        .unwrap();
    assert!(
        caption
            .as_str()
            .unwrap()
            .starts_with("Figure 1. Overall survival by treatment arm"),
        "{caption}"
    );

    // Following a cross-reference link scrolls to the figure.
    cdp.eval("window.scrollTo(0, 0); true").unwrap();
    cdp.click("a.xref[href='#fig:km']");
    cdp.wait_for(
        "location.hash === '#fig:km' && Math.abs(document.getElementById('fig:km').getBoundingClientRect().top) < 5",
        "the cross-reference to scroll to Figure 1",
        Duration::from_secs(10),
    );
    let artifacts = root().join("target/e2e");
    cdp.screenshot(&artifacts.join("served.png"));

    // An edit to the manuscript shows in the page without a manual reload: the marker set on this
    // page is gone once the page has reloaded itself.
    cdp.eval("window.__galleyMarker = 1; true").unwrap();
    let main = study.join("manuscript/main.md");
    let text = std::fs::read_to_string(&main).unwrap();
    let edited = text.replace(
        "Groups were compared with the log-rank test.",
        "Groups were compared with the log-rank test, as edited while the page was open.",
    );
    assert_ne!(text, edited);
    std::fs::write(&main, &edited).unwrap();
    cdp.wait_for(
        "window.__galleyMarker === undefined && document.readyState === 'complete' && document.body.innerText.includes('as edited while the page was open')",
        "the edit to show",
        long,
    );

    // A broken build shows its error in the page (not the stale report), and the fix brings the report back.
    std::fs::write(
        &main,
        edited.replace("{{ km_os.events }}", "{{ km_os.eventz }}"),
    )
    .unwrap();
    cdp.wait_for(
        "document.body.innerText.includes('Build failed') && document.body.innerText.includes('km_os.eventz')",
        "the build error in the page",
        long,
    );
    cdp.screenshot(&artifacts.join("served-error.png"));
    assert!(
        cdp.eval("!document.querySelector('h1.title')").unwrap() == json!(true),
        "a stale report is shown with the error"
    );
    std::fs::write(&main, &edited).unwrap();
    cdp.wait_for(
        "!!document.querySelector('h1.title') && document.body.innerText.includes('as edited while the page was open')",
        "the report after the fix",
        long,
    );
    cdp.screenshot(&artifacts.join("served-edited.png"));

    // The watcher said what it rebuilt, and went on after the error.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        said.push(line);
    }
    let all = said.join("\n");
    assert!(
        all.contains("manuscript/main.md changed: rebuilding"),
        "{all}"
    );
    assert!(all.contains("the build failed"), "{all}");
}

// ---- the user guide ----

/// The fenced code blocks of a Markdown file: (info string, body, the `<!-- example: PATH -->` marker
/// on the line before the fence, if any).
fn code_blocks(text: &str) -> Vec<(String, String, Option<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let fence: String = line.chars().take_while(|&c| c == '`').collect();
        if fence.len() >= 3 {
            let info = line[fence.len()..].trim().to_string();
            let marker = i
                .checked_sub(1)
                .and_then(|p| lines[p].trim().strip_prefix("<!-- example:"))
                .and_then(|m| m.strip_suffix("-->"))
                .map(|m| m.trim().to_string());
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && lines[i].trim_end() != fence {
                body.push(lines[i]);
                i += 1;
            }
            blocks.push((info, body.join("\n"), marker));
        }
        i += 1;
    }
    blocks
}

#[test]
fn every_example_in_the_guide_is_part_of_a_file_that_builds() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).unwrap();
    let mut checked = 0;
    for (info, body, marker) in code_blocks(&guide) {
        if matches!(info.as_str(), "sh" | "text") {
            continue;
        }
        let path = marker.unwrap_or_else(|| {
            panic!("a ```{info} example in the guide names no file (<!-- example: docs/examples/... -->):\n{body}")
        });
        assert!(path.starts_with("docs/examples/"), "{path}");
        let file = std::fs::read_to_string(root().join(&path))
            .unwrap_or_else(|e| panic!("the guide's example file {path}: {e}"));
        let want: Vec<&str> = body.lines().collect();
        let have: Vec<&str> = file.lines().collect();
        assert!(
            have.windows(want.len()).any(|w| w == want.as_slice()),
            "the guide shows lines that are not (or no longer) in {path}:\n{body}"
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} examples found");

    // Every example study builds, to both formats, without a warning.
    let out = tempfile::tempdir().unwrap();
    let mut studies = 0;
    for entry in std::fs::read_dir(root().join("docs/examples")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("study.toml").is_file() {
            let rel = dir
                .strip_prefix(root())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            build_ok(
                &[
                    "-q",
                    "build",
                    &rel,
                    "--out",
                    out.path().to_str().unwrap(),
                    "--format",
                    "pdf,html",
                    "--deny-warnings",
                ],
                &root(),
            );
            studies += 1;
        }
    }
    assert!(studies >= 2);

    // Relative links of the guide lead to files that exist.
    for part in guide.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        if target.starts_with('#') || target.contains("://") {
            continue;
        }
        let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
        let path = root().join("docs").join(file);
        assert!(
            path.exists(),
            "the guide links to `{target}`, which does not exist"
        );
        if !anchor.is_empty() {
            // A GitHub-style heading anchor: lower case, spaces to hyphens, punctuation dropped.
            let text = std::fs::read_to_string(&path).unwrap();
            let found = text.lines().filter(|l| l.starts_with('#')).any(|heading| {
                let slug: String = heading
                    .trim_start_matches('#')
                    .trim()
                    .to_lowercase()
                    .chars()
                    .filter_map(|c| match c {
                        ' ' => Some('-'),
                        c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                        _ => None,
                    })
                    .collect();
                slug == anchor
            });
            assert!(
                found,
                "the guide links to `{target}`, but `{file}` has no such heading"
            );
        }
    }
}

#[test]
fn the_guides_commands_run_as_shown() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).unwrap();
    let work = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("docs/examples"),
        &work.path().join("docs/examples"),
    );
    let mut ran = 0;
    for (info, body, _) in code_blocks(&guide) {
        if info != "sh" {
            continue;
        }
        for line in body.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("galley ") else {
                continue;
            };
            let args: Vec<&str> = rest.split_whitespace().collect();
            if args.first() == Some(&"watch") {
                // Runs until stopped (the browser test drives it): check its flags exist.
                let help = build_ok(&["watch", "--help"], work.path());
                for flag in args.iter().filter(|a| a.starts_with("--")) {
                    assert!(help.contains(flag), "`galley watch` has no {flag}");
                }
                continue;
            }
            let out = galley(&args, work.path());
            assert!(
                out.status.success(),
                "`{line}` from the guide failed:\n{}{}",
                stdout(&out),
                stderr(&out)
            );
            ran += 1;
        }
    }
    assert!(ran >= 9, "ran {ran} commands");
    assert!(work.path().join("output/full/manuscript.html").is_file());
    assert!(work.path().join("study/demo/study.toml").is_file());
}

#[test]
fn troubleshooting_names_messages_galley_really_prints() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).unwrap();
    let section = &guide[guide.find("## 10. Troubleshooting").unwrap()..];
    // What galley says: its sources, and what it prints for the invalid fixtures.
    let mut said = String::new();
    fn sources(dir: &Path, into: &mut String) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, into);
            } else if p.extension().is_some_and(|x| x == "rs") {
                into.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    sources(&root().join("src"), &mut said);
    for e in std::fs::read_dir(root().join("tests/fixtures/invalid")).unwrap() {
        let dir = e.unwrap().path();
        said.push_str(&stderr(&galley(&["check", dir.to_str().unwrap()], &root())));
    }
    let mut n = 0;
    for line in section.lines() {
        if let Some(message) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            assert!(said.contains(message), "galley never says `{message}`");
            n += 1;
        }
    }
    assert!(n >= 8, "{n} messages");
}
