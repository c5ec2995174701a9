//! The web client (`app/web`, built into a folder by `npm run build`): its
//! files, read into memory once at start, served at `/` (the page) and
//! `/assets/{file}` (the hashed bundle and stylesheet) with the page's
//! Content-Security-Policy and security headers.
//!
//! Only files that were in the folder at start are served, by exact name:
//! no path from a request ever reaches the file system.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;

/// The Content-Security-Policy of the web client's answers: scripts,
/// styles, fonts and requests from this origin only, no inline code, no
/// framing, no form posts anywhere.
pub(crate) const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The most bytes of web client files read at start (the bundle is about
/// 250 KB): a wrong `--web-dir` (a home folder) is refused, not slurped.
const MAX_TOTAL_BYTES: u64 = 32 << 20;

/// Why the web client's folder cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    /// The folder has no `index.html`: not a built web client.
    #[error("{0}: no index.html (build the web client: npm --prefix app/web run build)")]
    NoIndex(PathBuf),
    /// A file or the folder could not be read.
    #[error("{path}: {source}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The files add up to more than [`MAX_TOTAL_BYTES`].
    #[error("{0}: over {MAX_TOTAL_BYTES} bytes of files; is this the built web client?")]
    TooLarge(PathBuf),
}

/// One file: its bytes and media type.
#[derive(Debug, Clone)]
struct File {
    bytes: Bytes,
    media_type: &'static str,
}

/// The web client's files, in memory.
#[derive(Debug)]
pub(crate) struct WebAssets {
    index: File,
    /// Files of `assets/`, by name.
    assets: HashMap<String, File>,
}

impl WebAssets {
    /// Reads `dir/index.html` and every file directly in `dir/assets/`.
    pub(crate) fn load(dir: &Path) -> Result<Self, WebError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| WebError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let index_path = dir.join("index.html");
        if !index_path.is_file() {
            return Err(WebError::NoIndex(dir.to_owned()));
        }
        let index = read(&index_path)?;
        let mut total = index.len() as u64;
        let mut assets = HashMap::new();
        let assets_dir = dir.join("assets");
        if assets_dir.is_dir() {
            let listing = std::fs::read_dir(&assets_dir).map_err(|source| WebError::Read {
                path: assets_dir.clone(),
                source,
            })?;
            for item in listing {
                let item = item.map_err(|source| WebError::Read {
                    path: assets_dir.clone(),
                    source,
                })?;
                let path = item.path();
                let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if !path.is_file() || !is_plain_name(&name) {
                    continue;
                }
                let bytes = read(&path)?;
                total += bytes.len() as u64;
                if total > MAX_TOTAL_BYTES {
                    return Err(WebError::TooLarge(dir.to_owned()));
                }
                let file = File {
                    bytes: Bytes::from(bytes),
                    media_type: media_type(&name),
                };
                assets.insert(name, file);
            }
        }
        Ok(Self {
            index: File {
                bytes: Bytes::from(index),
                media_type: "text/html; charset=utf-8",
            },
            assets,
        })
    }

    /// How many files are served besides the page.
    pub(crate) fn asset_count(&self) -> usize {
        self.assets.len()
    }
}

/// A file name a URL can carry as is: ASCII letters, digits, `.`, `-`,
/// `_`, not starting with a dot.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The media type of a file, by its extension.
fn media_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The routes of the web client: `/` and `/assets/{file}`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(assets: Arc<WebAssets>) -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/assets/{file}", get(asset))
        .with_state(assets)
}

async fn page(State(assets): State<Arc<WebAssets>>) -> Response {
    // The page names the current bundle: always asked for again.
    answer(&assets.index, "no-cache")
}

async fn asset(State(assets): State<Arc<WebAssets>>, UrlPath(file): UrlPath<String>) -> Response {
    match assets.assets.get(&file) {
        // Names carry a hash of their content: cached for good.
        Some(f) => answer(f, "public, max-age=31536000, immutable"),
        None => ApiError::NotFound.into_response(),
    }
}

fn answer(file: &File, cache: &'static str) -> Response {
    let mut res = (StatusCode::OK, file.bytes.clone()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.media_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_served() {
        assert!(is_plain_name("main-CTZK4LWM.js"));
        assert!(is_plain_name("style-ARH5AY73.css"));
        for bad in ["", ".env", "../x", "a/b", "a\\b", "é.js", "a b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_folder_without_a_page_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            WebAssets::load(dir.path()),
            Err(WebError::NoIndex(_))
        ));
    }

    #[test]
    fn the_page_and_the_assets_are_read_with_their_media_types() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/main-1.js"), "x").unwrap();
        std::fs::write(dir.path().join("assets/style-1.css"), "y").unwrap();
        std::fs::write(dir.path().join("assets/.hidden"), "z").unwrap();
        let web = WebAssets::load(dir.path()).unwrap();
        assert_eq!(web.asset_count(), 2);
        assert_eq!(
            web.assets["main-1.js"].media_type,
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            web.assets["style-1.css"].media_type,
            "text/css; charset=utf-8"
        );
    }
}
