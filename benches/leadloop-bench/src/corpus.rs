//! Deterministic benchmark corpus: realistic ~4 KB RFC 5322 messages (CRLF) of the kinds a
//! monitored lead inbox (`leads@company.com`) receives, in roughly real proportions:
//!
//! | kind | share | shape |
//! |---|---|---|
//! | inquiry | 45% | a distinct person writes; some named, some bare; ~40% HTML multipart/alternative |
//! | form | 15% | `wordpress@example-site.com`, Reply-To = submitter, `Label: value` lines |
//! | forward | 10% | a colleague forwards: Gmail inline block (70%) or attached message/rfc822 |
//! | autoreply | 10% | RFC 3834 `Auto-Submitted: auto-replied`, out-of-office text |
//! | bounce | 8% | RFC 3464 DSN, multipart/report; report-type=delivery-status (hard and soft) |
//! | newsletter | 12% | List-Id, List-Unsubscribe, Precedence: bulk, HTML |
//!
//! Sizes are padded to 3.5–4.8 KB (mean ~4.1 KB) with prose paragraphs built from business sentences, so
//! parsers see text, not filler. The same `(n, seed)` always gives the same bytes: the
//! generator uses its own xorshift64* rather than `rand`, whose algorithms may change between
//! versions. Every message also carries its expected classification and lead address, so
//! benchmarks can check accuracy, not only speed.

/// What the message is, as the generator built it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Inquiry,
    Form,
    Forward,
    AutoReply,
    Bounce,
    Newsletter,
}

impl Kind {
    /// The classifier kind (SPEC.md table) this message must get.
    pub fn expected_kind(self) -> &'static str {
        match self {
            Kind::Inquiry => "inquiry",
            Kind::Form => "form",
            Kind::Forward => "forward",
            Kind::AutoReply => "autoreply",
            Kind::Bounce => "bounce",
            Kind::Newsletter => "ignored",
        }
    }
}

/// One generated message.
#[derive(Clone, Debug)]
pub struct Message {
    pub kind: Kind,
    /// The lead's address a correct ingest records (the submitter for forms, the original
    /// sender for forwards); `None` for auto-replies, bounces and newsletters.
    // Ground truth that only the generator's own tests read so far.
    #[cfg_attr(not(test), expect(dead_code))]
    pub lead: Option<String>,
    #[cfg_attr(not(test), expect(dead_code))]
    pub message_id: String,
    /// Complete RFC 5322 message with CRLF line ends.
    pub raw: Vec<u8>,
}

/// The monitored inbox every message is addressed to.
pub const INBOX_ADDRESS: &str = "leads@company.com";

/// `n` messages from `seed`, deterministic.
pub fn generate(n: usize, seed: u64) -> Vec<Message> {
    let mut g = Gen::new(seed);
    (0..n).map(|i| g.message(i)).collect()
}

