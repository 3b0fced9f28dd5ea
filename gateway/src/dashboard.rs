//! The browser dashboard (`web/`, built by Vite into `web/dist`), served at
//! `/` from the gateway's own origin, so its gRPC-Web calls are same-origin
//! and need no CORS setting.
//!
//! The built files are read once at start and kept in memory, each also
//! gzipped once: a few hundred kilobytes that every page load asks for.
//! Vite names the files under `assets/` by their content's hash, so those
//! are cached for good; `index.html` is revalidated on every load, so a new
//! build reaches browsers at once.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::body::Body;

use crate::server::text;

/// The dashboard's files by the path they are served at.
pub struct Dashboard {
    assets: HashMap<String, Asset>,
    /// Where the files were looked for, for the answer when none were found.
    dir: PathBuf,
}

struct Asset {
    body: Bytes,
    /// Kept only when smaller than the plain body.
    gzipped: Option<Bytes>,
    content_type: &'static str,
    cache_control: &'static str,
}

impl Dashboard {
    /// Reads every file under `dir`. A missing directory is not an error:
    /// the gateway serves every protocol without it, and `/` says how to
    /// build it.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let mut assets = HashMap::new();
        if dir.is_dir() {
            let mut files = Vec::new();
            collect_files(dir, &mut files)?;
            for file in files {
                let relative = file.strip_prefix(dir).expect("collected under dir");
                let path = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
                let body = Bytes::from(std::fs::read(&file)?);
                assets.insert(path.clone(), Asset::new(&path, body)?);
            }
        }
        Ok(Self { assets, dir: dir.to_owned() })
    }

    /// How many files it serves.
    pub fn file_count(&self) -> usize {
        self.assets.len()
    }

    /// Whether this request is for the dashboard: a GET or HEAD of `/` or of
    /// one of its files. Every other path stays with the API.
    pub fn serves(&self, request: &Request<Body>) -> bool {
        matches!(*request.method(), Method::GET | Method::HEAD)
            && (request.uri().path() == "/" || self.assets.contains_key(request.uri().path()))
    }

    pub fn answer(&self, request: &Request<Body>) -> Response<Body> {
        let path = match request.uri().path() {
            "/" => "/index.html",
            path => path,
        };
        let Some(asset) = self.assets.get(path) else {
            let message = format!(
                "The dashboard is not built: `make web` builds it into web/dist (this gateway looked in {:?}; \
                 see --dashboard-dir). Every API is served without it.\n",
                self.dir
            );
            return text(StatusCode::NOT_FOUND, message, "text/plain; charset=utf-8");
        };
        let gzip = asset.gzipped.as_ref().filter(|_| accepts_gzip(request));
        let body = gzip.unwrap_or(&asset.body).clone();
        let mut response = Response::new(if request.method() == Method::HEAD {
            Body::empty()
        } else {
            Body::new(http_body_util::Full::new(body.clone()))
        });
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(asset.cache_control));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if gzip.is_some() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

impl Asset {
    fn new(path: &str, body: Bytes) -> std::io::Result<Self> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&body)?;
        let compressed = encoder.finish()?;
        let gzipped = (compressed.len() < body.len()).then(|| Bytes::from(compressed));
        let cache_control =
            if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        Ok(Self { body, gzipped, content_type: content_type_of(path), cache_control })
    }
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn content_type_of(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn accepts_gzip(request: &Request<Body>) -> bool {
    crate::transcode::compression::accepts_gzip(request.headers().get(header::ACCEPT_ENCODING))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, accept_encoding: Option<&str>) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(encodings) = accept_encoding {
            builder = builder.header(header::ACCEPT_ENCODING, encodings);
        }
        builder.body(Body::empty()).unwrap()
    }

    fn built() -> (tempfile::TempDir, Dashboard) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html><title>WizData</title>".repeat(20)).unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/index-1a2b.js"), "console.log('chart');".repeat(50)).unwrap();
        std::fs::write(dir.path().join("favicon.svg"), "<svg/>").unwrap();
        let dashboard = Dashboard::load(dir.path()).unwrap();
        (dir, dashboard)
    }

    #[test]
    fn serves_the_page_at_the_root_and_hashed_assets_for_good() {
        let (_dir, dashboard) = built();
        assert_eq!(dashboard.file_count(), 3);
        let root = dashboard.answer(&request("GET", "/", None));
        assert_eq!(root.status(), StatusCode::OK);
        assert_eq!(root.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(root.headers()[header::CACHE_CONTROL], "no-cache");
        let script = dashboard.answer(&request("GET", "/assets/index-1a2b.js", None));
        assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(script.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(script.headers()[header::CONTENT_LENGTH], "1050");
    }

    #[test]
    fn gzips_for_callers_that_accept_it_and_not_when_it_would_grow() {
        let (_dir, dashboard) = built();
        let gzipped = dashboard.answer(&request("GET", "/assets/index-1a2b.js", Some("br, gzip")));
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
        let length: usize = gzipped.headers()[header::CONTENT_LENGTH].to_str().unwrap().parse().unwrap();
        assert!(length < 1050, "{length}");
        let tiny = dashboard.answer(&request("GET", "/favicon.svg", Some("gzip")));
        assert!(!tiny.headers().contains_key(header::CONTENT_ENCODING));
    }

    #[test]
    fn only_gets_of_its_own_files_are_its_own() {
        let (_dir, dashboard) = built();
        assert!(dashboard.serves(&request("GET", "/", None)));
        assert!(dashboard.serves(&request("HEAD", "/favicon.svg", None)));
        assert!(!dashboard.serves(&request("POST", "/", None)));
        assert!(!dashboard.serves(&request("GET", "/v1/symbols", None)));
        assert!(!dashboard.serves(&request("GET", "/assets/../index.html", None)));
        assert!(!dashboard.serves(&request("GET", "/../Cargo.toml", None)));
    }

    #[test]
    fn without_a_build_the_root_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let dashboard = Dashboard::load(&dir.path().join("dist")).unwrap();
        assert_eq!(dashboard.file_count(), 0);
        assert!(dashboard.serves(&request("GET", "/", None)));
        let answer = dashboard.answer(&request("GET", "/", None));
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }
}
