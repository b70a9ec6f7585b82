//! nginx configuration from the templates in `templates/nginx/`.

use std::path::Path;
use std::sync::OnceLock;

use tera::{Context, Tera};

use super::{Domain, Error, Settings};

fn templates() -> &'static Tera {
    static TEMPLATES: OnceLock<Tera> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut tera = Tera::default();
        tera.add_raw_templates([
            (
                "site.conf",
                include_str!("../../templates/nginx/site.conf.tera"),
            ),
            (
                "common.conf",
                include_str!("../../templates/nginx/common.conf.tera"),
            ),
            (
                "main.conf",
                include_str!("../../templates/nginx/main.conf.tera"),
            ),
            (
                "stream.conf",
                include_str!("../../templates/nginx/stream.conf.tera"),
            ),
        ])
        .expect("the nginx templates are valid");
        // nginx, not HTML: nothing is escaped (what goes in is checked instead).
        tera.autoescape_on(Vec::new());
        tera
    })
}

/// Whether `text` can stand in an nginx file unquoted: a host name, a path, a file name.
fn plain(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~' | ':'))
}

fn render(name: &str, context: &Context, host: &str) -> Result<String, Error> {
    templates()
        .render(name, context)
        .map_err(|source| Error::Render {
            host: host.to_owned(),
            source,
        })
}

fn unsafe_text(host: &str, what: &str) -> Error {
    Error::Render {
        host: host.to_owned(),
        source: tera::Error::msg(format!("`{what}` cannot go into an nginx configuration")),
    }
}

/// The configuration of one host.
pub fn render_site(domain: &Domain, settings: &Settings) -> Result<String, Error> {
    let host = &domain.host;
    let mut texts: Vec<String> = vec![host.clone(), settings.challenges.display().to_string()];
    texts.extend(domain.routes.iter().map(|r| r.path.clone()));
    texts.extend(domain.routes.iter().filter_map(|r| r.upstream.clone()));
    texts.extend(settings.resolver.clone());
    if let Some(tls) = &domain.tls {
        texts.push(tls.certificate.display().to_string());
        texts.push(tls.key.display().to_string());
    }
    if let Some(include) = &settings.include {
        texts.push(include.display().to_string());
    }
    if let Some(bad) = texts.iter().find(|t| !plain(t)) {
        return Err(unsafe_text(host, bad));
    }
    let mut context = Context::new();
    context.insert("domain", host);
    context.insert("host", host);
    context.insert("routes", &domain.routes);
    context.insert("tls", &domain.tls);
    context.insert("http_port", &settings.http_port);
    context.insert("https_port", &settings.https_port);
    context.insert("challenges", &settings.challenges);
    context.insert("include", &settings.include);
    context.insert(
        "upstreams",
        &domain.routes.iter().any(|r| r.upstream.is_some()),
    );
    render("site.conf", &context, host)
}

/// The stream server of one TCP port of `domain`'s apps; `None` while a TLS stream waits for
/// its certificate.
pub fn render_stream(domain: &Domain, stream: &super::Stream) -> Result<Option<String>, Error> {
    let tls = if stream.plain {
        None
    } else {
        domain.tls.as_ref()
    };
    if !stream.plain && tls.is_none() {
        return Ok(None);
    }
    let mut context = Context::new();
    context.insert("stream", stream);
    context.insert("tls", &tls);
    render("stream.conf", &context, &domain.host).map(Some)
}

/// What every site shares (the websocket `Connection` header map).
pub fn render_common() -> String {
    render("common.conf", &Context::new(), "-").expect("the common template renders")
}

/// The main configuration of Nua's own nginx, including the sites of `sites`, and its
/// streams when nginx has the stream module (`stream_module`, the file to load).
pub fn render_main(
    prefix: &Path,
    sites: &Path,
    settings: &Settings,
    stream_module: Option<&Path>,
) -> Result<String, Error> {
    for path in [prefix, sites] {
        if !plain(&path.display().to_string()) {
            return Err(unsafe_text("-", &path.display().to_string()));
        }
    }
    let mut context = Context::new();
    context.insert("prefix", prefix);
    context.insert("sites", sites);
    context.insert("http_port", &settings.http_port);
    context.insert("stream_module", &stream_module);
    context.insert("resolver", &settings.resolver);
    render("main.conf", &context, "-")
}
