//! The hall UI: supervisor hall view, station terminal and auditor view.
//!
//! The UI talks to the controller only over HTTP and SSE (`/api/v1`); its assets (HTML, CSS,
//! JavaScript modules, the vendored chart library) are compiled into the binary, so running it
//! needs no build step and no files beside the binary. This crate knows nothing of HTTP
//! servers: the controller's API module serves what [`page`] and [`asset`] return, with the
//! headers they name.
//!
//! # Layout of `assets/`
//! - `hall.html`, `station.html`, `audit.html`: the three pages, served at `/`, `/station` and
//!   `/audit`.
//! - `js/`: one module per page (`hall.js`, `station.js`, `audit.js`) and what they share
//!   (`common.js`: the API client, the status stream, DOM helpers).
//! - `css/ui.css`: one style sheet.
//! - `vendor/uplot/`: uPlot (MIT, with its licence), for the throughput chart.
//! - `favicon.svg`: the pages' icon (`<link rel="icon">` in each), also served at
//!   `/favicon.ico` for whatever asks there ([`favicon`]): no page requests a 404.
//!
//! # Caching
//! Every response carries a strong `ETag` (the content's SHA-256) and `Cache-Control:
//! no-cache`: a browser keeps its copy and asks again each time, and an unchanged asset costs a
//! `304`. Asset names carry no version, so nothing may be cached without asking: after an
//! upgrade every terminal picks up the new UI at its next load.
#![deny(missing_docs)]

use std::borrow::Cow;

/// The assets, compiled in.
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// The pages: route, asset file, what it is.
pub const PAGES: [(&str, &str, &str); 3] = [
    ("/", "hall.html", "the supervisor's hall view"),
    ("/station", "station.html", "a station terminal"),
    ("/audit", "audit.html", "the auditor's view"),
];

/// Where the other assets are served: `/ui/<path in assets/>`.
pub const ASSET_PREFIX: &str = "/ui/";

/// `Cache-Control` of every UI response (see the crate's documentation).
pub const CACHE_CONTROL: &str = "no-cache";

/// `Content-Security-Policy` of the pages: scripts, styles, data and the stream only from the
/// controller itself; no inline script, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One asset, ready to send.
#[derive(Debug, Clone)]
pub struct Asset {
    /// The bytes.
    pub body: Cow<'static, [u8]>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// A strong `ETag`, quoted.
    pub etag: String,
    /// Whether this is a page (gets the security policy headers).
    pub is_page: bool,
}

/// The page served at `route` (`/`, `/station`, `/audit`).
pub fn page(route: &str) -> Option<Asset> {
    let (_, file, _) = PAGES.iter().find(|(r, _, _)| *r == route)?;
    load(file, true)
}

/// The asset at `path` below [`ASSET_PREFIX`] (`js/hall.js`). The pages themselves are only
/// served at their routes; a path with `..`, a hidden segment or a backslash is refused.
pub fn asset(path: &str) -> Option<Asset> {
    let unsafe_path = path.is_empty()
        || path.contains('\\')
        || path
            .split('/')
            .any(|seg| seg.is_empty() || seg.starts_with('.'));
    if unsafe_path || PAGES.iter().any(|(_, f, _)| *f == path) {
        return None;
    }
    load(path, false)
}

/// The icon every page links (`/ui/favicon.svg`), for `/favicon.ico` too.
pub fn favicon() -> Option<Asset> {
    load("favicon.svg", false)
}

/// Every asset file name (for tests and the codemap).
pub fn files() -> impl Iterator<Item = Cow<'static, str>> {
    Assets::iter()
}

fn load(file: &str, is_page: bool) -> Option<Asset> {
    let f = Assets::get(file)?;
    let hash = f.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Some(Asset {
        body: f.data,
        content_type: content_type(file),
        etag,
        is_page,
    })
}

/// The `Content-Type` for a file name, by its extension.
pub fn content_type(file: &str) -> &'static str {
    let ext = file.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "md" | "txt" => "text/plain; charset=utf-8",
        _ if file.ends_with("LICENSE") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `hallctl central`'s national overview page: one row per hall, refreshed from `/api/halls`
