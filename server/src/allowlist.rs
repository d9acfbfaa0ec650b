//! Requests that pass `/verify-token` without a token: health checks,
//! feeds, git clients, `/.well-known/`, `robots.txt`, an office network.
//!
//! A rule names one or more conditions, and matches when all of them do:
//! a client address in a CIDR, a User-Agent regex, or the original request
//! path.
//!
//! A path rule is the one an attacker aims at: the proxy and the
//! application behind it may read one path differently (`..;` is `..` to
//! Java servers, `%252e` is `.` to one that decodes twice, `#` ends the path
//! for some and not for others). So a path is compared only in its
//! [`plain_path`] form, and a path that has no such form is never
//! allowlisted: it needs a token like any other.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A rule as written in `config.toml` (`[[allowlist]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Shown in logs and as the `rule` label of `powgate_allowlist_matches_total`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A file (`/robots.txt`), matched exactly, or a directory
    /// (`/.well-known/`), matched at a `/` boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The old bare-prefix key, which let `/robots.txt.bak` through: kept
    /// only so that a config still using it fails with the fix in the
    /// message, rather than as an unknown field.
    #[serde(default, skip_serializing)]
    pub path_prefix: Option<String>,
}

impl RawRule {
    /// The rules shipped by default: ACME and other `/.well-known/` files,
    /// and `robots.txt`, which crawlers must be able to read.
    pub(crate) fn defaults() -> Vec<Self> {
        let path = |name: &str, p: &str| Self {
            name: name.into(),
            cidr: None,
            user_agent: None,
            path: Some(p.into()),
            path_prefix: None,
        };
        vec![
            path("well-known", "/.well-known/"),
            path("robots", "/robots.txt"),
        ]
    }
}

/// A validated rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    cidrs: Vec<IpNet>,
    user_agent: Option<Regex>,
    path: Option<PathRule>,
}

/// Which paths a path rule lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathRule {
    /// This path and no other (`/robots.txt`, never `/robots.txt.bak`).
    File(String),
    /// Anything under this directory; ends in `/`, so a match ends at a
    /// segment boundary (`/.well-known/x`, never `/.well-knownx`).
    Directory(String),
}

impl PathRule {
    fn parse(rule_name: &str, path: &str) -> Result<Self, String> {
        let plain = plain_path(path).map_err(|why| {
            format!("rule {rule_name:?}: path {path:?} cannot match any request: {why}")
        })?;
        if plain != path {
            return Err(format!(
                "rule {rule_name:?}: write path {path:?} as {plain:?}: requests are matched decoded"
            ));
        }
        let plain = plain.into_owned();
        Ok(if plain.ends_with('/') {
            Self::Directory(plain)
        } else {
            Self::File(plain)
        })
    }

    fn matches(&self, plain: &str) -> bool {
        match self {
            Self::File(file) => plain == file,
            Self::Directory(dir) => plain.starts_with(dir.as_str()),
        }
    }
}

/// What a request looks like to the allowlist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) ip: IpAddr,
    pub(crate) user_agent: Option<&'a str>,
    /// The original request's path and query, as the proxy reports it.
    pub(crate) path: Option<&'a str>,
}

