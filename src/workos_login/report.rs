//! What `wikibot workos login` prints: the profile, the identities and the provider's user id,
//! as text for a person or as one JSON document.
//!
//! It must not print tokens or the API key (it never receives them), nor anything from WorkOS
//! with its control characters unescaped.

use serde::Serialize;

use super::{Identity, Profile, Provider};
use crate::lambda::escape_controls;

/// One finished sign-in, ready to print.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub workos_base_url: &'a str,
    pub provider_requested: &'static str,
    pub profile: &'a Profile,
    pub identities: &'a [Identity],
    /// The identity of the provider signed in with: the one asked for, or, through AuthKit's
    /// page, the one `authentication_method` names.
    pub idp_id: Option<&'a str>,
    pub idp_provider: Option<&'a str>,
}

impl<'a> Report<'a> {
    pub fn new(
        workos_base_url: &'a str,
        provider: Provider,
        profile: &'a Profile,
        identities: &'a [Identity],
    ) -> Self {
        let method = profile.authentication_method.as_deref().unwrap_or_default();
        let signed_in_with = |identity: &&Identity| match provider {
            Provider::AuthKit => identity.provider.eq_ignore_ascii_case(method),
            _ => provider.matches(&identity.provider),
        };
        let identity = identities.iter().find(signed_in_with);
        Self {
            workos_base_url,
            provider_requested: provider.as_str(),
            profile,
            identities,
            idp_id: identity.map(|identity| identity.idp_id.as_str()),
            idp_provider: identity.map(|identity| identity.provider.as_str()),
        }
    }

    /// Aligned `name  value` lines.
    pub fn text(&self) -> String {
        let profile = self.profile;
        let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        let mut rows = vec![
            ("user id", profile.id.clone()),
            ("email", profile.email.clone()),
            (
                "email verified",
                if profile.email_verified { "yes" } else { "no" }.to_owned(),
            ),
            ("first name", or_dash(&profile.first_name)),
            ("last name", or_dash(&profile.last_name)),
            (
                "authentication method",
                or_dash(&profile.authentication_method),
            ),
            ("organization", or_dash(&profile.organization_id)),
        ];
        match (self.idp_id, self.idp_provider) {
            (Some(id), Some(provider)) => {
                rows.push(("provider user id", format!("{id} (idp_id, {provider})")));
            }
            _ => rows.push((
                "provider user id",
                format!(
                    "- (no {} identity among the {} WorkOS lists)",
                    match self.provider_requested {
                        "authkit" => profile
                            .authentication_method
                            .as_deref()
                            .unwrap_or("matching"),
                        requested => requested,
                    },
                    self.identities.len()
                ),
            )),
        }
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut out = format!("Signed in through WorkOS ({})\n", self.workos_base_url);
        for (name, value) in rows {
            out.push_str(&format!("  {name:<width$}  {}\n", escape_controls(&value)));
        }
        if self.identities.is_empty() {
            out.push_str("Identities: none\n");
        } else {
            out.push_str(&format!("Identities ({}):\n", self.identities.len()));
        }
        for identity in self.identities {
            out.push_str(&format!(
                "  {} {} idp_id {}\n",
                escape_controls(&identity.provider),
                escape_controls(&identity.kind),
                escape_controls(&identity.idp_id)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(method: &str) -> Profile {
        Profile {
            id: "user_01".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            first_name: Some("Ada\u{1b}[2J".into()),
            last_name: None,
            authentication_method: Some(method.into()),
            organization_id: None,
        }
    }

    fn identity(provider: &str, id: &str) -> Identity {
        Identity {
            idp_id: id.into(),
            kind: "OAuth".into(),
            provider: provider.into(),
        }
    }

    #[test]
    fn the_provider_signed_in_with_gives_the_idp_id() {
        let identities = [
            identity("GithubOAuth", "42"),
            identity("GoogleOAuth", "1037"),
        ];
        let profile = profile("GoogleOAuth");
        let google = Report::new(
            "https://api.workos.com",
            Provider::Google,
            &profile,
            &identities,
        );
        assert_eq!(google.idp_id, Some("1037"));
        let github = Report::new(
            "https://api.workos.com",
            Provider::GitHub,
            &profile,
            &identities,
        );
        assert_eq!(github.idp_id, Some("42"));
        let authkit = Report::new(
            "https://api.workos.com",
            Provider::AuthKit,
            &profile,
            &identities,
        );
        assert_eq!(
            authkit.idp_id,
            Some("1037"),
            "AuthKit: by authentication_method"
        );
        let apple = Report::new(
            "https://api.workos.com",
            Provider::Apple,
            &profile,
            &identities,
        );
        assert_eq!(apple.idp_id, None);
        assert!(apple.text().contains("no AppleOAuth identity among the 2"));
    }

    #[test]
    fn text_escapes_what_workos_sent() {
        let profile = profile("GoogleOAuth");
        let text = Report::new("https://api.workos.com", Provider::Google, &profile, &[]).text();
        assert!(text.contains(r"Ada\u{1b}[2J"), "{text}");
        assert!(!text.contains('\u{1b}'));
        assert!(text.contains("email verified         yes"), "{text}");
    }
}
