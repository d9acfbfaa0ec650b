//! The language of the visitor's pages: which one a request gets, and the
//! words in it. The admin page stays English.
//!
//! The words live in `frontend/locales/<tag>.json`, embedded with the rest
//! of `frontend/` (see `build.rs`), one file per language: a flat object of
//! keys, each a text with named placeholders such as `{seconds}`, or, where
//! a count decides the wording, its CLDR plural forms (`{"one": …, "other":
//! …}`; the page picks one with `Intl.PluralRules`). Adding a language is
//! adding a file; `frontend/tests/locales.test.mjs` checks that it has every
//! English key with the same placeholders.
//!
//! A request gets its language in this order:
//! 1. `?lang=`, when it names (or matches, as below) a catalog;
//! 2. the `Accept-Language` tags, highest q-value first, each matched to the
//!    catalogs with CLDR's likely subtags (`de-AT` → de, `zh`, `zh-Hans` and
//!    `zh-SG` → zh-CN, `pt-BR` → pt; `zh-TW`, written in Traditional
//!    characters, does not match zh-CN);
//! 3. English.
//!
//! A key a catalog lacks is said in English: each catalog is merged over the
//! English one when loaded, so the server's pages and the page's script
//! (which gets its catalog embedded in the page) fall back alike.

use std::sync::LazyLock;

use fluent_langneg::{LanguageIdentifier, NegotiationStrategy, negotiate_languages};
use icu_locid_transform::LocaleExpander;
use serde_json::{Map, Value};

use crate::routes::pages;

/// The language spoken when nothing else matches, and the one every other
/// catalog falls back to key by key.
pub(crate) const ENGLISH: &str = "en";
/// Where the catalogs are among the embedded files.
const CATALOG_DIR: &str = "locales/";
/// Longer `Accept-Language` headers are ignored: a browser's is well under
/// 200 bytes, and a hostile one must not buy much matching work.
pub(crate) const MAX_ACCEPT_LANGUAGE: usize = 512;
/// At most this many of a header's tags are considered.
const MAX_TAGS: usize = 32;
/// Languages written right to left, for `<html dir>`.
const RIGHT_TO_LEFT: [&str; 4] = ["ar", "he", "fa", "ur"];

/// One language's catalog, merged over English.
#[derive(Debug)]
pub(crate) struct Locale {
    /// Its tag, the catalog's file name: `en`, `zh-CN`, …
    tag: String,
    /// The tag with its likely script and region added (`pt` →
    /// `pt-Latn-BR`), so that matching tells Simplified from Traditional
    /// Chinese.
    id: LanguageIdentifier,
    messages: Map<String, Value>,
    /// The messages as JSON safe to put inside a `<script
    /// type="application/json">`.
    page_json: String,
}

impl Locale {
    /// The BCP 47 tag, for `<html lang>`.
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    /// `rtl` or `ltr`, for `<html dir>`.
    pub(crate) fn dir(&self) -> &'static str {
        direction(&self.id)
    }

    /// The text of `key` (its `other` form if it has plural forms), or the
    /// key itself if not even English has it: a bug the tests catch, shown
    /// rather than hidden.
    pub(crate) fn text<'a>(&'a self, key: &'a str) -> &'a str {
        match self.messages.get(key) {
            Some(Value::String(s)) => s,
            Some(Value::Object(forms)) => forms.get("other").and_then(Value::as_str).unwrap_or(key),
            _ => key,
        }
    }

    /// The messages for the page's script, as JSON safe inside a
    /// `<script type="application/json">`.
    pub(crate) fn page_json(&self) -> &str {
        &self.page_json
    }
}

/// Every embedded catalog, English first.
static LOCALES: LazyLock<Vec<Locale>> = LazyLock::new(load);

