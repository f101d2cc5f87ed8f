//! Who may use the wiki when OAuth is on: the access policy (`MCP_ALLOW`, `wikibot serve
//! --allow`, the stack's `access_policy`).
//!
//! A policy is a list of rules, each granting read-write (`rw`) or read-only (`ro`) access to
//! the WorkOS users it matches:
//!
//! | rule | matches |
//! |---|---|
//! | `user:user_01H…=rw` | that WorkOS user id (the token's `sub`): the only rule that cannot be fooled by e-mail, and the one to use for Sign in with Apple, whose addresses may be private relays |
//! | `email:ada@example.com=ro` | a user whose **verified** e-mail address is exactly this (ASCII case-insensitive) |
//! | `domain:example.com=rw` | a user whose verified address ends in `@example.com` exactly: the part after the last `@` must equal the domain, so `evil-example.com` and `sub.example.com` do not match |
//! | `org:org_01H…=ro` | a token whose `org_id` claim is this organization |
//!
//! Rules only grant: the most permissive matching rule wins, and a caller no rule matches is
//! denied. An e-mail address counts only when WorkOS says it is verified (`email_verified` from
//! the User Management API, or the JWT template's verified claim): AuthKit can let people sign
//! up with an address they do not own, and a domain rule must not admit them.
//!
//! This module only decides; it must not fetch anything (the caller supplies the verified
//! e-mail, see [`super::directory`]). The static token is outside the policy: it is the
//! operator's own credential.

use std::fmt;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Read tools only; write tools answer with a tool error.
    ReadOnly,
    /// Everything.
    ReadWrite,
}

impl Access {
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "rw" => Some(Self::ReadWrite),
            "ro" => Some(Self::ReadOnly),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadOnly => "ro",
            Self::ReadWrite => "rw",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    User(String),
    /// Lower-case.
    Email(String),
    /// Lower-case, no `@`.
    Domain(String),
    Org(String),
}

impl Matcher {
    fn needs_email(&self) -> bool {
        matches!(self, Self::Email(_) | Self::Domain(_))
    }
}

/// One entry of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    matcher: Matcher,
    access: Access,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, value) = match &self.matcher {
            Matcher::User(v) => ("user", v),
            Matcher::Email(v) => ("email", v),
            Matcher::Domain(v) => ("domain", v),
            Matcher::Org(v) => ("org", v),
        };
        write!(f, "{kind}:{value}={}", self.access)
    }
}

/// A policy entry that cannot be understood; names the setting and the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{setting}: {problem} in entry {entry:?}; entries look like user:user_01…=rw, email:ada@example.com=ro, domain:example.com=rw or org:org_01…=ro, separated by commas"
)]
pub struct PolicyError {
    pub setting: &'static str,
    pub entry: String,
    pub problem: String,
}

/// What the policy knows about a caller whose token was verified.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The WorkOS user id (`sub`).
    pub user_id: &'a str,
    /// The token's `org_id` claim.
    pub org_id: Option<&'a str>,
    /// An address WorkOS has verified, if known.
    pub verified_email: Option<&'a str>,
}

/// Access granted, and the rule that granted it (shown to read-only callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub access: Access,
    pub rule: String,
}

/// The allow-list for OAuth callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    rules: Vec<Rule>,
}

impl AccessPolicy {
    /// Parses entries separated by commas or newlines, naming `setting` in errors. Blank
    /// entries are skipped, so an empty text is an empty policy (the caller decides what that
    /// means).
    pub fn parse(setting: &'static str, text: &str) -> Result<Self, PolicyError> {
        let rules = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| parse_rule(setting, entry))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Like [`parse`](Self::parse), for a repeated command-line option.
    pub fn parse_all(setting: &'static str, entries: &[String]) -> Result<Self, PolicyError> {
        Self::parse(setting, &entries.join(","))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether some e-mail or domain rule exists at all.
    pub fn has_email_rules(&self) -> bool {
        self.rules.iter().any(|r| r.matcher.needs_email())
    }

    /// Whether knowing the caller's verified e-mail could grant more than `current`: only
    /// then is it worth asking WorkOS.
    pub fn email_could_grant_more(&self, current: Option<Access>) -> bool {
        self.rules
            .iter()
            .any(|r| r.matcher.needs_email() && current.is_none_or(|c| r.access > c))
    }

    /// The most permissive grant among the rules `caller` matches, or `None` (denied).
    pub fn decide(&self, caller: &Caller<'_>) -> Option<Grant> {
        let email = caller.verified_email.map(str::to_ascii_lowercase);
        let email_domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, domain)| domain);
        self.rules
            .iter()
            .filter(|rule| match &rule.matcher {
                Matcher::User(id) => id == caller.user_id,
                Matcher::Org(id) => caller.org_id == Some(id.as_str()),
                Matcher::Email(address) => email.as_deref() == Some(address.as_str()),
                Matcher::Domain(domain) => email_domain == Some(domain.as_str()),
            })
            .max_by_key(|rule| rule.access)
            .map(|rule| Grant {
                access: rule.access,
                rule: rule.to_string(),
            })
    }
}

