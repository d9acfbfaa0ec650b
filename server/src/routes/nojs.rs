//! The challenge page as the server fills it in for each request: its text
//! in the visitor's language (see [`crate::locale`]), with that language's
//! catalog for the page's script, and the `<noscript>` form that works
//! without JavaScript (the command to run, with this site's real address,
//! and the `?redir=` to come back to); and the result pages of that form
//! (`POST /api/token`), styled like the page and in the same language.
//!
//! Everything put into HTML here goes through [`escape_html`]: the address
//! and `redir` come from the request, so they are attacker-written; the
//! catalogs' texts are escaped too, so they hold no markup.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::config::Config;
use crate::locale::Locale;

/// What a `{{slot}}` of `frontend/index.html` is filled with for one
/// request.
#[derive(Debug)]
pub(crate) struct PageSlots<'a> {
    pub locale: &'static Locale,
    /// The page's address, as the command line shows it (`powgate solve
    /// <address>`): `{{page_url}}`, and `{command}` inside a text.
    pub page_url: &'a str,
    /// The request's `?redir=`: `{{redir}}`.
    pub redir: &'a str,
    /// The request's `?lang=`, kept by the no-JS form so that its result
    /// page speaks the same language: `{{lang_param}}`.
    pub lang_param: &'a str,
}

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

/// The challenge page with its slots filled in, escaped:
/// - `{{t:key}}`: the text of `key` in the visitor's language, where
///   `{command}`, `{program}` and `{cargo}` become the command line and
///   program names in `<code>`;
/// - `{{lang}}`, `{{dir}}`: the language's tag and direction;
/// - `{{messages}}`: its catalog as JSON, for a `<script
///   type="application/json">`;
/// - `{{page_url}}`, `{{redir}}`, `{{lang_param}}`: see [`PageSlots`].
///
/// An unknown slot is left as it is, for the tests to see.
pub(crate) fn fill_page(template: &str, slots: &PageSlots<'_>) -> String {
    let command = format!("<code>powgate solve {}</code>", escape_html(slots.page_url));
    let mut out = String::with_capacity(template.len() + slots.locale.page_json().len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let slot = &rest[start + 2..start + len];
        match slot {
            "page_url" => out.push_str(&escape_html(slots.page_url)),
            "redir" => out.push_str(&escape_html(slots.redir)),
            "lang_param" => out.push_str(&escape_html(slots.lang_param)),
            "lang" => out.push_str(&escape_html(slots.locale.tag())),
            "dir" => out.push_str(slots.locale.dir()),
            "messages" => out.push_str(slots.locale.page_json()),
            _ => match slot.strip_prefix("t:") {
                Some(key) => out.push_str(
                    &escape_html(slots.locale.text(key))
                        .replace("{command}", &command)
                        .replace("{program}", "<code>powgate</code>")
                        .replace("{cargo}", "<code>cargo</code>"),
                ),
                None => out.push_str(&rest[start..start + len + 2]),
            },
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A result page of the token form: a heading, one sentence, and where to
/// go next (`title`, `message` and the link's label are catalog keys, said
/// in `locale`), styled by the page's own stylesheets. Served at
/// `…/api/token`, so `../` is the page's directory.
pub(crate) fn result_page(
    status: StatusCode,
    locale: &Locale,
    title: &str,
    message: &str,
    next: (&str, &str),
) -> Response {
    let (href, label) = next;
    let body = format!(
        "<!doctype html>\n<html lang=\"{lang}\" dir=\"{dir}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n\
         <link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"stylesheet\" href=\"../shared/base.css\">\n\
         <link rel=\"stylesheet\" href=\"../style.css\">\n</head>\n\
         <body data-state=\"{state}\">\n<main>\n<h1>{title}</h1>\n\
         <section class=\"card{class}\">\n<p>{message}</p>\n\
         <p><a class=\"button-link\" href=\"{href}\">{label}</a></p>\n</section>\n</main>\n</body>\n</html>\n",
        lang = escape_html(locale.tag()),
        dir = locale.dir(),
        title = escape_html(locale.text(title)),
        message = escape_html(locale.text(message)),
        href = escape_html(href),
        label = escape_html(locale.text(label)),
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
    resp.headers_mut().insert(
        header::VARY,
        header::HeaderValue::from_static("Accept-Language"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locale;

    fn slots<'a>(locale: &'static Locale, redir: &'a str) -> PageSlots<'a> {
        PageSlots {
            locale,
            page_url: "https://example.com/",
            redir,
            lang_param: "",
        }
    }

    /// `?redir="><script>…` must stay text inside the hidden input.
    #[test]
    fn a_redir_with_markup_is_escaped_in_the_noscript_form() {
        let page = fill_page(
            r#"<code>powgate solve {{page_url}}</code><input name="redir" value="{{redir}}">"#,
            &slots(locale::english(), r#""><script>alert(1)</script>"#),
        );
        assert_eq!(
            page,
            "<code>powgate solve https://example.com/</code><input name=\"redir\" value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\">"
        );
    }

    fn challenge_page(locale: &'static Locale) -> String {
        let (_, _, bytes) = crate::routes::pages::find("index.html").unwrap();
        fill_page(&String::from_utf8_lossy(bytes), &slots(locale, "/docs"))
    }

    #[test]
    fn the_challenge_page_is_filled_in_every_language_leaving_no_slot_or_key() {
        for locale in locale::all() {
            let page = challenge_page(locale);
            let tag = locale.tag();
            assert!(!page.contains("{{"), "{tag}: a slot is left");
            assert!(
                page.contains(&format!("<html lang=\"{tag}\" dir=\"ltr\">")),
                "{tag}"
            );
            assert!(page.contains(&format!(
                "<h1 id=\"title\" tabindex=\"-1\">{}</h1>",
                escape_html(locale.text("title"))
            )));
            assert!(
                page.contains("<code>powgate solve https://example.com/</code>"),
                "{tag}"
            );
            // Every {{t:key}} named a key: a missing one would show itself.
            let (_, _, bytes) = crate::routes::pages::find("index.html").unwrap();
            let template = String::from_utf8_lossy(bytes);
            for key in template
                .split("{{t:")
                .skip(1)
                .filter_map(|s| s.split_once("}}"))
            {
                assert_ne!(
                    locale::english().text(key.0),
                    key.0,
                    "no English text for {}",
                    key.0
                );
            }
        }
        let de = challenge_page(locale::all().iter().find(|l| l.tag() == "de").unwrap());
        assert!(de.contains("<title>Ihr Browser wird geprüft</title>"));
        assert!(!de.contains("Checking your browser"));
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