fn load() -> Vec<Locale> {
    let parse = |path: &str, bytes: &[u8]| match serde_json::from_slice::<Map<String, Value>>(bytes)
    {
        Ok(map) => Some(map),
        Err(e) => {
            // The tests parse every catalog, so this is a broken build.
            tracing::error!(%path, error = %e, "an embedded catalog is not a JSON object; skipped");
            None
        }
    };
    let english = pages::find(&format!("{CATALOG_DIR}{ENGLISH}.json"))
        .and_then(|(_, _, bytes)| parse(ENGLISH, bytes))
        .unwrap_or_default();
    let mut locales = Vec::new();
    for (path, bytes) in pages::embedded_under(CATALOG_DIR) {
        let Some(tag) = path.strip_suffix(".json") else {
            continue;
        };
        let Ok(mut id) = tag.parse::<LanguageIdentifier>() else {
            tracing::error!(%path, "a catalog's file name is not a language tag; skipped");
            continue;
        };
        let Some(own) = parse(path, bytes) else {
            continue;
        };
        let mut messages = english.clone();
        messages.extend(own);
        LocaleExpander::new().maximize(&mut id);
        let page_json = script_safe_json(&Value::Object(messages.clone()));
        locales.push(Locale {
            tag: tag.to_owned(),
            id,
            messages,
            page_json,
        });
    }
    locales.sort_by_key(|l| l.tag != ENGLISH);
    if locales.first().is_none_or(|l| l.tag != ENGLISH) {
        tracing::error!("no English catalog is embedded; the pages show their keys");
        locales.insert(
            0,
            Locale {
                tag: ENGLISH.to_owned(),
                id: "en-Latn-US".parse().unwrap_or_default(),
                messages: Map::new(),
                page_json: "{}".to_owned(),
            },
        );
    }
    locales
}

/// `rtl` for the languages written right to left, else `ltr`.
fn direction(id: &LanguageIdentifier) -> &'static str {
    if RIGHT_TO_LEFT.contains(&id.language.as_str()) {
        "rtl"
    } else {
        "ltr"
    }
}

/// JSON that cannot end the `<script>` element holding it: `<`, `>` and `&`
/// are written as `\u003c`, … (the same string to a JSON parser).
fn script_safe_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// English.
pub(crate) fn english() -> &'static Locale {
    &LOCALES[0]
}

/// Every language there is a catalog for.
#[cfg(test)]
pub(crate) fn all() -> &'static [Locale] {
    &LOCALES
}

/// The language for a request: `lang` (its `?lang=`, or the no-JS form's
/// field) if that matches a catalog, else its `Accept-Language`, else
/// English.
pub(crate) fn negotiate(lang: Option<&str>, accept_language: Option<&str>) -> &'static Locale {
    lang.and_then(plausible_tag)
        .and_then(|lang| best_match(&lang))
        .or_else(|| accept_language.and_then(best_match))
        .unwrap_or_else(english)
}

/// The catalog best matching a list of language tags (an `Accept-Language`
/// value, or one tag), if any does.
fn best_match(tags: &str) -> Option<&'static Locale> {
    let requested = preferences(tags);
    let available: Vec<&LanguageIdentifier> = LOCALES.iter().map(|l| &l.id).collect();
    let best = negotiate_languages(&requested, &available, None, NegotiationStrategy::Lookup);
    let best = best.first()?;
    LOCALES.iter().find(|l| std::ptr::eq(&l.id, **best))
}

