//! The no-JavaScript path: the challenge page with its `<noscript>` form
//! filled in for this request (the command to run, with this site's real
//! address, and the `?redir=` to come back to), and the result pages of
//! that form (`POST /api/token`), styled like the page.
//!
//! Everything put into HTML here goes through [`escape_html`]: the address
//! and `redir` come from the request, so they are attacker-written.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::config::Config;

/// Stands in `frontend/index.html` for the page's address, as the command
/// line shows it (`powgate solve <address>`).
pub(crate) const PAGE_URL_SLOT: &str = "{{page_url}}";
/// Stands in `frontend/index.html` for the `?redir=` of the request.
pub(crate) const REDIR_SLOT: &str = "{{redir}}";

/// The text as HTML text or a quoted attribute value.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `redir` parameter of a raw query string, decoded; empty when absent.
pub(crate) fn redir_param(query: Option<&str>) -> String {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("redir="))
        .map(|v| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .next()
        .unwrap_or_default()
}

/// The address to give `powgate solve`: `public_url` when configured (the
/// one the operator vouches for), else the page's own, from `Host` and the
/// scheme a trusted proxy reports (powgate itself speaks plain http).
/// A `Host` that is not a plain host\[:port\] is not repeated.
pub(crate) fn page_url(
    config: &Config,
    headers: &HeaderMap,
    path: &str,
    via_trusted_proxy: bool,
) -> String {
    if let Some(url) = &config.public_url {
        return format!("{url}/");
    }
    let forwarded = |name: &str| {
        via_trusted_proxy
            .then(|| headers.get(name).and_then(|v| v.to_str().ok()))
            .flatten()
            .map(|v| v.split(',').next().unwrap_or_default().trim().to_owned())
    };
    let host = forwarded("x-forwarded-host")
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        });
    let Some(host) = host else {
        return "https://this-site/".to_owned();
    };
    let https = forwarded("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
    // The page's directory: `/` or a proxy prefix such as `/.powgate/`.
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{}://{host}{dir}", if https { "https" } else { "http" })
}

/// The challenge page with its slots filled in, escaped.
pub(crate) fn fill_page(template: &str, page_url: &str, redir: &str) -> String {
    template
        .replace(PAGE_URL_SLOT, &escape_html(page_url))
        .replace(REDIR_SLOT, &escape_html(redir))
}

/// A result page of the token form: a heading, one sentence, and where to
/// go next, styled by the page's own stylesheets. Served at
/// `…/api/token`, so `../` is the page's directory.
pub(crate) fn result_page(
    status: StatusCode,
    title: &str,
    message: &str,
    next: (&str, &str),
) -> Response {
    let (href, label) = next;
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n\
         <link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"stylesheet\" href=\"../shared/base.css\">\n\
         <link rel=\"stylesheet\" href=\"../style.css\">\n</head>\n\
         <body data-state=\"{state}\">\n<main>\n<h1>{title}</h1>\n\
         <section class=\"card{class}\">\n<p>{message}</p>\n\
         <p><a class=\"button-link\" href=\"{href}\">{label}</a></p>\n</section>\n</main>\n</body>\n</html>\n",
        title = escape_html(title),
        message = escape_html(message),
        href = escape_html(href),
        label = escape_html(label),
        state = if status.is_success() {
            "solved"
        } else {
            "error"
        },
        class = if status.is_success() { "" } else { " error" },
    );
    let mut resp = (status, Html(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(super::pages::CONTENT_SECURITY_POLICY),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `?redir="><script>…` must stay text inside the hidden input.
    #[test]
    fn a_redir_with_markup_is_escaped_in_the_noscript_form() {
        let page = fill_page(
            r#"<code>powgate solve {{page_url}}</code><input name="redir" value="{{redir}}">"#,
            "https://example.com/",
            r#""><script>alert(1)</script>"#,
        );
        assert_eq!(
            page,
            "<code>powgate solve https://example.com/</code><input name=\"redir\" value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\">"
        );
    }

    #[test]
    fn the_redir_parameter_is_decoded() {
        assert_eq!(
            redir_param(Some("a=1&redir=%2Fdocs%3Fp%3D2&b=2")),
            "/docs?p=2"
        );
        assert_eq!(redir_param(Some("redir=a+b")), "a b");
        assert_eq!(redir_param(Some("x=1")), "");
        assert_eq!(redir_param(None), "");
    }

    #[test]
    fn the_page_url_is_public_url_or_the_request_host_never_a_placeholder() {
        let mut config = crate::config::RawConfig::default().validate().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "shop.example:8080".parse().unwrap());
        assert_eq!(
            page_url(&config, &headers, "/", false),
            "http://shop.example:8080/"
        );
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(
            page_url(&config, &headers, "/.powgate/", false),
            "http://shop.example:8080/.powgate/",
            "only a trusted proxy says https"
        );
        assert_eq!(
            page_url(&config, &headers, "/", true),
            "https://shop.example:8080/"
        );
        headers.insert(header::HOST, "evil\"<x>".parse().unwrap());
        assert_eq!(
            page_url(&config, &headers, "/", false),
            "https://this-site/"
        );
        config.public_url = Some("https://example.com/.powgate".into());
        assert_eq!(
            page_url(&config, &headers, "/", false),
            "https://example.com/.powgate/"
        );
    }
}