impl Rule {
    /// # Errors
    /// A message naming the rule and the bad condition.
    pub(crate) fn compile(raw: &RawRule) -> Result<Self, String> {
        if let Some(old) = &raw.path_prefix {
            let fix = if old.ends_with('/') {
                format!("path = {old:?}")
            } else {
                format!("path = {old:?} for that one file, or path = \"{old}/\" for a directory")
            };
            return Err(format!(
                "rule {:?}: path_prefix is no longer read, since a bare prefix matched more than \
                 it named (/robots.txt let /robots.txt.bak through); write {fix}",
                raw.name
            ));
        }
        let cidrs = raw
            .cidr
            .iter()
            .flat_map(|c| c.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                crate::client_ip::parse_net(c).ok_or_else(|| {
                    format!("rule {:?}: cidr {c:?} is not an address or CIDR", raw.name)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let user_agent = raw
            .user_agent
            .as_deref()
            .map(|re| {
                Regex::new(re).map_err(|e| {
                    format!("rule {:?}: user_agent is not a valid regex: {e}", raw.name)
                })
            })
            .transpose()?;
        let path = raw
            .path
            .as_deref()
            .map(|p| PathRule::parse(&raw.name, p))
            .transpose()?;
        if cidrs.is_empty() && user_agent.is_none() && path.is_none() {
            return Err(format!(
                "rule {:?} has no condition: give cidr, user_agent or path",
                raw.name
            ));
        }
        Ok(Self {
            name: raw.name.clone(),
            cidrs,
            user_agent,
            path,
        })
    }

    /// One rule on its own; only tests ask that, [`find`] asks
    /// [`Rule::matches_plain`].
    #[cfg(test)]
    fn matches(&self, s: &Subject<'_>) -> bool {
        self.matches_plain(s, s.path.and_then(|uri| plain_path(uri).ok()).as_deref())
    }

    /// Whether the rule matches, with the subject's path already made
    /// plain, since [`find`] tries every rule on one request.
    fn matches_plain(&self, s: &Subject<'_>, plain: Option<&str>) -> bool {
        (self.cidrs.is_empty() || self.cidrs.iter().any(|n| n.contains(&s.ip)))
            && self
                .user_agent
                .as_ref()
                .is_none_or(|re| s.user_agent.is_some_and(|ua| re.is_match(ua)))
            && self
                .path
                .as_ref()
                .is_none_or(|rule| plain.is_some_and(|p| rule.matches(p)))
    }
}

/// Why a path has no plain form. Shown only to operators, for a bad rule.
type NotPlain = &'static str;

/// The path of an original URI (its query dropped), decoded once, when every
/// reader would agree on it; else why not. A path is refused when it has:
///
/// - no leading `/` (an absolute-form `http://…` target), or an empty
///   segment (`//`), which nginx merges and applications may not;
/// - `#` anywhere: a browser never sends one, and nginx passes what follows
///   it on to the application, while a check that stops there sees only
///   the part before;
/// - a segment made only of dots (`.`, `..`, `...`) in any encoding: `..`
///   climbs out of the allowed directory, and Windows servers drop
///   trailing dots;
/// - a `;` (path parameters: Java servers read `..;` as `..`) or a `\`,
///   raw or escaped;
/// - an escape of `%` (`%252e`, which a server decoding twice reads as
///   `.`), of `/`, `?` or `#`, a malformed escape, or an escape or byte
///   that is not printable ASCII: overlong `%c0%ae` and `%e0%80%ae`, NUL,
///   control bytes, spaces, and full-width dots that Unicode normalisation
///   turns into `.`.
///
/// Refusing costs nothing legitimate: paths worth allowlisting (ACME
/// tokens, `robots.txt`, feeds, health checks) are plain ASCII. A path
/// without escapes is checked in place, without allocating, since this
/// runs on every `/verify-token`.
fn plain_path(uri: &str) -> Result<Cow<'_, str>, NotPlain> {
    if uri.contains('#') {
        return Err("it contains #");
    }
    let path = uri.split_once('?').map_or(uri, |(path, _query)| path);
    let rest = path.strip_prefix('/').ok_or("it does not start with /")?;
    let escaped = path.contains('%');
    let mut plain = String::new();
    let mut segments = rest.split('/').peekable();
    while let Some(raw) = segments.next() {
        let segment = decode_segment(raw)?;
        if segment.is_empty() && segments.peek().is_some() {
            return Err("it has an empty segment (//)");
        }
        if !segment.is_empty() && segment.bytes().all(|b| b == b'.') {
            return Err("it has a dot-segment");
        }
        if escaped {
            plain.push('/');
            plain.push_str(&segment);
        }
    }
    Ok(if escaped {
        Cow::Owned(plain)
    } else {
        Cow::Borrowed(path)
    })
}

/// One path segment with its escapes decoded, when it and they hold only
/// printable ASCII other than the characters that would split or re-decode
/// it in some reader.
fn decode_segment(raw: &str) -> Result<Cow<'_, str>, NotPlain> {
    const SPLITTERS: &[u8] = b";\\/?#%";
    let escaped = raw.contains('%');
    let mut decoded = Vec::new();
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        let byte = if b == b'%' {
            let (Some(hi), Some(lo)) = (bytes.next().and_then(hex), bytes.next().and_then(hex))
            else {
                return Err("it has a malformed %-escape");
            };
            hi << 4 | lo
        } else {
            b
        };
        if !byte.is_ascii_graphic() {
            return Err("it has a control, space or non-ASCII byte, raw or escaped");
        }
        if SPLITTERS.contains(&byte) {
            return Err("it has ; or \\, or an escaped % / ? #");
        }
        if escaped {
            decoded.push(byte);
        }
    }
    if !escaped {
        return Ok(Cow::Borrowed(raw));
    }
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| "it has a non-ASCII byte")
}