/// Tiny xorshift64* generator: stable output forever, which `rand`'s StdRng does not promise.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 step so that small seeds (0, 1, 2) still give well-mixed states.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the tiny modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const FIRST: &[&str] = &[
    "Maria", "James", "Aisha", "Lukas", "Sofia", "Chen", "Olivia", "Mateo", "Priya", "Noah",
    "Emma", "Kenji", "Fatima", "Liam", "Ingrid", "Diego", "Hannah", "Omar", "Claire", "Tomasz",
    "Yuki", "Grace", "Pedro", "Elena", "Samuel", "Nadia", "Victor", "Leila", "Daniel", "Anna",
];
const LAST: &[&str] = &[
    "Schmidt",
    "Okafor",
    "Nguyen",
    "Garcia",
    "Rossi",
    "Johansson",
    "Kowalski",
    "Patel",
    "Murphy",
    "Dubois",
    "Tanaka",
    "Fischer",
    "Silva",
    "Novak",
    "Haddad",
    "Larsen",
    "Moreau",
    "Brennan",
    "Costa",
    "Weber",
    "Ibrahim",
    "Lindqvist",
    "Romero",
    "Becker",
    "Yilmaz",
    "Walsh",
    "Kim",
];
const COMPANIES: &[(&str, &str)] = &[
    ("Northwind Logistics", "northwind-logistics.example"),
    ("Brightpath Analytics", "brightpath.example"),
    ("Helios Manufacturing", "helios-mfg.example"),
    ("Bluestone Dental Group", "bluestonedental.example"),
    ("Keller & Sons Engineering", "keller-sons.example"),
    ("Aurora Health Partners", "aurorahealth.example"),
    ("Vantage Retail GmbH", "vantage-retail.example"),
    ("Crescent Software", "crescentsoft.example"),
    ("Meridian Freight", "meridianfreight.example"),
    ("Oakridge Property Management", "oakridge-pm.example"),
    ("Lumen Architects", "lumen-arch.example"),
    ("Summit Insurance Brokers", "summitbrokers.example"),
    ("Tidewater Foods", "tidewaterfoods.example"),
    ("Granite Legal LLP", "granitelegal.example"),
    ("Pioneer Solar", "pioneersolar.example"),
];
const FREEMAIL: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "web.de",
    "icloud.com",
];
const TITLES: &[&str] = &[
    "Operations Manager",
    "Head of Marketing",
    "CFO",
    "IT Director",
    "Office Manager",
    "Founder & CEO",
    "Procurement Lead",
    "VP Sales",
];
const STAFF: &[(&str, &str)] = &[
    ("Tom Becker", "tom.becker@company.com"),
    ("Julia Hartmann", "julia.hartmann@company.com"),
    ("Marcus Reid", "marcus.reid@company.com"),
    ("Sara Lind", "sara.lind@company.com"),
];
const SUBJECTS: &[&str] = &[
    "Question about pricing for a team of 25",
    "Request for a demo",
    "Do you integrate with our CRM?",
    "Quote request",
    "Looking for a solution for our sales team",
    "Enterprise plan details",
    "Can we schedule a call next week?",
    "Partnership inquiry",
    "Interested in your services",
    "Implementation timeline and onboarding",
    "Pricing for multiple locations",
    "RFP: marketing automation platform",
];
const ASKS: &[&str] = &[
    "We are evaluating tools to replace our current spreadsheet-based process and your product came up several times.",
    "Could you send me a quote for roughly twenty-five users, billed annually?",
    "I would like to schedule a short demo with my team sometime next week, ideally Tuesday or Thursday afternoon.",
    "Do you offer an integration with Salesforce or HubSpot, or would we need to export data manually?",
    "We operate in three countries, so support for several time zones and languages is important to us.",
    "Our contract with the current vendor ends in March, so we are looking to decide within the next six weeks.",
    "Could you tell me whether the data is hosted in the EU and whether you sign a data processing agreement?",
    "A colleague recommended you after a conference talk in Berlin last month.",
];
const PROSE: &[&str] = &[
    "Our sales team currently handles about two hundred inbound requests a month, and most of them still arrive by email.",
    "We tried a larger marketing suite last year, but the setup took months and the team never really adopted it.",
    "What matters most to us is that nobody has to copy inquiries into a spreadsheet by hand anymore.",
    "The marketing department would like to see which campaigns actually lead to signed contracts, not only to clicks.",
    "We have a small IT team, so anything we run ourselves needs to be simple to install and to keep updated.",
    "Last quarter we lost at least two deals because a request sat unanswered in a shared mailbox for over a week.",
    "Budget for this project has been approved for the coming fiscal year, pending a successful pilot.",
    "Please include any onboarding or training costs in the estimate so that I can present the full picture internally.",
    "Our legal team will want to review the terms, in particular the sections on data retention and deletion.",
    "If possible, we would start with a pilot in one region and roll out to the other offices afterwards.",
    "I have attached nothing yet, but I can share our current process documentation if that helps your assessment.",
    "We usually follow up with prospects three times over two weeks, and the timing is currently managed by memory.",
    "Several of our customers contact us through the website form, others write directly to one of the account managers.",
    "It would help to know how other companies of a similar size have structured their follow-up sequences.",
    "Reporting is done monthly at the moment, which is too slow to react to what is happening in the pipeline.",
    "We would also need a way to stop automated emails immediately once a prospect has replied.",
    "The board asked us to reduce the cost of our current tooling, which is charged per seat and per contact.",
    "Our busiest period is between September and November, so a go-live before the summer would be ideal.",
    "Any references from companies in logistics or manufacturing would be very much appreciated.",
    "Thank you in advance for your time, and I look forward to hearing from you.",
];
const DISCLAIMER: &[&str] = &[
    "This email and any attachments are confidential and may be legally privileged.",
    "If you are not the intended recipient, please notify the sender immediately and delete this message.",
    "Any unauthorised copying, disclosure or distribution of the material in this email is strictly forbidden.",
    "The company accepts no liability for any damage caused by any virus transmitted by this email.",
    "Registered office: 12 Harbour Street, Hamburg. Commercial register HRB 123456, managing directors as listed on our website.",
    "Please consider the environment before printing this email.",
    "Emails sent to this address while I am away are not forwarded automatically.",
];
/// Our own nurture emails, quoted back inside bounces.
const SALES: &[&str] = &[
    "Thank you again for your interest in our platform and for taking the time to tell us about your team.",
    "I wanted to follow up on your request and share a short case study from a company of a similar size.",
    "Many of our customers start with a two-week pilot, which we set up together with you in one call.",
    "Our pricing is per company, not per seat, so adding colleagues later does not change the cost.",
    "If you would like to see it in action, you can pick a time for a twenty-minute demo using the link below.",
    "You can reply to this email directly; it reaches me and not a shared inbox.",
    "Data is hosted in Frankfurt, and we sign a data processing agreement with every customer.",
    "Should this not be a priority right now, just let me know and I will not follow up again.",
];
const NEWS: &[&str] = &[
    "Three out of four B2B buyers now expect a first answer within one business day, according to a new survey of purchasing managers.",
    "A mid-sized logistics firm describes how it cut its response time to inbound requests from four days to four hours.",
    "Email remains the most used channel for first contact in industrial sales, ahead of phone calls and chat.",
    "Our columnist argues that most nurture sequences are too long and that three well-timed messages beat seven generic ones.",
    "Regulators in several countries are tightening the rules on consent for marketing email, and the fines are growing.",
    "Webinar next Thursday: measuring which channels bring leads that actually close, with examples from manufacturing.",
    "Reader question of the week: how do you keep sales and marketing looking at the same numbers?",
    "New research suggests that personalised subject lines matter less than the timing of the first follow-up.",
];
const NEWSLETTERS: &[(&str, &str, &str)] = &[
    (
        "Industry Weekly",
        "news@industryweekly.example",
        "weekly.industryweekly.example",
    ),
    (
        "SaaS Growth Digest",
        "digest@saasgrowth.example",
        "digest.saasgrowth.example",
    ),
    (
        "Logistics Today",
        "newsletter@logisticstoday.example",
        "lt-news.logisticstoday.example",
    ),
    (
        "The B2B Marketer",
        "hello@b2bmarketer.example",
        "b2bm.list.b2bmarketer.example",
    ),
];
const UTM: &[&str] = &[
    "google",
    "linkedin",
    "newsletter",
    "bing",
    "capterra",
    "direct",
    "facebook",
];

const DAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const ZONES: &[&str] = &[
    "+0000", "+0100", "-0500", "+0200", "-0800", "+0530", "+0900",
];

/// 2026-10-01 00:00:00 UTC: the corpus spans the following weeks.
const BASE_EPOCH: u64 = 1_790_812_800;

struct Person {
    name: String,
    email: String,
    company: &'static str,
    title: &'static str,
    phone: String,
}

impl Person {
    /// The domain of the person's address.
    fn domain(&self) -> &str {
        self.email.split('@').nth(1).unwrap_or("example.org")
    }
}

struct Gen {
    rng: Rng,
    seed: u64,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: Rng::new(seed),
            seed,
        }
    }

    fn message(&mut self, i: usize) -> Message {
        let roll = self.rng.below(100);
        let kind = match roll {
            0..45 => Kind::Inquiry,
            45..60 => Kind::Form,
            60..70 => Kind::Forward,
            70..80 => Kind::AutoReply,
            80..88 => Kind::Bounce,
            _ => Kind::Newsletter,
        };
        let target = 3500 + self.rng.below(900);
        let epoch = BASE_EPOCH + i as u64 * 137 + self.rng.below(120) as u64;
        let date = rfc2822_date(epoch, self.rng.pick(ZONES));
        match kind {
            Kind::Inquiry => self.inquiry(i, &date, target),
            Kind::Form => self.form(i, &date, target),
            Kind::Forward => self.forward(i, &date, target),
            Kind::AutoReply => self.autoreply(i, &date, target),
            Kind::Bounce => self.bounce(i, &date, target),
            Kind::Newsletter => self.newsletter(i, &date, target),
        }
    }

    /// A distinct person for message `i` (the index in the local part keeps addresses unique).
    fn person(&mut self, i: usize) -> Person {
        let first = self.rng.pick(FIRST);
        let last = self.rng.pick(LAST);
        let (company, domain) = self.rng.pick(COMPANIES);
        let domain = if self.rng.chance(20) {
            self.rng.pick(FREEMAIL)
        } else {
            domain
        };
        let local = format!("{}.{}{}", first.to_lowercase(), last.to_lowercase(), i);
        Person {
            name: format!("{first} {last}"),
            email: format!("{local}@{domain}"),
            company,
            title: self.rng.pick(TITLES),
            phone: format!(
                "+49 {} {}",
                30 + self.rng.below(60),
                1_000_000 + self.rng.below(8_999_999)
            ),
        }
    }

    fn message_id(&mut self, i: usize, domain: &str) -> String {
        format!("<{}.{:016x}.{}@{}>", i, self.rng.next(), self.seed, domain)
    }

    /// 2–4 distinct sentences from `pool`.
    fn paragraph(&mut self, pool: &[&str]) -> String {
        let n = (2 + self.rng.below(3)).min(pool.len());
        let mut chosen: Vec<usize> = Vec::with_capacity(n);
        while chosen.len() < n {
            let k = self.rng.below(pool.len());
            if !chosen.contains(&k) {
                chosen.push(k);
            }
        }
        chosen
            .iter()
            .map(|&k| pool[k])
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Adds paragraphs from `pool` until `build(paragraphs)` reaches `target` bytes.
    fn padded(
        &mut self,
        target: usize,
        pool: &[&str],
        build: impl Fn(&[String]) -> String,
    ) -> Vec<u8> {
        let mut paras: Vec<String> = Vec::new();
        loop {
            let out = build(&paras);
            if out.len() >= target || paras.len() >= 40 {
                return out.into_bytes();
            }
            let p = self.paragraph(pool);
            paras.push(p);
        }
    }

    fn inquiry(&mut self, i: usize, date: &str, target: usize) -> Message {
        let p = self.person(i);
        let mid = self.message_id(i, p.domain());
        let subject = self.rng.pick(SUBJECTS);
        let ask1 = self.rng.pick(ASKS);
        let ask2 = self.rng.pick(ASKS);
        let named = self.rng.chance(75);
        let html = self.rng.chance(40);
        let from = if named {
            format!("{} <{}>", p.name, p.email)
        } else {
            p.email.clone()
        };
        let boundary = format!("=_alt_{:012x}", self.rng.next() & 0xffff_ffff_ffff);
        let raw = self.padded(target, PROSE, |paras| {
            let signature = if named {
                format!("{}\n{}, {}\n{}", p.name, p.title, p.company, p.phone)
            } else {
                format!("{}\n{}", p.company, p.phone)
            };
            let mut text = format!("Hello,\n\n{ask1} {ask2}\n\n");
            for para in paras {
                text.push_str(para);
                text.push_str("\n\n");
            }
            text.push_str("Best regards,\n");
            text.push_str(&signature);
            let mut m = format!(
                "From: {from}\nTo: {INBOX_ADDRESS}\nSubject: {subject}\nDate: {date}\n\
                 Message-ID: {mid}\nMIME-Version: 1.0\n"
            );
            if html {
                m.push_str(&format!(
                    "Content-Type: multipart/alternative; boundary=\"{boundary}\"\n\n\
                     --{boundary}\nContent-Type: text/plain; charset=utf-8\n\
                     Content-Transfer-Encoding: 8bit\n\n{}\n--{boundary}\n\
                     Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
                     <html><body>{}</body></html>\n--{boundary}--\n",
                    wrap(&text),
                    html_paragraphs(&text)
                ));
            } else {
                m.push_str(&format!(
                    "Content-Type: text/plain; charset=utf-8\n\
                     Content-Transfer-Encoding: 8bit\n\n{}\n",
                    wrap(&text)
                ));
            }
            crlf(&m)
        });
        Message {
            kind: Kind::Inquiry,
            lead: Some(p.email),
            message_id: mid,
            raw,
        }
    }

    fn form(&mut self, i: usize, date: &str, target: usize) -> Message {
        let p = self.person(i);
        let mid = self.message_id(i, "example-site.com");
        let utm = self.rng.pick(UTM);
        let ask = self.rng.pick(ASKS);
        let raw = self.padded(target, PROSE, |paras| {
            let mut msg = ask.to_owned();
            for para in paras {
                msg.push(' ');
                msg.push_str(para);
            }
            let m = format!(
                "From: WordPress <wordpress@example-site.com>\nTo: {INBOX_ADDRESS}\n\
                 Reply-To: {} <{}>\nSubject: [Example Site] New contact form submission\n\
                 Date: {date}\nMessage-ID: {mid}\nMIME-Version: 1.0\n\
                 Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\
                 X-Mailer: PHPMailer 6.9.1 (https://github.com/PHPMailer/PHPMailer)\n\n\
                 Name: {}\nEmail: {}\nCompany: {}\nPhone: {}\n{}\nutm_source: {utm}\n\
                 \n-- \nThis e-mail was sent from a contact form on Example Site \
                 (https://example-site.com)\n",
                p.name,
                p.email,
                p.name,
                p.email,
                p.company,
                p.phone,
                // Form plugins wrap long messages; continuation lines carry no label.
                wrap(&format!("Message: {msg}"))
            );
            crlf(&m)
        });
        Message {
            kind: Kind::Form,
            lead: Some(p.email),
            message_id: mid,
            raw,
        }
    }

    fn forward(&mut self, i: usize, date: &str, target: usize) -> Message {
        let p = self.person(i);
        let (staff_name, staff_addr) = self.rng.pick(STAFF);
        let orig_mid = self.message_id(i, p.domain());
        let mid = self.message_id(i, "mail.company.com");
        let subject = self.rng.pick(SUBJECTS);
        let ask = self.rng.pick(ASKS);
        let attached = self.rng.chance(30);
        let boundary = format!("=_fwd_{:012x}", self.rng.next() & 0xffff_ffff_ffff);
        let orig_date = rfc2822_date(
            BASE_EPOCH + i as u64 * 137 - 3600 - self.rng.below(86_400) as u64,
            "+0100",
        );
        let raw = self.padded(target, PROSE, |paras| {
            let mut orig_body = format!("Hi {},\n\n{ask}\n\n", first_name(staff_name));
            for para in paras {
                orig_body.push_str(para);
                orig_body.push_str("\n\n");
            }
            orig_body.push_str(&format!("Kind regards,\n{}\n{}", p.name, p.company));
            let head = format!(
                "From: {staff_name} <{staff_addr}>\nTo: {INBOX_ADDRESS}\nSubject: Fwd: {subject}\n\
                 Date: {date}\nMessage-ID: {mid}\nMIME-Version: 1.0\n"
            );
            let m = if attached {
                format!(
                    "{head}Content-Type: multipart/mixed; boundary=\"{boundary}\"\n\n\
                     --{boundary}\nContent-Type: text/plain; charset=utf-8\n\n\
                     Could someone from sales pick this up? Came in to me directly.\n\n{staff_name}\n\n\
                     --{boundary}\nContent-Type: message/rfc822\n\
                     Content-Disposition: attachment; filename=\"inquiry.eml\"\n\n\
                     From: {} <{}>\nTo: {staff_name} <{staff_addr}>\nSubject: {subject}\n\
                     Date: {orig_date}\nMessage-ID: {orig_mid}\nMIME-Version: 1.0\n\
                     Content-Type: text/plain; charset=utf-8\n\n{}\n\n--{boundary}--\n",
                    p.name,
                    p.email,
                    wrap(&orig_body)
                )
            } else {
                format!(
                    "{head}Content-Type: text/plain; charset=UTF-8\n\n\
                     FYI - new lead, please follow up.\n\n\
                     ---------- Forwarded message ---------\nFrom: {} <{}>\n\
                     Date: {}\nSubject: {subject}\nTo: {staff_name} <{staff_addr}>\n\n\n{}\n",
                    p.name,
                    p.email,
                    gmail_date(&orig_date),
                    wrap(&orig_body)
                )
            };
            crlf(&m)
        });
        Message {
            kind: Kind::Forward,
            lead: Some(p.email),
            message_id: mid,
            raw,
        }
    }

    fn autoreply(&mut self, i: usize, date: &str, target: usize) -> Message {
        let p = self.person(i);
        let domain = p.domain().to_owned();
        let mid = self.message_id(i, &domain);
        let our_id = format!("<step-{:x}.{i}@company.com>", self.rng.next() & 0xffff_ffff);
        let (other_first, other_last) = (self.rng.pick(FIRST), self.rng.pick(LAST));
        let back = 1 + self.rng.below(20);
        let x_autoreply = self.rng.chance(50);
        let subject = self.rng.pick(SUBJECTS);
        let raw = self.padded(target, DISCLAIMER, |paras| {
            let mut body = format!(
                "Thank you for your message.\n\nI am out of the office until {back} December with \
                 limited access to email. For urgent matters please contact {other_first} \
                 {other_last} ({}.{}@{domain}).\n\n",
                other_first.to_lowercase(),
                other_last.to_lowercase()
            );
            // Long corporate disclaimers make auto-replies as big as real mail.
            for para in paras {
                body.push_str(para);
                body.push_str("\n\n");
            }
            body.push_str(&format!("Best regards,\n{}", p.name));
            let m = format!(
                "From: {} <{}>\nTo: {INBOX_ADDRESS}\nSubject: Out of Office: Re: {subject}\n\
                 Date: {date}\nMessage-ID: {mid}\nIn-Reply-To: {our_id}\nReferences: {our_id}\n\
                 Auto-Submitted: auto-replied\n{}MIME-Version: 1.0\n\
                 Content-Type: text/plain; charset=utf-8\n\n{}\n",
                p.name,
                p.email,
                if x_autoreply {
                    "X-Autoreply: yes\n"
                } else {
                    ""
                },
                wrap(&body)
            );
            crlf(&m)
        });
        Message {
            kind: Kind::AutoReply,
            lead: None,
            message_id: mid,
            raw,
        }
    }

    fn bounce(&mut self, i: usize, date: &str, target: usize) -> Message {
        let p = self.person(i);
        let mid = self.message_id(i, "mx1.company.com");
        let our_id = format!("<step-{:x}.{i}@company.com>", self.rng.next() & 0xffff_ffff);
        let hard = self.rng.chance(75);
        let (status, action, diag) = if hard {
            (
                "5.1.1",
                "failed",
                "smtp; 550 5.1.1 <RCPT>: Recipient address rejected: User unknown in virtual mailbox table",
            )
        } else {
            (
                "4.2.2",
                "delayed",
                "smtp; 452 4.2.2 <RCPT>: Mailbox full, quota exceeded",
            )
        };
        let diag = diag.replace("RCPT", &p.email);
        let boundary = format!("{:X}.{}/mx1.company.com", self.rng.next() & 0xffff_ffff, i);
        let queue_id = format!("{:010X}", self.rng.next() & 0xff_ffff_ffff);
        let subject = self.rng.pick(SUBJECTS);
        let raw = self.padded(target, SALES, |paras| {
            let mut quoted = String::new();
            for para in paras {
                quoted.push_str(para);
                quoted.push_str("\n\n");
            }
            let m = format!(
                "From: MAILER-DAEMON@mx1.company.com (Mail Delivery System)\nTo: {INBOX_ADDRESS}\n\
                 Subject: {}\nDate: {date}\nMessage-ID: {mid}\nAuto-Submitted: auto-replied\n\
                 MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n\
                 \tboundary=\"{boundary}\"\n\nThis is a MIME-encapsulated message.\n\n\
                 --{boundary}\nContent-Description: Notification\n\
                 Content-Type: text/plain; charset=us-ascii\n\n\
                 This is the mail system at host mx1.company.com.\n\n\
                 {}\n\n<{}>: host mx.{} said: {}\n\n\
                 --{boundary}\nContent-Description: Delivery report\n\
                 Content-Type: message/delivery-status\n\n\
                 Reporting-MTA: dns; mx1.company.com\nX-Postfix-Queue-ID: {queue_id}\n\
                 Arrival-Date: {date}\n\nFinal-Recipient: rfc822; {}\n\
                 Original-Recipient: rfc822;{}\nAction: {action}\nStatus: {status}\n\
                 Remote-MTA: dns; mx.{}\nDiagnostic-Code: {diag}\n\n\
                 --{boundary}\nContent-Description: Undelivered Message\n\
                 Content-Type: message/rfc822\n\n\
                 From: Sales Team <leads@company.com>\nTo: {}\nSubject: {subject}\n\
                 Message-ID: {our_id}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n\
                 Hello {},\n\n{}\n--{boundary}--\n",
                if hard {
                    "Undelivered Mail Returned to Sender"
                } else {
                    "Delayed Mail (still being retried)"
                },
                if hard {
                    "I'm sorry to have to inform you that your message could not\n\
                     be delivered to one or more recipients. It's attached below."
                } else {
                    "####################################################################\n\
                     # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                     ####################################################################"
                },
                p.email,
                p.domain(),
                diag,
                p.email,
                p.email,
                p.domain(),
                p.email,
                first_name(&p.name),
                wrap(&quoted)
            );
            crlf(&m)
        });
        Message {
            kind: Kind::Bounce,
            lead: None,
            message_id: mid,
            raw,
        }
    }

    fn newsletter(&mut self, i: usize, date: &str, target: usize) -> Message {
        let (name, addr, list) = self.rng.pick(NEWSLETTERS);
        let domain = addr.split('@').nth(1).unwrap_or("example.org");
        let mid = self.message_id(i, domain);
        let boundary = format!("=_nl_{:012x}", self.rng.next() & 0xffff_ffff_ffff);
        let issue = 100 + i % 300;
        let raw = self.padded(target, NEWS, |paras| {
            let mut text = format!("{name} - issue {issue}\n\nThis week's top stories:\n\n");
            for para in paras {
                text.push_str(para);
                text.push_str("\n\n");
            }
            text.push_str(&format!(
                "You receive this because you subscribed at {domain}. Unsubscribe: \
                 https://{domain}/unsubscribe?list={list}"
            ));
            let m = format!(
                "From: {name} <{addr}>\nTo: {INBOX_ADDRESS}\nSubject: {name} #{issue}: trends in \
                 B2B sales this week\nDate: {date}\nMessage-ID: {mid}\nList-Id: {name} <{list}>\n\
                 List-Unsubscribe: <mailto:unsubscribe@{domain}?subject=unsubscribe>, \
                 <https://{domain}/u/{i}>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n\
                 Precedence: bulk\nMIME-Version: 1.0\n\
                 Content-Type: multipart/alternative; boundary=\"{boundary}\"\n\n\
                 --{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{}\n\
                 --{boundary}\nContent-Type: text/html; charset=utf-8\n\n\
                 <html><body><table width=\"600\"><tr><td>{}</td></tr></table></body></html>\n\
                 --{boundary}--\n",
                wrap(&text),
                html_paragraphs(&text)
            );
            crlf(&m)
        });
        Message {
            kind: Kind::Newsletter,
            lead: None,
            message_id: mid,
            raw,
        }
    }
}