fn parse_rule(setting: &'static str, entry: &str) -> Result<Rule, PolicyError> {
    let fail = |problem: &str| PolicyError {
        setting,
        entry: entry.to_owned(),
        problem: problem.to_owned(),
    };
    let (target, access) = entry
        .rsplit_once('=')
        .ok_or_else(|| fail("no access level (end the entry with =rw or =ro)"))?;
    let access = Access::parse(access).ok_or_else(|| fail("the access level must be rw or ro"))?;
    let (kind, value) = target
        .split_once(':')
        .ok_or_else(|| fail("no kind (user:, email:, domain: or org:)"))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(fail("nothing after the kind"));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '=')
    {
        return Err(fail("spaces, control characters and '=' are not allowed"));
    }
    let matcher = match kind.trim().to_ascii_lowercase().as_str() {
        "user" => Matcher::User(workos_id(value, "user_").ok_or_else(|| {
            fail("a user rule needs a WorkOS user id (user_ followed by letters and digits)")
        })?),
        "org" => Matcher::Org(workos_id(value, "org_").ok_or_else(|| {
            fail("an org rule needs a WorkOS organization id (org_ followed by letters and digits)")
        })?),
        "email" => {
            let address = value.to_ascii_lowercase();
            match address.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() && valid_domain(domain) => {
                    Matcher::Email(address)
                }
                _ => return Err(fail("not an e-mail address (name@domain)")),
            }
        }
        "domain" => {
            let domain = value.to_ascii_lowercase();
            if domain.starts_with("*.") {
                return Err(fail(
                    "wildcards are not supported: domains match exactly, list each domain",
                ));
            }
            if domain.contains('@') {
                return Err(fail("a domain rule takes the domain alone, without '@'"));
            }
            if !valid_domain(&domain) {
                return Err(fail("not a domain name (e.g. example.com)"));
            }
            Matcher::Domain(domain)
        }
        _ => return Err(fail("unknown kind (use user:, email:, domain: or org:)")),
    };
    Ok(Rule { matcher, access })
}

fn workos_id(value: &str, prefix: &str) -> Option<String> {
    let rest = value.strip_prefix(prefix)?;
    (!rest.is_empty() && value.len() <= 100 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| value.to_owned())
}

