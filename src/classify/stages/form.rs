//! Website form notifications: configured profiles first, then the built-in templates of
//! hosted services and site builders, then any notification-shaped message (fields with an
//! email field, or a machine sender with a Reply-To). The lead is the submitter.

use crate::classify::decision::{Decision, Submission};
use crate::classify::input::Input;
use crate::classify::{FormProfile, channel, forms, parse};
use crate::domain::{EmailAddress, Person};

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let hit = detect(m)?;
    Some(submission(m, hit, ev))
}

/// A recognised form notification.
pub struct FormHit<'r> {
    profile: Option<&'r FormProfile>,
    name: String,
    fields: Vec<(String, String)>,
    evidence: Vec<String>,
    /// A hosted service recognised by its sending domain: its layout may name the
    /// submitter's address only as an answer, so any address in the body may be taken.
    hosted: bool,
}

fn profile_matches(
    p: &FormProfile,
    from: Option<&EmailAddress>,
    subject: &str,
    body: &str,
) -> Option<String> {
    if let Some(f) = from {
        for entry in &p.from {
            let hit = if entry.contains('@') {
                EmailAddress::parse(entry).is_ok_and(|e| e == *f)
            } else {
                parse::domain_matches(f.domain(), entry)
            };
            if hit {
                return Some(format!("form profile '{}' (from {entry})", p.name));
            }
        }
    }
    let subject_l = subject.to_lowercase();
    if let Some(s) = p
        .subject_contains
        .iter()
        .find(|s| !s.trim().is_empty() && subject_l.contains(&s.to_lowercase()))
    {
        return Some(format!(
            "form profile '{}' (subject contains \"{s}\")",
            p.name
        ));
    }
    let body_l = parse::clip(body, parse::MAX_TEXT).to_lowercase();
    p.body_contains
        .iter()
        .find(|s| !s.trim().is_empty() && body_l.contains(&s.to_lowercase()))
        .map(|s| format!("form profile '{}' (body contains \"{s}\")", p.name))
}

/// The form notification this message is, if it is one.
pub fn detect<'r>(m: &Input<'r>) -> Option<FormHit<'r>> {
    let (msg, from_addr, subject) = (m.msg, m.sender(), m.subject);
    let texts = &m.texts;
    if let Some((p, ev)) = m
        .ctx
        .rules
        .forms
        .iter()
        .find_map(|p| profile_matches(p, from_addr, subject, m.body()).map(|e| (p, e)))
    {
        return Some(FormHit {
            profile: Some(p),
            name: p.name.clone(),
            fields: texts.fields().to_vec(),
            evidence: vec![ev],
            hosted: false,
        });
    }
    let fields = texts.fields();
    let reply_to = parse::first_address(msg, "Reply-To");
    let system = from_addr.is_some_and(forms::is_system_sender);
    let differs = match (&reply_to, from_addr) {
        (Some(r), Some(f)) => r.email != *f,
        (Some(_), None) => true,
        _ => false,
    };
    let has_email = || {
        forms::email_field(fields, None).is_some()
            || forms::email_field_loose(fields, &|_| true).is_some()
    };
    // A notification has fields, a Reply-To or a machine sender; a person's letter has none of
    // them and skips the template search.
    let candidate = !fields.is_empty() || reply_to.is_some() || system;
    let builtin = if candidate || from_addr.is_some_and(forms::hosted_service) {
        forms::builtin(from_addr, subject, m.body(), &|| parse::html_parts(msg))
    } else {
        None
    };
    if let Some(b) = builtin {
        // A template sentence or a subject can be quoted by a person; ask for what a form
        // notification has besides: an email field, or a machine sender with a Reply-To.
        let ok = b.by_sender
            || (b.strong && (has_email() || (differs && (system || reply_to.is_some()))))
            || (!b.strong && fields.len() >= 2 && has_email());
        if ok {
            return Some(FormHit {
                profile: None,
                name: b.profile.name.to_owned(),
                fields: fields.to_vec(),
                evidence: vec![b.evidence],
                hosted: b.by_sender,
            });
        }
    }
    // Fields with an email field; or, from a machine, fields and a Reply-To (the submitter's
    // address often travels only there).
    let with_email = fields.len() >= 2 && forms::email_field(fields, None).is_some();
    let by_reply_to = !fields.is_empty() && system && differs && reply_to.is_some();
    if !(with_email || by_reply_to) || (!system && !differs) {
        return None;
    }
    let mut evidence = vec![if with_email {
        format!(
            "{} Label: value fields including an email field",
            fields.len()
        )
    } else {
        format!("{} Label: value fields and a Reply-To", fields.len())
    }];
    if let Some(f) = from_addr.filter(|f| forms::is_system_sender(f)) {
        evidence.push(format!("system sender {f}"));
    } else {
        evidence.push("Reply-To differs from From".into());
    }
    let name = from_addr
        .and_then(|f| {
            forms::service_name(f)
                .map(str::to_owned)
                .or_else(|| (f.local_part() == "wordpress").then(|| "wordpress".to_owned()))
        })
        .unwrap_or_else(|| "generic".to_owned());
    Some(FormHit {
        profile: None,
        name,
        fields: fields.to_vec(),
        evidence,
        hosted: false,
    })
}

