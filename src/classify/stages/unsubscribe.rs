//! Requests to stop: sent to our unsubscribe address, with an unsubscribe subject, or a
//! short message in the writer's own words asking to stop.

use std::sync::LazyLock;

use regex::Regex;

use crate::classify::decision::Decision;
use crate::classify::input::{Input, person};
use crate::classify::{forms, parse};

static UNSUB_INTENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\bunsubscribe\b|\bremove me\b|\bremove (?:my (?:e-?mail|address)|us)\b|\bstop (?:e-?mailing|sending|contacting)\b|\btake me off\b|\bopt(?:-| )?out\b|\bno (?:more|further) e-?mails\b|\babmelden\b|\babbestellen\b|\bkeine (?:weiteren )?(?:e-?mails|nachrichten|werbung)\b|\baus (?:ihrem|dem) verteiler\b|d[ée]sinscri|d[ée]sabonner|ne plus recevoir|darse de baja|\bdarme de baja\b|\bdar de baja\b|no (?:quiero )?recibir m[áa]s|cancella(?:re)? (?:la mia )?iscrizione|disiscriv|non (?:voglio )?ricevere pi[ùu]|\bafmelden\b|\buitschrijven\b|geen (?:e-?mails|berichten) meer|descadastr|cancelar (?:a )?inscri[çc][ãa]o|n[ãa]o (?:quero )?receber mais",
    )
    .expect("static regex")
});
static UNSUB_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:(?:re|aw|sv|rif|antw)\s*:\s*)?(?:unsubscribe|remove me|opt[- ]?out|abmelden|abbestellen|d[ée]sinscription|d[ée]sabonner|darse de baja|dar de baja|baja\b|disiscrizione|cancellami|afmelden|uitschrijven|descadastrar|cancelar inscri)",
    )
    .expect("static regex")
});

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let f = m.from.as_ref().filter(|f| !m.ctx.is_own(&f.email))?;
    let tag = m.recipients().iter().find(|r| {
        m.ctx.is_own(r)
            && r.plus_tag().is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t == "unsubscribe" || t.starts_with("unsubscribe-")
            })
    });
    let why = if let Some(r) = tag {
        format!("sent to unsubscribe address {r}")
    } else if UNSUB_SUBJECT.is_match(parse::clip(m.subject, 200)) {
        format!("subject \"{}\"", parse::clip(m.subject, 60))
    } else if !forms::is_system_sender(&f.email) && intent(m.texts.new_text()) {
        "short message asking to stop".into()
    } else {
        return None;
    };
    ev.push(why);
    Some(Decision::Unsubscribe { lead: person(f) })
}

/// A short new text asking to stop: the writer's own words, not the quoted history.
/// `text` is the body's [`parse::new_text_whole`].
pub fn intent(text: &str) -> bool {
    !text.is_empty() && text.chars().count() < 300 && UNSUB_INTENT.is_match(text)
}