/// every two seconds. Self-contained (no external scripts, styles or fonts).
pub const CENTRAL_HTML: &str = include_str!("central.html");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn text(file: &str) -> String {
        String::from_utf8(Assets::get(file).expect(file).data.into_owned()).expect("UTF-8")
    }

    /// Every `/ui/...` a page links and every module a script imports is an asset: a renamed
    /// file cannot leave a page without its script.
    #[test]
    fn every_reference_resolves() {
        let mut checked = 0;
        for file in files() {
            let t = text(&file);
            if file.ends_with(".html") {
                for part in t.split(ASSET_PREFIX).skip(1) {
                    let path: String = part.chars().take_while(|c| *c != '"').collect();
                    assert!(asset(&path).is_some(), "{file} links {path}, not an asset");
                    checked += 1;
                }
            }
            if file.ends_with(".js") && !file.starts_with("vendor/") {
                let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
                for part in t.split(" from '").skip(1) {
                    let rel: String = part.chars().take_while(|c| *c != '\'').collect();
                    let mut segs: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
                    for seg in rel.split('/') {
                        match seg {
                            "." => {}
                            ".." => {
                                segs.pop();
                            }
                            s => segs.push(s),
                        }
                    }
                    let path = segs.join("/");
                    assert!(asset(&path).is_some(), "{file} imports {rel} ({path})");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 6, "the pages and modules reference each other");
    }

    #[test]
    fn every_page_links_the_icon_that_is_served() {
        for (_, file, _) in PAGES {
            assert!(
                text(file)
                    .contains(r#"<link rel="icon" href="/ui/favicon.svg" type="image/svg+xml">"#),
                "{file} links no icon: the browser would ask for /favicon.ico"
            );
        }
        let icon = favicon().expect("the icon");
        assert_eq!(icon.content_type, "image/svg+xml");
        assert!(!icon.is_page);
        assert!(String::from_utf8_lossy(&icon.body).starts_with("<svg "));
        assert!(asset("favicon.svg").is_some());
    }

    #[test]
    fn pages_are_served_at_their_routes_only() {
        for (route, file, _) in PAGES {
            let p = page(route).expect(route);
            assert!(p.is_page);
            assert_eq!(p.content_type, "text/html; charset=utf-8");
            assert!(asset(file).is_none(), "{file} is not also an asset");
        }
        assert!(page("/nope").is_none());
    }

    #[test]
    fn content_types_and_etags() {
        let js = asset("js/common.js").expect("common.js");
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert!(!js.is_page);
        assert_eq!(js.etag.len(), 34, "{}", js.etag);
        assert_eq!(js.etag, asset("js/common.js").unwrap().etag, "stable");
        assert_ne!(js.etag, asset("css/ui.css").unwrap().etag);
        assert_eq!(
            asset("css/ui.css").unwrap().content_type,
            "text/css; charset=utf-8"
        );
        assert_eq!(
            asset("vendor/uplot/LICENSE").unwrap().content_type,
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn paths_outside_the_assets_are_refused() {
        for p in [
            "",
            "../Cargo.toml",
            "js/../../Cargo.toml",
            "js//common.js",
            ".hidden",
            "js\\common.js",
            "hall.html",
        ] {
            assert!(asset(p).is_none(), "{p:?}");
        }
    }

    /// The chart library travels with its licence.
    #[test]
    fn the_vendored_library_keeps_its_licence() {
        assert!(text("vendor/uplot/LICENSE").contains("MIT License"));
        assert!(asset("vendor/uplot/uPlot.esm.js").is_some());
    }

    /// No page carries inline script or style (the security policy forbids them).
    #[test]
    fn pages_have_no_inline_script_or_style() {
        for (_, file, _) in PAGES {
            let t = text(file);
            for (i, _) in t.match_indices("<script") {
                let tag: String = t[i..].chars().take_while(|c| *c != '>').collect();
                assert!(tag.contains("src="), "{file}: inline script {tag}");
            }
            assert!(!t.contains("<style"), "{file}: inline style");
            assert!(!t.contains(" style=\""), "{file}: style attribute");
            assert!(!t.contains(" onclick="), "{file}: inline handler");
        }
    }
}
