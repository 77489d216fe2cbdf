//! Closing the Sales loop: `[handoff]`, `[[route]]` and the loop keys of `[policy]`, checked
//! into the lead actions' [`Settings`].

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::{Checker, RawPolicy};
use crate::actions::route::{FieldMatch, Route, Routing};
use crate::actions::settings::Settings;
use crate::actions::trigger::Handoff;
use crate::domain::EmailAddress;
use crate::sequence::Sender;

/// `[handoff]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHandoff {
    enabled: Option<bool>,
    on_reply: Option<bool>,
    #[serde(default)]
    forms: Vec<Spanned<String>>,
    #[serde(default)]
    channels: Vec<Spanned<String>>,
    /// Label = pattern; a table, so its keys are the user's.
    #[serde(default)]
    fields: BTreeMap<String, Spanned<String>>,
    min_score: Option<i64>,
    interval: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    default_owner: Option<Spanned<String>>,
}

/// `[[route]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    name: Option<Spanned<String>>,
    #[serde(default)]
    channels: Vec<Spanned<String>>,
    #[serde(default)]
    forms: Vec<Spanned<String>>,
    #[serde(default)]
    recipients: Vec<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    field: Option<Spanned<String>>,
    matches: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    owners: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The lead actions' settings from `[handoff]`, the `[[route]]`s and `[policy]`; `senders`
/// are the configured `[[sender]]`s, which `[handoff] from` must name.
pub(super) fn check_actions(
    ck: &mut Checker<'_>,
    handoff: Option<RawHandoff>,
    routes: &[Spanned<RawRoute>],
    policy: Option<&Spanned<RawPolicy>>,
    senders: &[Sender],
) -> Settings {
    let defaults = Settings::default();
    let (handoff, default_owner) = match handoff {
        Some(h) => check_handoff(ck, h, senders),
        None => (defaults.handoff, None),
    };
    let routing = Routing {
        routes: check_routes(ck, routes),
        default_owner,
    };
    let policy = policy.map(Spanned::get_ref);
    let ooo_default_pause = ck.duration(
        policy.and_then(|p| p.ooo_default_pause.as_ref()),
        "policy.ooo_default_pause",
        defaults.ooo_default_pause,
    );
    let soft_bounce_limit = ck.positive_u32(
        policy.and_then(|p| p.soft_bounce_limit.as_ref()),
        "policy.soft_bounce_limit",
        defaults.soft_bounce_limit,
    );
    let soft_bounce_window = ck.duration(
        policy.and_then(|p| p.soft_bounce_window.as_ref()),
        "policy.soft_bounce_window",
        defaults.soft_bounce_window,
    );
    Settings {
        routing,
        handoff,
        ooo_default_pause,
        soft_bounce_limit,
        soft_bounce_window,
    }
}

/// `[handoff]`, and its `default_owner`, which belongs to the routing.
fn check_handoff(
    ck: &mut Checker<'_>,
    raw: RawHandoff,
    senders: &[Sender],
) -> (Handoff, Option<EmailAddress>) {
    let defaults = Handoff::default();
    let mut fields = Vec::new();
    for (label, pattern) in &raw.fields {
        let key = format!("handoff.fields.{}", toml_key(label));
        if label.trim().is_empty() {
            ck.at(pattern.span(), &key, "a field label must not be empty");
        }
        if let Some(pattern) = ck.regex(pattern, &key) {
            fields.push(FieldMatch {
                label: label.trim().to_owned(),
                pattern,
            });
        }
    }
    if let Some(from) = &raw.from
        && !senders.iter().any(|s| s.name == from.get_ref().trim())
    {
        let names: Vec<&str> = senders.iter().map(|s| s.name.as_str()).collect();
        ck.at(
            from.span(),
            "handoff.from",
            if names.is_empty() {
                format!(
                    "no [[sender]] is named '{}' (there are none)",
                    from.get_ref()
                )
            } else {
                format!(
                    "no [[sender]] is named '{}' (there are {})",
                    from.get_ref(),
                    names.join(", ")
                )
            },
        );
    }
    let default_owner = raw
        .default_owner
        .as_ref()
        .and_then(|a| ck.address(a, "handoff.default_owner"));
    let handoff = Handoff {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        on_reply: raw.on_reply.unwrap_or(defaults.on_reply),
        forms: names(ck, &raw.forms, "handoff.forms", false),
        channels: names(ck, &raw.channels, "handoff.channels", true),
        fields,
        min_score: raw.min_score,
        interval: ck.duration(raw.interval.as_ref(), "handoff.interval", defaults.interval),
        sender: raw.from.map(|f| f.into_inner().trim().to_owned()),
    };
    (handoff, default_owner)
}