fn first_name(full: &str) -> &str {
    full.split(' ').next().unwrap_or(full)
}

/// LF → CRLF (the templates are written with `\n`).
fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// Wraps each line at 76 columns, as mail clients do.
fn wrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 70);
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for (k, word) in line.split(' ').enumerate() {
            if k > 0 {
                if col + 1 + word.len() > 76 {
                    out.push('\n');
                    col = 0;
                } else {
                    out.push(' ');
                    col += 1;
                }
            }
            out.push_str(word);
            col += word.len();
        }
    }
    out
}

/// Text paragraphs as wrapped `<p>` elements, HTML-escaped.
fn html_paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|p| {
            let escaped = p
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('\n', "<br>");
            wrap(&format!("<p>{escaped}</p>"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// RFC 5322 date for a Unix time shown in the given zone.
fn rfc2822_date(epoch: u64, zone: &str) -> String {
    let sign: i64 = if zone.starts_with('-') { -1 } else { 1 };
    let hh: i64 = zone[1..3].parse().unwrap_or(0);
    let mm: i64 = zone[3..5].parse().unwrap_or(0);
    let local = epoch as i64 + sign * (hh * 3600 + mm * 60);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    let wd = DAYS[(days + 3).rem_euclid(7) as usize];
    format!(
        "{wd}, {d:02} {} {y} {:02}:{:02}:{:02} {zone}",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Gmail's forwarded-block date style: `Thu, Oct 1, 2026 at 9:15 AM`.
fn gmail_date(rfc2822: &str) -> String {
    let parts: Vec<&str> = rfc2822.split(' ').collect();
    if parts.len() < 5 || parts[4].len() < 5 {
        return rfc2822.to_owned();
    }
    let day = parts[1].trim_start_matches('0');
    let hour: u32 = parts[4][..2].parse().unwrap_or(0);
    let minute = &parts[4][3..5];
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!(
        "{} {} {day}, {} at {h12}:{minute} {ampm}",
        parts[0], parts[2], parts[3]
    )
}

/// Howard Hinnant's days → (year, month, day) for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn deterministic_unique_and_sized() {
        let a = generate(600, 7);
        let b = generate(600, 7);
        assert!(a.iter().zip(&b).all(|(x, y)| x.raw == y.raw));
        assert_ne!(generate(10, 8)[0].raw, a[0].raw);
        let ids: HashSet<_> = a.iter().map(|m| m.message_id.clone()).collect();
        assert_eq!(ids.len(), a.len(), "Message-IDs are unique");
        let leads: Vec<_> = a.iter().filter_map(|m| m.lead.clone()).collect();
        let distinct: HashSet<_> = leads.iter().collect();
        assert_eq!(
            distinct.len(),
            leads.len(),
            "every lead is a distinct person"
        );
        let mean = a.iter().map(|m| m.raw.len()).sum::<usize>() / a.len();
        assert!((3600..=4800).contains(&mean), "mean size {mean}");
        let mut kinds: HashMap<Kind, usize> = HashMap::new();
        for m in &a {
            *kinds.entry(m.kind).or_default() += 1;
            // CRLF only, no bare LF, lines within RFC 5322's 998 limit.
            let text = String::from_utf8(m.raw.clone()).unwrap();
            assert!(!text.replace("\r\n", "").contains('\n'));
            assert!(text.split("\r\n").all(|l| l.len() <= 998));
            assert!(text.contains("\r\n\r\n"));
        }
        let share = |k| kinds[&k] * 100 / a.len();
        assert!((39..=51).contains(&share(Kind::Inquiry)));
        assert!((10..=20).contains(&share(Kind::Form)));
        assert!((7..=17).contains(&share(Kind::Newsletter)));
    }

    #[test]
    fn dates_are_valid() {
        assert_eq!(
            rfc2822_date(BASE_EPOCH, "+0000"),
            "Thu, 01 Oct 2026 00:00:00 +0000"
        );
        assert_eq!(
            rfc2822_date(BASE_EPOCH, "-0500"),
            "Wed, 30 Sep 2026 19:00:00 -0500"
        );
        assert_eq!(
            gmail_date("Thu, 01 Oct 2026 21:05:00 +0100"),
            "Thu, Oct 1, 2026 at 9:05 PM"
        );
    }
}
