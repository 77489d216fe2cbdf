//! Mail loops: our address in `X-Loop`, or more `Received` hops than any real path has.

use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::classify::parse;

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    if let Some(l) = parse::header(m.msg, "X-Loop")
        && parse::emails_in(&l).iter().any(|a| m.ctx.is_own(a))
    {
        ev.push(format!("header X-Loop: {}", parse::clip(&l, 100)));
        return Some(Decision::ignored("mail loop (X-Loop names our address)"));
    }
    let received = parse::count_headers(m.msg, "Received");
    (received > 30).then(|| Decision::ignored(format!("mail loop ({received} Received headers)")))
}