/// The `[[route]]`s, in file order, each named once.
fn check_routes(ck: &mut Checker<'_>, raw: &[Spanned<RawRoute>]) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let r = spanned.get_ref();
        let key = |k: &str| format!("route[{i}].{k}");
        let name = match &r.name {
            Some(n) => {
                let name = n.get_ref().trim().to_owned();
                if name.is_empty() {
                    ck.at(n.span(), &key("name"), "must not be empty");
                } else if routes.iter().any(|o| o.name == name) {
                    ck.at(
                        n.span(),
                        &key("name"),
                        format!("route '{name}' is defined twice"),
                    );
                }
                name
            }
            None => format!("route {}", i + 1),
        };
        let recipients = r
            .recipients
            .iter()
            .filter_map(|a| ck.address(a, &key("recipients")))
            .collect();
        let domains = r
            .domains
            .iter()
            .filter_map(|d| route_domain(ck, d, &key("domains")))
            .collect();
        let field = check_field(ck, r, &key);
        let owners = check_owners(ck, spanned, &key);
        routes.push(Route {
            name,
            channels: names(ck, &r.channels, &key("channels"), true),
            forms: names(ck, &r.forms, &key("forms"), false),
            recipients,
            domains,
            field,
            owners,
        });
    }
    routes
}

/// `field` and `matches`: both or neither.
fn check_field(
    ck: &mut Checker<'_>,
    r: &RawRoute,
    key: &dyn Fn(&str) -> String,
) -> Option<FieldMatch> {
    match (&r.field, &r.matches) {
        (Some(label), Some(pattern)) => {
            if label.get_ref().trim().is_empty() {
                ck.at(label.span(), &key("field"), "must not be empty");
            }
            let pattern = ck.regex(pattern, &key("matches"))?;
            Some(FieldMatch {
                label: label.get_ref().trim().to_owned(),
                pattern,
            })
        }
        (Some(label), None) => {
            ck.at(
                label.span(),
                &key("field"),
                "give the pattern its value must match in `matches` too",
            );
            None
        }
        (None, Some(pattern)) => {
            ck.at(
                pattern.span(),
                &key("matches"),
                "give the form field it applies to in `field` too",
            );
            None
        }
        (None, None) => None,
    }
}

/// `owner` or `owners`: exactly one of them, with at least one address, each once.
fn check_owners(
    ck: &mut Checker<'_>,
    route: &Spanned<RawRoute>,
    key: &dyn Fn(&str) -> String,
) -> Vec<EmailAddress> {
    let r = route.get_ref();
    match (&r.owner, &r.owners) {
        (Some(owner), None) => ck.address(owner, &key("owner")).into_iter().collect(),
        (None, Some(list)) => {
            if list.get_ref().is_empty() {
                ck.at(list.span(), &key("owners"), "must name at least one owner");
            }
            let mut owners: Vec<EmailAddress> = Vec::new();
            for a in list.get_ref() {
                let Some(owner) = ck.address(a, &key("owners")) else {
                    continue;
                };
                if owners.contains(&owner) {
                    ck.at(a.span(), &key("owners"), format!("{owner} is listed twice"));
                } else {
                    owners.push(owner);
                }
            }
            owners
        }
        (Some(_), Some(list)) => {
            ck.at(
                list.span(),
                &key("owners"),
                "give either owner or owners, not both",
            );
            Vec::new()
        }
        (None, None) => {
            ck.at(
                route.span(),
                &key("owner"),
                "a route needs an owner (or owners = [...] for round robin)",
            );
            Vec::new()
        }
    }
}

