//! The live preview of `galley watch --serve`: a small HTTP server on 127.0.0.1 (never another address)
//! serving the latest HTML manuscript, or the latest build error as a page, and a server-sent-events
//! stream (`/events`) that tells the page to reload after every rebuild.
//!
//! The page is the built `manuscript.html` with a short script added before `</body>` (the file on
//! disk has no script). The script reloads when the server's version differs from the page's, keeping
//! the scroll position, and shows a small badge while a rebuild runs. Requests whose `Host` (or
//! `Origin`) is not the loopback (`localhost`, 127.0.0.0/8, `[::1]`) are refused, so a web page
//! elsewhere can neither read the report through DNS rebinding nor hold the event streams.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::render::html::escape;

/// Event streams open at once; more are refused (each holds a thread).
const MAX_STREAMS: usize = 32;
/// A comment line every so often, so a closed browser tab is noticed and its thread ends.
const KEEPALIVE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Page {
    /// Before the first build finished.
    Waiting,
    Html(Arc<Vec<u8>>),
    Error(Arc<String>),
}

#[derive(Debug)]
struct State {
    version: u64,
    building: bool,
    page: Page,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    streams: AtomicUsize,
    title: String,
}

/// A running preview server; stopped when dropped.
pub struct LiveServer {
    shared: Arc<Shared>,
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl LiveServer {
    /// Listen on 127.0.0.1:`port` (0: a free port). `title` names the study on the waiting page.
    pub fn start(port: u16, title: &str) -> std::io::Result<LiveServer> {
        let server = Server::http(("127.0.0.1", port)).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("cannot listen on 127.0.0.1:{port}: {e}"),
            )
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("the server has no IP address"))?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                version: 0,
                building: true,
                page: Page::Waiting,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            streams: AtomicUsize::new(0),
            title: title.to_string(),
        });
        let thread = {
            let shared = shared.clone();
            let server = server.clone();
            std::thread::Builder::new()
                .name("galley-serve".into())
                .spawn(move || accept(&server, &shared))?
        };
        Ok(LiveServer {
            shared,
            server,
            addr,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A rebuild started: pages show a "rebuilding" badge.
    pub fn building(&self) {
        self.update(|s| s.building = true, false);
    }

    /// A build succeeded: serve this page from now on and reload open pages.
    pub fn publish_html(&self, html: Vec<u8>) {
        self.update(|s| s.page = Page::Html(Arc::new(html)), true);
    }

    /// A build failed: serve the error (not the stale report) and reload open pages.
    pub fn publish_error(&self, text: String) {
        self.update(|s| s.page = Page::Error(Arc::new(text)), true);
    }

    fn update(&self, f: impl FnOnce(&mut State), new_version: bool) {
        let mut state = lock(&self.shared.state);
        f(&mut state);
        if new_version {
            state.version += 1;
            state.building = false;
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept(server: &Server, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let request = match server.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => break,
        };
        handle(request, shared);
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// Whether the request may be answered: its `Host` names this machine's loopback, and so does its
/// `Origin` if it has one. A browser sends the name it resolved in `Host`: a web page that rebinds
/// its own name to 127.0.0.1 (DNS rebinding) still sends its name, and is refused. `Origin`: a web
/// page elsewhere could not read the answers anyway, but it could hold the event streams open
/// (`MAX_STREAMS`) and keep the preview from reloading.
fn allowed_request(request: &Request) -> bool {
    fn values<'a>(request: &'a Request, name: &'static str) -> Vec<&'a str> {
        request
            .headers()
            .iter()
            .filter(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
            .collect()
    }
    let host_ok = match values(request, "Host")[..] {
        // HTTP/1.0 without Host: only a local client reaches a loopback socket, and a browser
        // always sends one.
        [] => true,
        [host] => loopback_authority(host),
        // Two Hosts: which one a proxy or the client meant cannot be told.
        _ => false,
    };
    let origin_ok = values(request, "Origin").iter().all(|origin| {
        origin
            .strip_prefix("http://")
            .is_some_and(loopback_authority)
    });
    host_ok && origin_ok
}

/// `host[:port]` naming the loopback: exactly `localhost` (any case), an IPv4 literal in
/// 127.0.0.0/8, or `[::1]` (an IPv6 literal in brackets; an IPv4-mapped loopback too). Names are
/// never resolved and prefixes never matched: `127.attacker.example`, `localhost.attacker.example`
/// and `127.0.0.1.nip.io` are names somebody else controls.
pub fn loopback_authority(authority: &str) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let port_ok = |port: &str| {
        port.is_empty() || (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => "",
            p => match p.strip_prefix(':') {
                Some(port) if !port.is_empty() => port,
                _ => return false,
            },
        };
        return port_ok(port)
            && ip.parse::<Ipv6Addr>().is_ok_and(|ip| {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            });
    }
    let (name, port) = match authority.split_once(':') {
        Some((name, port)) if !port.is_empty() => (name, port),
        Some(_) => return false,
        None => (authority, ""),
    };
    port_ok(port)
        && (name.eq_ignore_ascii_case("localhost")
            || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()))
}

fn handle(request: Request, shared: &Arc<Shared>) {
    if !allowed_request(&request) {
        let _ = request.respond(Response::from_string("forbidden host").with_status_code(403));
        return;
    }
    if request.method() != &Method::Get && request.method() != &Method::Head {
        let _ = request.respond(Response::from_string("method not allowed").with_status_code(405));
        return;
    }
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    match path.as_str() {
        "/" | "/index.html" | "/manuscript.html" => {
            let (version, building, page) = {
                let s = lock(&shared.state);
                (s.version, s.building, s.page.clone())
            };
            let body = page_html(&page, version, building, &shared.title);
            let response = Response::from_data(body)
                .with_header(header("Content-Type", "text/html; charset=utf-8"))
                .with_header(header("Cache-Control", "no-store"));
            let _ = request.respond(response);
        }
        "/events" => {
            if shared.streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
                shared.streams.fetch_sub(1, Ordering::SeqCst);
                let _ = request
                    .respond(Response::from_string("too many pages open").with_status_code(503));
                return;
            }
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("galley-events".into())
                .spawn(move || {
                    let writer = request.into_writer();
                    stream_events(writer, &shared);
                    shared.streams.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                // The request went with the closure; nothing to answer.
            }
        }
        "/favicon.ico" => {
            let _ = request.respond(Response::empty(204));
        }
        _ => {
            let _ = request.respond(Response::from_string("not found").with_status_code(404));
        }
    }
}

/// Server-sent events: `building` when a rebuild starts, `reload` (data: the version) after it.
fn stream_events(mut w: Box<dyn Write + Send>, shared: &Shared) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\nretry: 500\n\n";
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    let mut sent: Option<(u64, bool)> = None;
    loop {
        let (version, building) = {
            let mut state = lock(&shared.state);
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                if sent != Some((state.version, state.building)) {
                    break;
                }
                let (s, timeout) = shared
                    .changed
                    .wait_timeout(state, KEEPALIVE)
                    .unwrap_or_else(|p| p.into_inner());
                state = s;
                if timeout.timed_out() && sent == Some((state.version, state.building)) {
                    drop(state);
                    if w.write_all(b": keep-alive\n\n")
                        .and_then(|_| w.flush())
                        .is_err()
                    {
                        return;
                    }
                    state = lock(&shared.state);
                }
            }
            (state.version, state.building)
        };
        let mut message = String::new();
        if sent.is_none_or(|(v, _)| v != version) {
            message.push_str(&format!("event: reload\ndata: {version}\n\n"));
        }
        if building && sent.is_none_or(|(_, b)| !b) {
            message.push_str("event: building\ndata: \n\n");
        }
        if !message.is_empty()
            && w.write_all(message.as_bytes())
                .and_then(|_| w.flush())
                .is_err()
        {
            return;
        }
        sent = Some((version, building));
    }
}

/// The script added to served pages: reload on a new version (keeping the scroll position), a badge
/// while rebuilding.
fn live_script(version: u64, building: bool) -> String {
    format!(
        r#"<div class="galley-live" id="galley-live" role="status" aria-live="polite" style="position:fixed;right:0.75rem;bottom:0.75rem;padding:0.3em 0.7em;border-radius:1em;background:#1f4e79;color:#fff;font:0.8rem system-ui,sans-serif;opacity:0.9;display:{display}">rebuilding…</div>
<script class="galley-live">
(function () {{
  var version = {version};
  var key = "galley-scroll:" + location.pathname;
  var saved = sessionStorage.getItem(key);
  if (saved !== null) {{ sessionStorage.removeItem(key); window.scrollTo(0, Number(saved)); }}
  var badge = document.getElementById("galley-live");
  var events = new EventSource("/events");
  events.addEventListener("reload", function (e) {{
    if (Number(e.data) !== version) {{
      sessionStorage.setItem(key, String(window.scrollY));
      location.reload();
    }}
  }});
  events.addEventListener("building", function () {{ badge.style.display = "block"; }});
}})();
</script>
"#,
        display = if building { "block" } else { "none" },
    )
}

fn page_html(page: &Page, version: u64, building: bool, title: &str) -> Vec<u8> {
    let script = live_script(version, building);
    match page {
        Page::Html(html) => {
            let text = String::from_utf8_lossy(html);
            match text.rfind("</body>") {
                Some(at) => {
                    let mut s = String::with_capacity(text.len() + script.len());
                    s.push_str(&text[..at]);
                    s.push_str(&script);
                    s.push_str(&text[at..]);
                    s.into_bytes()
                }
                None => format!("{text}{script}").into_bytes(),
            }
        }
        Page::Error(text) => status_page(
            "Build failed",
            &format!(
                "<p>The last build of <strong>{}</strong> failed; the report is shown again as soon as it builds. Nothing in the output folder was changed.</p>\n<pre class=\"diagnostics\">{}</pre>",
                escape(title),
                escape(text)
            ),
            &script,
        ),
        Page::Waiting => status_page(
            "Building…",
            &format!("<p>Building <strong>{}</strong>…</p>", escape(title)),
            &script,
        ),
    }
}

fn status_page(heading: &str, body: &str, script: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{heading} – galley</title>\n<style>body{{font:1rem/1.5 system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}h1{{color:#b03a2e;font-size:1.4rem}}pre{{white-space:pre-wrap;background:#fbeeec;border-left:4px solid #b03a2e;padding:0.8em 1em;font-size:0.9rem;overflow-x:auto}}</style>\n</head>\n<body>\n<h1 class=\"galley-status\">{heading}</h1>\n{body}\n{script}</body>\n</html>\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_goes_before_the_end_of_the_body() {
        let page = Page::Html(Arc::new(b"<html><body><p>x</p></body></html>".to_vec()));
        let out = String::from_utf8(page_html(&page, 3, false, "t")).unwrap();
        assert!(out.contains("var version = 3;"), "{out}");
        assert!(out.find("EventSource").unwrap() < out.find("</body>").unwrap());
    }

    #[test]
    fn errors_are_escaped() {
        let page = Page::Error(Arc::new("error: <script>".into()));
        let out = String::from_utf8(page_html(&page, 1, false, "t")).unwrap();
        assert!(out.contains("error: &lt;script&gt;"), "{out}");
        assert!(out.contains("Build failed"));
    }
}