/// The tags of an `Accept-Language` value, highest q-value first (the
/// header's order among equals). Tags with q=0 ("not this one"), a q-value
/// that is not a number in (0, 1], or that are not language tags (`*`,
/// garbage) are left out; so is everything, past [`MAX_ACCEPT_LANGUAGE`].
///
/// Written here rather than taken from a crate: fluent-langneg's parser
/// ignores q-values, and the `accept-language` crate keeps q=0 tags and
/// sorts a `q=NaN` with a comparison that is not a total order.
pub(crate) fn preferences(header: &str) -> Vec<LanguageIdentifier> {
    if header.len() > MAX_ACCEPT_LANGUAGE {
        return Vec::new();
    }
    let mut tags: Vec<(f32, LanguageIdentifier)> = header
        .split(',')
        .take(MAX_TAGS)
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let q = match parts.find_map(|p| {
                let p = p.trim();
                p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
            }) {
                None => 1.0,
                Some(q) => q.trim().parse::<f32>().ok()?,
            };
            if q.is_nan() || q <= 0.0 || q > 1.0 {
                return None;
            }
            Some((q, tag.parse::<LanguageIdentifier>().ok()?))
        })
        .filter(|(_, id)| !id.language.is_empty())
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0));
    tags.into_iter().map(|(_, id)| id).collect()
}