/// The submission a recognised notification records: the submitter, the fields, the channel.
pub fn submission(m: &Input<'_>, mut hit: FormHit<'_>, ev: &mut Vec<String>) -> Decision {
    ev.append(&mut hit.evidence);
    let (msg, from_addr, body) = (m.msg, m.sender(), m.body());
    let Some((email, how, alt_name)) = submitter_address(m, &hit) else {
        return Decision::ignored("form notification without a submitter address");
    };
    ev.push(how.to_owned());
    let empty: &[String] = &[];
    let labels = forms::Labels {
        name: hit.profile.map_or(empty, |p| &p.name_fields),
        company: hit.profile.map_or(empty, |p| &p.company_fields),
        phone: hit.profile.map_or(empty, |p| &p.phone_fields),
    };
    let sub = forms::submitter(&hit.fields, &labels);
    let mut fields = hit.fields;
    forms::add_origin(&mut fields, body, &parse::html_parts(msg));
    let utm = forms::utm_source(&fields, body)
        .or_else(|| forms::referrer_source(&fields).map(str::to_owned));
    let site = fields
        .iter()
        .find(|(l, _)| l == "page_url")
        .and_then(|(_, v)| forms::url_host(v))
        .or_else(|| {
            from_addr
                .filter(|f| {
                    !forms::hosted_service(f)
                        && forms::esp_domain(f).is_none()
                        && forms::is_system_sender(f)
                })
                .map(|f| f.domain().to_owned())
        });
    if let Some(s) = site {
        fields.push(("form_site".into(), s));
    }
    let lead = Person {
        email,
        name: sub.name.or(alt_name),
        company: sub.company,
        phone: sub.phone,
    };
    let (channel, channel_ev) = channel::attribute(
        m.ctx.rules,
        &channel::Signals {
            recipients: m.recipients(),
            utm_source: utm.as_deref(),
            form: Some(&hit.name),
        },
    );
    ev.push(channel_ev);
    Decision::Form(Submission {
        lead,
        form: hit.name,
        fields: forms::to_map(&fields),
        channel,
    })
}

/// The submitter's address, how it was found, and a name found with it.
///
/// The submitter may be the sender itself (a site that mails "from" the visitor); a field or
/// Reply-To naming the sender says so. Only the last-resort scan of the body leaves the
/// sender out, since there it is as likely the site's own address.
fn submitter_address(
    m: &Input<'_>,
    hit: &FormHit<'_>,
) -> Option<(EmailAddress, &'static str, Option<String>)> {
    let from_addr = m.sender();
    let acceptable = |a: &EmailAddress| {
        !m.ctx.is_own(a) && !forms::is_system_sender(a) && !forms::hosted_service(a)
    };
    let not_sender = |a: &EmailAddress| acceptable(a) && Some(a) != from_addr;
    let reply_to = parse::first_address(m.msg, "Reply-To").filter(|r| acceptable(&r.email));
    let configured = hit
        .profile
        .filter(|p| !p.email_fields.is_empty())
        .and_then(|p| forms::email_field(&hit.fields, Some(&p.email_fields)))
        .filter(|a| acceptable(a));
    let field = forms::email_field(&hit.fields, None)
        .filter(|a| acceptable(a))
        .map(|a| (a, None))
        .or_else(|| forms::email_field_loose(&hit.fields, &acceptable));
    // Reply-To is the submitter when the form says so or says nothing; a Reply-To that
    // differs from the form's own email field is the site's (an owner's personal address).
    Some(match (configured, reply_to, field) {
        (Some(a), _, _) => (a, "configured email field", None),
        (None, Some(r), Some((f, n))) if r.email != f => (
            f,
            "submitter from the email field (Reply-To is someone else)",
            n,
        ),
        (None, Some(r), _) => (r.email, "Reply-To is the submitter", r.name),
        (None, None, Some((f, n))) => (f, "submitter from the email field", n),
        (None, None, None) => {
            let a = hit
                .hosted
                .then(|| forms::any_email(m.body(), &not_sender))
                .flatten()?;
            (a, "submitter from the only address in the answers", None)
        }
    })
}
