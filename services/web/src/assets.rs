//! The pages and their scripts, styles and libraries, compiled into the binary: `ww dev` shows
//! the app with no separate build. Each file is gzip-compressed once, on first use, and served
//! with a strong `ETag` (revalidated on every load, `304` when unchanged), `nosniff`, and on the
//! pages the Content-Security-Policy that allows no inline script, no `eval` and nothing from
//! another origin.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Only our own files; no inline script or style attribute in markup, no `eval`; data and
/// object URLs only for the photo the person picked; the WebSocket and API on this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One file: where it is served and what it is.
struct Source {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Source { path: $path, content_type: $type, body: include_bytes!(concat!("../assets/", $file)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

static SOURCES: &[Source] = &[
    asset!("/", "index.html", HTML),
    asset!("/dashboard", "dashboard.html", HTML),
    asset!("/assets/app.css", "app.css", CSS),
    asset!("/assets/api.js", "api.js", JS),
    asset!("/assets/ui.js", "ui.js", JS),
    asset!("/assets/app.js", "app.js", JS),
    asset!("/assets/chat.js", "chat.js", JS),
    asset!("/assets/claim.js", "claim.js", JS),
    asset!("/assets/board.js", "board.js", JS),
    asset!("/assets/dashboard.js", "dashboard.js", JS),
    asset!("/assets/favicon.svg", "favicon.svg", "image/svg+xml"),
    asset!("/assets/vendor/preact-htm.js", "vendor/preact-htm.js", JS),
    asset!("/assets/vendor/uPlot.iife.min.js", "vendor/uPlot.iife.min.js", JS),
    asset!("/assets/vendor/uPlot.min.css", "vendor/uPlot.min.css", CSS),
];

/// A file ready to serve.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub plain: Bytes,
    pub gzip: Bytes,
    pub etag: HeaderValue,
    /// The gzip body is another representation: another tag.
    pub gzip_etag: HeaderValue,
}

impl Asset {
    fn is_page(&self) -> bool {
        self.content_type == HTML
    }
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| SOURCES.iter().map(prepare).collect());

fn prepare(source: &Source) -> Asset {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let gzip = encoder.write_all(source.body).and_then(|()| encoder.finish()).unwrap_or_default();
    let digest = Sha256::digest(source.body);
    let tag: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    Asset {
        path: source.path,
        content_type: source.content_type,
        plain: Bytes::from_static(source.body),
        gzip: Bytes::from(gzip),
        etag: HeaderValue::from_str(&format!("\"{tag}\"")).unwrap_or(HeaderValue::from_static("\"0\"")),
        gzip_etag: HeaderValue::from_str(&format!("\"{tag}-gz\"")).unwrap_or(HeaderValue::from_static("\"0-gz\"")),
    }
}

/// Every file, as served.
pub fn all() -> &'static [Asset] {
    &ASSETS
}

pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused =
                parts.any(|p| matches!(p.trim().strip_prefix("q="), Some(q) if q.trim().parse::<f32>() == Ok(0.0)));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
    })
}

/// The response for `asset`, honouring `If-None-Match` and `Accept-Encoding`.
pub fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let gzip = accepts_gzip(request);
    let etag = if gzip { &asset.gzip_etag } else { &asset.etag };
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if asset.is_page() {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    let unchanged =
        request.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
            |tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == etag.to_str().unwrap_or("")
            },
        );
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (headers, asset.gzip.clone()).into_response()
    } else {
        (headers, asset.plain.clone()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_there_compressed_and_tagged() {
        for a in all() {
            assert!(!a.plain.is_empty(), "{}", a.path);
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a.gzip[..]), &mut plain).unwrap();
            assert_eq!(plain, a.plain, "{}", a.path);
        }
        let unique: std::collections::HashSet<_> = all().iter().map(|a| a.etag.clone()).collect();
        assert_eq!(unique.len(), all().len());
    }

    #[test]
    fn pages_load_no_inline_script_or_style() {
        for a in all().iter().filter(|a| a.is_page()) {
            let page = std::str::from_utf8(&a.plain).unwrap();
            let lower = page.to_ascii_lowercase();
            let mut rest = lower.as_str();
            while let Some(at) = rest.find("<script") {
                let tag_end = rest[at..].find('>').unwrap() + at;
                assert!(rest[at..tag_end].contains(" src="), "{}: inline <script> in {}", a.path, &rest[at..tag_end]);
                rest = &rest[tag_end..];
            }
            assert!(!lower.contains("<style"), "{}: inline <style>", a.path);
            assert!(!lower.contains(" style="), "{}: style attribute", a.path);
            assert!(!lower.contains(" onclick=") && !lower.contains(" onload="), "{}: inline handler", a.path);
        }
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br, zstd"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