/// The `lang` parameter of a raw query string, decoded; None when absent.
pub(crate) fn lang_param(query: Option<&str>) -> Option<String> {
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("lang="))?;
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// `lang` when it can be a language tag (short, letters, digits and
/// hyphens; `_` is taken for `-`), else None.
fn plausible_tag(lang: &str) -> Option<String> {
    (!lang.is_empty()
        && lang.len() <= 35
        && lang
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    .then(|| lang.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(query: Option<&str>, header: Option<&str>) -> &'static str {
        negotiate(lang_param(query).as_deref(), header).tag()
    }

    #[test]
    fn every_embedded_catalog_loads_with_english_first() {
        let tags: Vec<&str> = all().iter().map(Locale::tag).collect();
        assert_eq!(tags[0], "en");
        for want in [
            "de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "uk", "zh-CN",
        ] {
            assert!(tags.contains(&want), "{want} is missing from {tags:?}");
        }
        assert_eq!(all().len(), pages::embedded_under(CATALOG_DIR).count());
    }

    #[test]
    fn the_highest_q_value_wins_whatever_the_order() {
        assert_eq!(tag(None, Some("en;q=0.3, de;q=0.9, fr;q=0.5")), "de");
        assert_eq!(
            tag(None, Some("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5")),
            "fr"
        );
        // Equal q-values keep the header's order.
        assert_eq!(tag(None, Some("nl;q=0.8, it;q=0.8")), "nl");
        // q=0 means "not this one".
        assert_eq!(tag(None, Some("ja;q=0, pl;q=0.1")), "pl");
        // An unsupported first choice gives way to a supported later one.
        assert_eq!(tag(None, Some("tlh, sv;q=0.9, uk;q=0.5")), "uk");
    }

    #[test]
    fn regional_and_script_variants_match_their_language() {
        assert_eq!(tag(None, Some("de-AT")), "de");
        assert_eq!(tag(None, Some("de-CH,en;q=0.5")), "de");
        assert_eq!(tag(None, Some("pt-BR")), "pt");
        assert_eq!(tag(None, Some("pt-PT")), "pt");
        assert_eq!(tag(None, Some("es-419")), "es");
        assert_eq!(tag(None, Some("en-GB,de;q=0.9")), "en");
        assert_eq!(tag(None, Some("ru-UA")), "ru");
        assert_eq!(tag(None, Some("ja-JP")), "ja");
        assert_eq!(tag(None, Some("FR-be")), "fr");
    }

    #[test]
    fn simplified_chinese_variants_get_zh_cn_and_traditional_does_not() {
        for header in ["zh", "zh-CN", "zh-Hans", "zh-SG", "zh-Hans-CN", "zh-cn"] {
            assert_eq!(tag(None, Some(header)), "zh-CN", "{header}");
        }
        assert_eq!(tag(None, Some("zh-TW")), "en");
        assert_eq!(tag(None, Some("zh-Hant-HK, de;q=0.5")), "de");
        // A Taiwanese browser that also lists plain zh gets zh-CN for it.
        assert_eq!(tag(None, Some("zh-TW,zh;q=0.9,en-US;q=0.8")), "zh-CN");
    }

    #[test]
    fn garbage_unknown_and_oversized_headers_get_english() {
        for header in [
            "",
            "*",
            ",,,;;;",
            "xx-notalang-!!",
            "de;q=NaN",
            "de;q=inf",
            "de;q=-1",
            "de;q=2",
            "de;q=abc",
            "tlh, x-klingon",
            "\u{1F600}",
        ] {
            assert_eq!(tag(None, Some(header)), "en", "{header:?}");
        }
        assert_eq!(tag(None, None), "en");
        // A hostile header beyond the cap is not read at all, even when it
        // starts with a language there is a catalog for.
        let huge = format!("de,{}", "x-aaaaaaaa;q=0.5,".repeat(100));
        assert!(huge.len() > MAX_ACCEPT_LANGUAGE);
        assert_eq!(tag(None, Some(&huge)), "en");
        // Many tags within the cap: only the first MAX_TAGS are read.
        let many = format!("{}de;q=1", "x-a;q=0.1,".repeat(40));
        assert!(many.len() <= MAX_ACCEPT_LANGUAGE);
        assert_eq!(tag(None, Some(&many)), "en");
    }

    #[test]
    fn lang_parameter_overrides_accept_language() {
        assert_eq!(tag(Some("lang=pl"), Some("de")), "pl");
        assert_eq!(tag(Some("redir=%2Fx&lang=zh-CN"), Some("de")), "zh-CN");
        assert_eq!(tag(Some("lang=zh"), None), "zh-CN");
        assert_eq!(tag(Some("lang=pt_BR"), None), "pt");
        assert_eq!(tag(Some("lang=uk"), Some("ru")), "uk");
        assert_eq!(tag(Some("lang=en"), Some("de")), "en");
    }

    #[test]
    fn an_unknown_or_malformed_lang_parameter_is_ignored() {
        assert_eq!(tag(Some("lang=xx"), Some("fr")), "fr");
        assert_eq!(tag(Some("lang=xx"), None), "en");
        assert_eq!(tag(Some("lang=%3Cscript%3E"), Some("it")), "it");
        assert_eq!(tag(Some("lang="), None), "en");
        assert_eq!(tag(Some("lang=%FF"), None), "en");
        assert_eq!(tag(Some(&format!("lang={}", "a".repeat(5000))), None), "en");
    }

    #[test]
    fn a_missing_key_falls_back_to_english_and_an_unknown_one_shows_itself() {
        let de = all().iter().find(|l| l.tag() == "de").unwrap();
        assert_eq!(de.text("title"), "Ihr Browser wird geprüft");
        assert_eq!(english().text("title"), "Checking your browser");
        // Every catalog has every key (the node test checks that), so take a
        // catalog and remove one to see the merge at work.
        let mut messages = english().messages.clone();
        messages.extend(de.messages.clone().into_iter().filter(|(k, _)| k != "copy"));
        assert_eq!(messages["copy"], "Copy");
        assert_eq!(de.text("no-such-key"), "no-such-key");
        assert_eq!(
            english().text("usuallyUnderMinutes"),
            "Usually under {count} minutes on this device."
        );
    }

    #[test]
    fn the_page_catalog_cannot_close_its_script_element() {
        for locale in all() {
            let json = locale.page_json();
            assert!(!json.contains('<'), "{}", locale.tag());
            let parsed: Value = serde_json::from_str(json).unwrap();
            assert_eq!(parsed["title"], locale.text("title"));
        }
        assert_eq!(
            script_safe_json(&serde_json::json!("</script><b>&")),
            r#""\u003c/script\u003e\u003cb\u003e\u0026""#
        );
    }

    #[test]
    fn only_right_to_left_scripts_get_dir_rtl() {
        assert!(all().iter().all(|l| l.dir() == "ltr"));
        for rtl in ["ar", "he-IL", "fa"] {
            assert_eq!(direction(&rtl.parse().unwrap()), "rtl", "{rtl}");
        }
    }
}