/// The value of one hex digit.
fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The first rule matching `s`.
pub(crate) fn find<'r>(rules: &'r [Rule], s: &Subject<'_>) -> Option<&'r Rule> {
    let plain = s.path.and_then(|uri| plain_path(uri).ok());
    rules.iter().find(|r| r.matches_plain(s, plain.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(cidr: Option<&str>, ua: Option<&str>, path: Option<&str>) -> RawRule {
        RawRule {
            name: "r".into(),
            cidr: cidr.map(Into::into),
            user_agent: ua.map(Into::into),
            path: path.map(Into::into),
            path_prefix: None,
        }
    }

    fn rule(cidr: Option<&str>, ua: Option<&str>, path: Option<&str>) -> Rule {
        Rule::compile(&raw(cidr, ua, path)).unwrap()
    }

    fn subject<'a>(ip: &str, ua: Option<&'a str>, path: Option<&'a str>) -> Subject<'a> {
        Subject {
            ip: ip.parse().unwrap(),
            user_agent: ua,
            path,
        }
    }

    /// Whether the default rules let `uri` through without a token.
    fn allowed_by_defaults(uri: &str) -> bool {
        let rules: Vec<Rule> = RawRule::defaults()
            .iter()
            .map(|r| Rule::compile(r).unwrap())
            .collect();
        find(&rules, &subject("203.0.113.9", None, Some(uri))).is_some()
    }

    /// Each attack, through both default rules: none may be allowlisted.
    fn assert_refused(attacks: &[&str]) {
        for uri in attacks {
            assert!(!allowed_by_defaults(uri), "{uri} was allowlisted");
        }
    }

    #[test]
    fn each_condition_and_their_conjunction() {
        let office = rule(Some("10.0.0.0/8, 192.0.2.1"), None, None);
        assert!(office.matches(&subject("10.1.2.3", None, None)));
        assert!(office.matches(&subject("192.0.2.1", None, None)));
        assert!(!office.matches(&subject("11.0.0.1", None, None)));
        let git = rule(None, Some("^git/"), None);
        assert!(git.matches(&subject("1.1.1.1", Some("git/2.43.0"), None)));
        assert!(!git.matches(&subject("1.1.1.1", Some("Mozilla/5.0 git/"), None)));
        assert!(!git.matches(&subject("1.1.1.1", None, None)));
        let feed = rule(Some("10.0.0.0/8"), None, Some("/feed.xml"));
        assert!(feed.matches(&subject("10.0.0.1", None, Some("/feed.xml?x=1"))));
        assert!(!feed.matches(&subject("8.8.8.8", None, Some("/feed.xml"))));
    }

    #[test]
    fn legitimate_allowlisted_paths_still_pass() {
        for uri in [
            "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
            "/.well-known/security.txt",
            "/.well-known/",
            "/robots.txt",
            "/robots.txt?x=1",
            // The query may hold anything but #: it is not part of the path.
            "/robots.txt?next=/../admin;x",
            // Escapes of plain characters decode to the path they name.
            "/%2Ewell-known/acme-challenge/abc",
            "/robots%2etxt",
        ] {
            assert!(allowed_by_defaults(uri), "{uri} was refused");
        }
    }

    #[test]
    fn dot_dot_semicolon_reaches_java_backends() {
        assert_refused(&[
            "/.well-known/..;/admin",
            "/robots.txt/..;/admin",
            "/.well-known/..;jsessionid=x/admin",
            "/.well-known/.;/admin",
            "/.well-known/acme-challenge;x/../../admin",
            "/.well-known/%3b/admin",
            "/.well-known/..%3b/admin",
        ]);
    }

    #[test]
    fn raw_and_encoded_dot_segments() {
        assert_refused(&[
            "/.well-known/../admin",
            "/.well-known/./../admin",
            "/.well-known/..",
            "/.well-known/%2e%2e/admin",
            "/.well-known/%2E%2E/admin",
            "/.well-known/.%2e/admin",
            "/.well-known/%2e./admin",
            "/.well-known/%2e/../admin",
            // Windows servers drop trailing dots: `...` is `..` to them.
            "/.well-known/.../admin",
        ]);
    }

    #[test]
    fn double_encoded_dot_segments() {
        assert_refused(&[
            "/.well-known/%252e%252e/admin",
            "/.well-known/%252E%252E/admin",
            "/.well-known/%25252e%25252e/admin",
            "/.well-known/%25/admin",
        ]);
    }

    #[test]
    fn overlong_utf8_dots() {
        assert_refused(&[
            "/.well-known/%c0%ae%c0%ae/admin",
            "/.well-known/%C0%AE%C0%AE/admin",
            "/.well-known/%e0%80%ae%e0%80%ae/admin",
            "/.well-known/%f0%80%80%ae%f0%80%80%ae/admin",
            // Full-width dots, which Unicode normalisation turns into `..`.
            "/.well-known/%ef%bc%8e%ef%bc%8e/admin",
            // IIS's %u escapes.
            "/.well-known/%u002e%u002e/admin",
        ]);
    }

    #[test]
    fn fragment_hides_the_rest_of_the_path_from_a_prefix_check() {
        assert_refused(&[
            "/.well-known/#/../../admin",
            "/robots.txt#/../admin",
            "/.well-known/x#",
            "/robots.txt?x=1#/../admin",
            "/.well-known/%23/../../admin",
        ]);
    }

    #[test]
    fn robots_txt_prefix_matched_other_files() {
        assert_refused(&[
            "/robots.txt.bak",
            "/robots.txtsecret/data",
            "/robots.txt/",
            "/robots.txt/x",
            "/robots.txt%2f..%2fadmin",
            "/robots.txt.",
            "/.well-known",
            "/.well-knownx/admin",
        ]);
    }

    #[test]
    fn backslashes_and_encoded_slashes() {
        assert_refused(&[
            "/.well-known/..\\admin",
            "/.well-known\\..\\admin",
            "/.well-known/..%5cadmin",
            "/.well-known/..%5Cadmin",
            "/.well-known/..%2fadmin",
            "/.well-known/%2F..%2Fadmin",
            "/.well-known/x%3f/../../admin",
        ]);
    }

    #[test]
    fn nul_control_and_space_bytes() {
        assert_refused(&[
            "/.well-known/%00/../admin",
            "/robots.txt%00.php",
            "/robots.txt%0a",
            "/.well-known/\t/admin",
            "/.well-known/%09/admin",
            "/.well-known/%7f",
            "/robots.txt%20",
            "/.well-known/.. /admin",
            "/.well-known/..%20/admin",
        ]);
    }

    #[test]
    fn empty_segments_malformed_escapes_and_odd_targets() {
        assert_refused(&[
            "//.well-known/x",
            "/.well-known//x",
            "/.well-known/%",
            "/.well-known/%2",
            "/.well-known/%zz",
            "/.well-known/%+1",
            "http://example.com/robots.txt",
            "*",
            "",
            "robots.txt",
        ]);
        let wk = rule(None, None, Some("/.well-known/"));
        assert!(
            !wk.matches(&subject("1.1.1.1", None, None)),
            "no path, no match"
        );
    }

    #[test]
    fn path_prefix_configs_fail_with_the_fix() {
        let old = |p: &str| {
            Rule::compile(&RawRule {
                path_prefix: Some(p.into()),
                ..raw(None, None, None)
            })
            .unwrap_err()
        };
        let file = old("/robots.txt");
        assert!(file.contains("path = \"/robots.txt\""), "{file}");
        assert!(file.contains("\"/robots.txt/\""), "{file}");
        let dir = old("/.well-known/");
        assert!(dir.contains("write path = \"/.well-known/\""), "{dir}");
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let bad = |c: Option<&str>, u: Option<&str>, p: Option<&str>| {
            Rule::compile(&RawRule {
                name: "x".into(),
                ..raw(c, u, p)
            })
            .unwrap_err()
        };
        assert!(bad(None, None, None).contains("no condition"));
        assert!(bad(Some("nope"), None, None).contains("cidr"));
        assert!(bad(None, Some("("), None).contains("regex"));
        assert!(bad(None, None, Some("feed")).contains("start with /"));
        assert!(bad(None, None, Some("/a/../b")).contains("dot-segment"));
        assert!(bad(None, None, Some("/a;b")).contains("rule \"x\""));
        assert!(bad(None, None, Some("/caf%65")).contains("write path \"/caf%65\" as \"/cafe\""));
    }
}
