//! Requests that pass `/verify-token` without a token: health checks,
//! feeds, git clients, `/.well-known/`, `robots.txt`, an office network.
//!
//! A rule names one or more conditions, and matches when all of them do:
//! a client address in a CIDR, a User-Agent regex, or a prefix of the
//! original request path.

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

impl RawRule {
    /// The rules shipped by default: ACME and other `/.well-known/` files,
    /// and `robots.txt`, which crawlers must be able to read.
    pub fn defaults() -> Vec<Self> {
        let path = |name: &str, p: &str| Self {
            name: name.into(),
            cidr: None,
            user_agent: None,
            path_prefix: Some(p.into()),
        };
        vec![
            path("well-known", "/.well-known/"),
            path("robots", "/robots.txt"),
        ]
    }
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    cidrs: Vec<IpNet>,
    user_agent: Option<Regex>,
    path_prefix: Option<String>,
}

/// What a request looks like to the allowlist.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub ip: IpAddr,
    pub user_agent: Option<&'a str>,
    /// The original request's path, when the proxy sent it.
    pub path: Option<&'a str>,
}

impl Rule {
    /// # Errors
    /// A message naming the rule and the bad condition.
    pub fn compile(raw: &RawRule) -> Result<Self, String> {
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
        if let Some(p) = &raw.path_prefix
            && !p.starts_with('/')
        {
            return Err(format!(
                "rule {:?}: path_prefix must start with /",
                raw.name
            ));
        }
        if cidrs.is_empty() && user_agent.is_none() && raw.path_prefix.is_none() {
            return Err(format!(
                "rule {:?} has no condition: give cidr, user_agent or path_prefix",
                raw.name
            ));
        }
        Ok(Self {
            name: raw.name.clone(),
            cidrs,
            user_agent,
            path_prefix: raw.path_prefix.clone(),
        })
    }

    pub fn matches(&self, s: &Subject<'_>) -> bool {
        (self.cidrs.is_empty() || self.cidrs.iter().any(|n| n.contains(&s.ip)))
            && self
                .user_agent
                .as_ref()
                .is_none_or(|re| s.user_agent.is_some_and(|ua| re.is_match(ua)))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| s.path.is_some_and(|path| path_has_prefix(path, p)))
    }
}

/// Prefix match on the path only, after resolving dot segments, so that
/// `/.well-known/../admin` cannot pose as `/.well-known/`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.contains("/../") || path.ends_with("/..") || path.contains("/./") || path.contains('\\')
    {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return false;
    }
    path.starts_with(prefix)
}

/// The first rule matching `s`.
pub fn find<'r>(rules: &'r [Rule], s: &Subject<'_>) -> Option<&'r Rule> {
    rules.iter().find(|r| r.matches(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cidr: Option<&str>, ua: Option<&str>, path: Option<&str>) -> Rule {
        Rule::compile(&RawRule {
            name: "r".into(),
            cidr: cidr.map(Into::into),
            user_agent: ua.map(Into::into),
            path_prefix: path.map(Into::into),
        })
        .unwrap()
    }

    fn subject<'a>(ip: &str, ua: Option<&'a str>, path: Option<&'a str>) -> Subject<'a> {
        Subject {
            ip: ip.parse().unwrap(),
            user_agent: ua,
            path,
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
        let feed = rule(Some("10.0.0.0/8"), None, Some("/feed"));
        assert!(feed.matches(&subject("10.0.0.1", None, Some("/feed.xml?x=1"))));
        assert!(!feed.matches(&subject("8.8.8.8", None, Some("/feed.xml"))));
    }

    #[test]
    fn path_tricks_do_not_match() {
        let wk = rule(None, None, Some("/.well-known/"));
        assert!(wk.matches(&subject(
            "1.1.1.1",
            None,
            Some("/.well-known/acme-challenge/x")
        )));
        assert!(!wk.matches(&subject("1.1.1.1", None, Some("/.well-known/../admin"))));
        assert!(!wk.matches(&subject("1.1.1.1", None, Some("/.well-known/%2e%2e/admin"))));
        assert!(!wk.matches(&subject("1.1.1.1", None, Some("/x/.well-known/"))));
        assert!(!wk.matches(&subject("1.1.1.1", None, None)));
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let bad = |c: Option<&str>, u: Option<&str>, p: Option<&str>| {
            Rule::compile(&RawRule {
                name: "x".into(),
                cidr: c.map(Into::into),
                user_agent: u.map(Into::into),
                path_prefix: p.map(Into::into),
            })
            .unwrap_err()
        };
        assert!(bad(None, None, None).contains("no condition"));
        assert!(bad(Some("nope"), None, None).contains("cidr"));
        assert!(bad(None, Some("("), None).contains("regex"));
        assert!(bad(None, None, Some("feed")).contains("start with /"));
    }
}