/// Labels of letters, digits and hyphens (or non-ASCII, for IDNs) joined by single dots, at
/// least two labels.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> AccessPolicy {
        AccessPolicy::parse("MCP_ALLOW", text).unwrap()
    }

    fn caller<'a>(user: &'a str, org: Option<&'a str>, email: Option<&'a str>) -> Caller<'a> {
        Caller {
            user_id: user,
            org_id: org,
            verified_email: email,
        }
    }

    fn access(policy: &AccessPolicy, c: Caller<'_>) -> Option<Access> {
        policy.decide(&c).map(|g| g.access)
    }

    #[test]
    fn entries_parse_and_print_back() {
        let p = policy(
            " user:user_01ABC=rw, email:Ada@Example.COM=RO\n domain:example.com=rw,org:org_01XYZ=ro,, ",
        );
        let printed: Vec<String> = p.rules().iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            [
                "user:user_01ABC=rw",
                "email:ada@example.com=ro",
                "domain:example.com=rw",
                "org:org_01XYZ=ro"
            ]
        );
        assert!(p.has_email_rules());
        assert!(policy("").is_empty());
        assert_eq!(
            AccessPolicy::parse_all("--allow", &["user:user_1=rw".into(), "org:org_2=ro".into()])
                .unwrap()
                .rules()
                .len(),
            2
        );
    }

    #[test]
    fn bad_entries_name_the_setting_and_the_entry() {
        for (entry, problem) in [
            ("user:user_01", "no access level"),
            ("user:user_01=admin", "rw or ro"),
            ("user_01=rw", "no kind"),
            ("team:x=rw", "unknown kind"),
            ("user:=rw", "nothing after"),
            ("user:01ABC=rw", "WorkOS user id"),
            ("user:user_01/../x=rw", "WorkOS user id"),
            ("org:acme=rw", "organization id"),
            ("email:ada=rw", "not an e-mail"),
            ("email:@example.com=rw", "not an e-mail"),
            ("email:ada@localhost=rw", "not an e-mail"),
            ("domain:@example.com=rw", "without '@'"),
            ("domain:*.example.com=rw", "wildcards"),
            ("domain:example..com=rw", "not a domain"),
            ("domain:exa mple.com=rw", "spaces"),
        ] {
            let err =
                AccessPolicy::parse("MCP_ALLOW", &format!("user:user_ok=rw, {entry}")).unwrap_err();
            assert_eq!(err.entry, entry);
            let message = err.to_string();
            assert!(message.starts_with("MCP_ALLOW: "), "{message}");
            assert!(message.contains(problem), "{entry}: {message}");
            assert!(message.contains(&format!("{entry:?}")), "{message}");
        }
    }

    #[test]
    fn users_and_organizations_match_by_id() {
        let p = policy("user:user_A=rw, org:org_B=ro");
        assert_eq!(
            access(&p, caller("user_A", None, None)),
            Some(Access::ReadWrite)
        );
        assert_eq!(
            access(&p, caller("user_C", Some("org_B"), None)),
            Some(Access::ReadOnly)
        );
        assert_eq!(access(&p, caller("user_C", Some("org_X"), None)), None);
        assert_eq!(
            access(&p, caller("user_a", None, None)),
            None,
            "ids are exact"
        );
        assert_eq!(
            p.decide(&caller("user_A", Some("org_B"), None)).unwrap(),
            Grant {
                access: Access::ReadWrite,
                rule: "user:user_A=rw".into()
            },
            "the most permissive rule wins"
        );
    }

    #[test]
    fn emails_match_case_insensitively_and_domains_exactly() {
        let p = policy("email:ada@example.com=ro, domain:example.org=rw");
        let verdict = |email: &str| access(&p, caller("user_X", None, Some(email)));
        assert_eq!(verdict("ADA@Example.com"), Some(Access::ReadOnly));
        assert_eq!(verdict("ada@example.com.evil.net"), None);
        assert_eq!(verdict("xada@example.com"), None);
        assert_eq!(verdict("bob@example.org"), Some(Access::ReadWrite));
        assert_eq!(verdict("bob@EXAMPLE.ORG"), Some(Access::ReadWrite));
        assert_eq!(
            verdict("bob@evil-example.org"),
            None,
            "never a suffix match"
        );
        assert_eq!(
            verdict("bob@sub.example.org"),
            None,
            "subdomains are not the domain"
        );
        assert_eq!(verdict("bob@example.org.evil.net"), None);
        assert_eq!(
            verdict("\"x@example.org\"@evil.net"),
            None,
            "the last '@' counts"
        );
        assert_eq!(verdict("example.org"), None);
        assert_eq!(access(&p, caller("user_X", None, None)), None);
    }

    #[test]
    fn email_lookups_are_needed_only_when_they_could_change_the_answer() {
        let p = policy("user:user_A=ro, domain:example.com=rw");
        assert!(p.email_could_grant_more(None));
        assert!(p.email_could_grant_more(Some(Access::ReadOnly)));
        assert!(!p.email_could_grant_more(Some(Access::ReadWrite)));
        let ids_only = policy("user:user_A=rw");
        assert!(!ids_only.email_could_grant_more(None));
        let ro_domain = policy("domain:example.com=ro");
        assert!(!ro_domain.email_could_grant_more(Some(Access::ReadOnly)));
    }
}