/// Non-empty names, trimmed (and lower-cased for channels, which are compared that way).
fn names(ck: &mut Checker<'_>, raw: &[Spanned<String>], key: &str, lower: bool) -> Vec<String> {
    let mut out = Vec::new();
    for n in raw {
        let name = n.get_ref().trim();
        if name.is_empty() {
            ck.at(n.span(), key, "names must not be empty");
        } else if lower {
            out.push(name.to_lowercase());
        } else {
            out.push(name.to_owned());
        }
    }
    out
}

/// A route's domain: `example.de`, or `*.example.de` / `.example.de` / `*.de` for a domain
/// and its subdomains.
fn route_domain(ck: &mut Checker<'_>, d: &Spanned<String>, key: &str) -> Option<String> {
    let domain = d.get_ref().trim().trim_start_matches('@').to_lowercase();
    let (wild, base) = match domain
        .strip_prefix("*.")
        .or_else(|| domain.strip_prefix('.'))
    {
        Some(base) => (true, base),
        None => (false, domain.as_str()),
    };
    let bad = base.is_empty()
        || base.split('.').any(str::is_empty)
        || base.contains(['@', ' ', '/', '*', ','])
        || (!wild && !base.contains('.'));
    if bad {
        ck.at(
            d.span(),
            key,
            format!(
                "'{}' is not a domain like \"example.de\" (or \"*.example.de\" with its subdomains)",
                d.get_ref()
            ),
        );
        return None;
    }
    Some(if wild {
        format!("*.{base}")
    } else {
        base.to_owned()
    })
}

/// A label as a TOML key names it: bare when it can be, quoted otherwise.
fn toml_key(label: &str) -> String {
    if !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        label.to_owned()
    } else {
        format!("{label:?}")
    }
}

impl Checker<'_> {
    /// A regular expression, or a problem naming `key` with the parser's reason.
    fn regex(&mut self, v: &Spanned<String>, key: &str) -> Option<Regex> {
        match Regex::new(v.get_ref()) {
            Ok(r) => Some(r),
            Err(e) => {
                // The parser's message spans several lines (the pattern, a caret, the reason);
                // a problem is one line.
                let reason = match &e {
                    regex::Error::Syntax(s) => s
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or(s)
                        .trim()
                        .trim_start_matches("error: ")
                        .to_owned(),
                    other => other.to_string(),
                };
                self.at(
                    v.span(),
                    key,
                    format!("'{}' is not a regular expression: {reason}", v.get_ref()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{Config, ConfigError};
    use crate::actions::route::Assignment;
    use crate::domain::{Classification, LeadStatus, MessageKind, Person};

    const BASE: &str = r#"
[database]
url = "sqlite://leadloop.db?mode=rwc"

[maildir]
path = "inbox"

[identity]
domains = ["company.com"]
sales = ["sales@company.com"]

[[sender]]
name = "team"
address = "hello@company.com"
"#;

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("{BASE}{extra}"),
            Path::new("/etc/leadloop/leadloop.toml"),
        )
    }

    /// Line of `needle` in the whole file `BASE` + `extra`.
    fn line_of(extra: &str, needle: &str) -> usize {
        let text = format!("{BASE}{extra}");
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle in text")
            + 1
    }

    /// The only problem of `extra`: (line, key, message).
    fn problem(extra: &str) -> (usize, String, String) {
        let err = parse(extra).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        let p = &err.problems[0];
        assert_eq!(p.file, Path::new("/etc/leadloop/leadloop.toml"));
        (
            p.line.expect("a line"),
            p.key.clone().expect("a key"),
            p.message.clone(),
        )
    }

    fn lead(email: &str) -> Classification {
        let mut c = Classification::ignored("test");
        c.kind = MessageKind::Inquiry;
        c.lead = Some(Person {
            email: email.parse().unwrap(),
            name: None,
            company: None,
            phone: None,
        });
        c
    }

    const FULL: &str = r#"
[handoff]
enabled = true
on_reply = false
forms = ["demo-request"]
channels = ["Webinar"]
fields = { "Budget" = "^[0-9]{5,}$", "Company size" = "^[0-9]{3,}" }
min_score = 50
interval = "12h"
from = "team"
default_owner = "Sales@Company.com"

[[route]]
name = "emea"
channels = ["linkedin"]
forms = ["contact-page"]
recipients = ["sales-emea@company.com"]
domains = ["example.de", "*.example.at"]
field = "Country"
matches = "(?i)^(de|germany|deutschland)$"
owner = "anna@company.com"

[[route]]
owners = ["bob@company.com", "carl@company.com"]

[policy]
ooo_default_pause = "10d"
soft_bounce_limit = 5
soft_bounce_window = "30d"
"#;

    #[test]
    fn every_key_is_read() {
        let c = parse(FULL).unwrap();
        let a = &c.actions;
        let h = &a.handoff;
        assert!(h.enabled && !h.on_reply);
        assert_eq!(h.forms, ["demo-request"]);
        assert_eq!(h.channels, ["webinar"]);
        let labels: Vec<_> = h.fields.iter().map(|f| f.label.as_str()).collect();
        assert_eq!(labels, ["Budget", "Company size"]);
        assert!(h.fields[0].pattern.is_match("50000"));
        assert_eq!(h.min_score, Some(50));
        assert_eq!(h.interval, Duration::from_secs(12 * 3600));
        assert_eq!(h.sender.as_deref(), Some("team"));

        let r = &a.routing;
        assert_eq!(
            r.default_owner.as_ref().map(|a| a.as_str()),
            Some("sales@company.com")
        );
        assert_eq!(r.routes.len(), 2);
        let emea = &r.routes[0];
        assert_eq!(emea.name, "emea");
        assert_eq!(emea.channels, ["linkedin"]);
        assert_eq!(emea.forms, ["contact-page"]);
        assert_eq!(emea.recipients[0].as_str(), "sales-emea@company.com");
        assert_eq!(emea.domains, ["example.de", "*.example.at"]);
        let field = emea.field.as_ref().unwrap();
        assert_eq!(field.label, "Country");
        assert!(field.pattern.is_match("Germany"));
        assert_eq!(emea.owners[0].as_str(), "anna@company.com");
        assert_eq!(r.routes[1].name, "route 2");
        assert_eq!(r.routes[1].owners.len(), 2);

        assert_eq!(a.ooo_default_pause, Duration::from_secs(10 * 86_400));
        assert_eq!(a.soft_bounce_limit, 5);
        assert_eq!(a.soft_bounce_window, Duration::from_secs(30 * 86_400));

        // A route's recipients are ours, so the classifier sees mail to them as delivered to us.
        assert!(
            c.identity
                .addresses
                .iter()
                .any(|a| a.as_str() == "sales-emea@company.com")
        );
        // The routing works on what the file says.
        let mut m = lead("x@example.org");
        assert!(matches!(
            r.assign(&m),
            Some(Assignment::Route { name, .. }) if name == "route 2"
        ));
        m.owner = Some("dave@company.com".parse().unwrap());
        assert_eq!(
            r.assign(&m),
            Some(Assignment::Forwarder("dave@company.com".parse().unwrap()))
        );
    }

    #[test]
    fn without_the_sections_the_defaults_apply() {
        let c = parse("").unwrap();
        let a = &c.actions;
        assert!(a.handoff.enabled && a.handoff.on_reply);
        assert_eq!(a.handoff.interval, Duration::from_secs(86_400));
        assert!(a.handoff.forms.is_empty() && a.handoff.fields.is_empty());
        assert!(a.routing.routes.is_empty() && a.routing.default_owner.is_none());
        assert_eq!(a.ooo_default_pause, Duration::from_secs(7 * 86_400));
        assert_eq!(a.soft_bounce_limit, 3);
        assert_eq!(a.soft_bounce_window, Duration::from_secs(7 * 86_400));
        let c = parse("\n[handoff]\nenabled = false\n").unwrap();
        assert!(!c.actions.handoff.enabled && c.actions.handoff.on_reply);
    }

    #[test]
    fn owners_are_sales_addresses_for_the_classifier() {
        let c = parse(FULL).unwrap();
        let sales: Vec<String> = c
            .rules()
            .sales
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        assert_eq!(
            sales,
            [
                "sales@company.com",
                "anna@company.com",
                "bob@company.com",
                "carl@company.com"
            ],
            "identity.sales first, each once"
        );
    }

    #[test]
    fn unknown_keys_are_refused_in_both_tables() {
        let extra = "\n[handoff]\nintervall = \"1d\"\n";
        let err = parse(extra).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("intervall"), "{err}");
        assert_eq!(err.problems[0].line, Some(line_of(extra, "intervall")));
        let extra = "\n[[route]]\nowner = \"a@company.com\"\ndomain = [\"x.de\"]\n";
        let err = parse(extra).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("domain"), "{err}");
        assert_eq!(err.problems[0].line, Some(line_of(extra, "domain =")));
    }

    #[test]
    fn a_bad_regex_names_its_key_and_line() {
        let extra = "\n[handoff]\nfields = { \"Company size\" = \"^[0-9\" }\n";
        let (line, key, message) = problem(extra);
        assert_eq!(line, line_of(extra, "fields"));
        assert_eq!(key, "handoff.fields.\"Company size\"");
        assert!(message.contains("not a regular expression"), "{message}");
        assert!(!message.contains('\n'), "{message}");

        let extra =
            "\n[[route]]\nfield = \"Country\"\nmatches = \"(de\"\nowner = \"a@company.com\"\n";
        let (line, key, message) = problem(extra);
        assert_eq!(line, line_of(extra, "matches"));
        assert_eq!(key, "route[0].matches");
        assert!(
            message.starts_with("'(de' is not a regular expression"),
            "{message}"
        );
    }

    #[test]
    fn handoff_from_must_name_a_sender() {
        let extra = "\n[handoff]\nfrom = \"sales\"\n";
        let (line, key, message) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (line_of(extra, "from ="), "handoff.from")
        );
        assert_eq!(message, "no [[sender]] is named 'sales' (there are team)");
    }

    #[test]
    fn addresses_must_parse() {
        for (extra, key) in [
            (
                "\n[handoff]\ndefault_owner = \"sales\"\n",
                "handoff.default_owner",
            ),
            (
                "\n[[route]]\nowner = \"anna at company\"\n",
                "route[0].owner",
            ),
            (
                "\n[[route]]\nowners = [\"a@company.com\", \"b@\"]\n",
                "route[0].owners",
            ),
            (
                "\n[[route]]\nowner = \"a@company.com\"\nrecipients = [\"emea\"]\n",
                "route[0].recipients",
            ),
        ] {
            let (line, got, message) = problem(extra);
            assert_eq!(got, key, "{extra}");
            let last = extra.trim_end().lines().last().unwrap();
            assert_eq!(line, line_of(extra, last), "{extra}");
            assert!(message.contains("is not an email address"), "{message}");
        }
    }

    #[test]
    fn a_route_has_exactly_one_of_owner_and_owners_never_empty() {
        let extra = "\n[[route]]\nname = \"x\"\n";
        let (line, key, message) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (line_of(extra, "[[route]]"), "route[0].owner")
        );
        assert!(message.contains("needs an owner"), "{message}");

        let extra = "\n[[route]]\nowner = \"a@company.com\"\nowners = [\"b@company.com\"]\n";
        let (line, key, message) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (line_of(extra, "owners"), "route[0].owners")
        );
        assert!(message.contains("either owner or owners"), "{message}");

        let extra = "\n[[route]]\nowners = []\n";
        let (line, key, _) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (line_of(extra, "owners"), "route[0].owners")
        );

        let extra = "\n[[route]]\nowners = [\"a@company.com\", \"A@company.com\"]\n";
        let (_, key, message) = problem(extra);
        assert_eq!(key, "route[0].owners");
        assert!(message.contains("listed twice"), "{message}");
    }

    #[test]
    fn field_and_matches_go_together() {
        let extra = "\n[[route]]\nowner = \"a@company.com\"\nfield = \"Country\"\n";
        let (line, key, _) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (line_of(extra, "field"), "route[0].field")
        );
        let extra = "\n[[route]]\nowner = \"a@company.com\"\nmatches = \"^de$\"\n";
        let (line, key, _) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (line_of(extra, "matches"), "route[0].matches")
        );
    }

    #[test]
    fn route_names_are_unique_and_domains_are_domains() {
        let route = "\n[[route]]\nname = \"emea\"\nowner = \"a@company.com\"\n";
        let extra = format!("{route}{route}");
        let err = parse(&extra).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].key.as_deref(), Some("route[1].name"));
        let second = format!("{BASE}{extra}")
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("name = \"emea\""))
            .map(|(i, _)| i + 1)
            .nth(1);
        assert_eq!(err.problems[0].line, second);

        for bad in ["de", "*.", "a@b.de", "*.*.de", "example..de"] {
            let extra = format!("\n[[route]]\nowner = \"a@company.com\"\ndomains = [\"{bad}\"]\n");
            let (line, key, _) = problem(&extra);
            assert_eq!(
                (line, key.as_str()),
                (
                    line_of(&extra, &format!("domains = [\"{bad}")),
                    "route[0].domains"
                ),
                "{bad}"
            );
        }
        let c = parse("\n[[route]]\nowner = \"a@company.com\"\ndomains = [\"@Example.DE\", \".de\", \"*.at\"]\n").unwrap();
        assert_eq!(
            c.actions.routing.routes[0].domains,
            ["example.de", "*.de", "*.at"]
        );
    }

    #[test]
    fn policy_loop_keys_are_checked() {
        let extra = "\n[policy]\nsoft_bounce_limit = 0\n";
        let (line, key, message) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (
                line_of(extra, "soft_bounce_limit"),
                "policy.soft_bounce_limit"
            )
        );
        assert_eq!(message, "must be at least 1");
        for k in ["ooo_default_pause", "soft_bounce_window"] {
            let extra = format!("\n[policy]\n{k} = \"a week\"\n");
            let (line, key, _) = problem(&extra);
            assert_eq!((line, key), (line_of(&extra, k), format!("policy.{k}")));
        }
        let extra = "\n[handoff]\ninterval = \"daily\"\n";
        let (line, key, _) = problem(extra);
        assert_eq!(
            (line, key.as_str()),
            (line_of(extra, "interval"), "handoff.interval")
        );
    }

    #[test]
    fn the_shipped_configurations_route_hand_off_and_enroll_customers() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let demo = Config::load(&repo.join("config/leadloop.toml")).unwrap();
        let sales = "sales@company.com".parse().unwrap();
        assert_eq!(demo.actions.routing.default_owner.as_ref(), Some(&sales));
        assert!(demo.actions.routing.routes.is_empty());
        assert!(demo.actions.handoff.enabled);
        let rules = demo.sequences.enroll_rules();
        let retention = rules
            .iter()
            .find(|r| r.sequence.as_str() == "retention")
            .expect("the demo ships a retention sequence");
        assert_eq!(retention.on_status, [LeadStatus::Customer]);
        assert!(retention.kinds.is_empty(), "no message enrolls into it");
        let welcome = rules
            .iter()
            .find(|r| r.sequence.as_str() == "welcome")
            .unwrap();
        assert!(welcome.on_status.is_empty() && !welcome.kinds.is_empty());

        let production = Config::load(&repo.join("config/production.example.toml")).unwrap();
        let names: Vec<_> = production
            .actions
            .routing
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["emea", "dach", "by-country"]);
        assert_eq!(production.actions.handoff.sender.as_deref(), Some("team"));
        assert!(
            production
                .rules()
                .sales
                .iter()
                .any(|a| a.as_str() == "jonas.sales@company.com")
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_in_file_order() {
        let extra = "\n[handoff]\nfrom = \"nobody\"\ndefault_owner = \"x\"\n\n[[route]]\nfield = \"Country\"\n";
        let err = parse(extra).unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .filter_map(|p| p.key.as_deref())
            .collect();
        assert_eq!(
            keys,
            [
                "handoff.from",
                "handoff.default_owner",
                "route[0].owner",
                "route[0].field"
            ],
            "{err}"
        );
    }
}
