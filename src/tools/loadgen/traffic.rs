//! The webhooks a load run sends, in Meta's documented shapes: Messenger
//! (`object = page`), Instagram DMs (`object = instagram`) and WhatsApp
//! Cloud API (`object = whatsapp_business_account`), with the mix the
//! options ask for (batches, bursts from one customer, out-of-order
//! timestamps, deliveries and reads); and Gmail: an email delivered into
//! the sink's fake Gmail mailbox, then a Pub/Sub push about it.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The questions simulated customers ask (the assistant's answers to them
/// fit in one message).
const QUESTIONS: [&str; 6] = [
    "Hi! What are your opening hours?",
    "Do you ship to Canada?",
    "Where is my order?",
    "Can I change my delivery address?",
    "Is the blue one back in stock?",
    "Thanks, that helps",
];

/// Which platform a webhook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Messenger,
    Instagram,
    Whatsapp,
    Gmail,
}

/// The shape of the traffic.
#[derive(Debug, Clone)]
pub struct Mix {
    pub page: Option<String>,
    pub instagram: Option<String>,
    pub whatsapp: Option<String>,
    /// A Gmail mailbox (an integration's `account_id`).
    pub gmail: Option<String>,
    pub instagram_share: f64,
    pub whatsapp_share: f64,
    pub gmail_share: f64,
    pub customers: u64,
    pub round_robin: bool,
    pub batch_max: usize,
    pub burst_share: f64,
    pub burst_size: usize,
    pub out_of_order: f64,
    pub receipts_share: f64,
}

/// One message event in a webhook: who must get a reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Expectation {
    /// The business account the reply is sent from.
    pub account: String,
    pub customer: String,
}

/// A signed-to-be webhook and the replies it should cause.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub body: Vec<u8>,
    /// Events in it (messages, deliveries, reads).
    pub events: usize,
    /// One per message event, in the order the customer sent them.
    pub expects: Vec<Expectation>,
    /// Gmail: the email to deliver into the mailbox before the push (whose
    /// body is made then, with the mailbox's history id).
    pub mail: Option<crate::tools::sim::gmail::NewMail>,
}

/// Builds webhooks from a seeded generator.
pub struct Traffic {
    mix: Mix,
    rng: SmallRng,
    run: u32,
    seq: u64,
    next_customer: u64,
}

impl Traffic {
    pub fn new(mix: Mix, seed: u64, run: u32) -> Self {
        Self {
            mix,
            rng: SmallRng::seed_from_u64(seed),
            run,
            seq: 0,
            next_customer: 0,
        }
    }

    fn platform(&mut self) -> Platform {
        let x: f64 = self.rng.random();
        let x = if self.mix.gmail.is_some() {
            if x < self.mix.gmail_share {
                return Platform::Gmail;
            }
            // The rest of the range, spread over the other platforms.
            (x - self.mix.gmail_share) / (1.0 - self.mix.gmail_share).max(1e-9)
        } else {
            x
        };
        if self.mix.whatsapp.is_some() && x < self.mix.whatsapp_share {
            Platform::Whatsapp
        } else if self.mix.instagram.is_some()
            && x < self.mix.whatsapp_share + self.mix.instagram_share
        {
            Platform::Instagram
        } else if self.mix.page.is_some() {
            Platform::Messenger
        } else if self.mix.instagram.is_some() {
            Platform::Instagram
        } else if self.mix.whatsapp.is_some() {
            Platform::Whatsapp
        } else {
            Platform::Gmail
        }
    }

    fn customer_id(&self, platform: Platform, n: u64) -> String {
        match platform {
            // wa_id: a phone number in international form, digits only.
            Platform::Whatsapp => format!("1{:05}{:09}", self.run % 100_000, n),
            Platform::Gmail => format!("c{}{:010}@customers.example", self.run, n),
            _ => format!("{}{:010}", self.run, n),
        }
    }

    /// The next webhook: `batch` events (a burst counts as one batch).
    pub fn next(&mut self, now_ms: u64) -> Webhook {
        let platform = self.platform();
        if platform == Platform::Gmail {
            return self.email();
        }
        let batch = self.rng.random_range(1..=self.mix.batch_max.max(1));
        let burst = self.mix.burst_share > 0.0 && self.rng.random_bool(self.mix.burst_share);
        let count = if burst {
            self.mix.burst_size.max(1)
        } else {
            batch
        };
        let burst_customer = burst.then(|| self.pick_customer());
        let mut events = Vec::with_capacity(count);
        for i in 0..count {
            let n = match burst_customer {
                Some(n) => n,
                None => self.pick_customer(),
            };
            let receipt = self.mix.receipts_share > 0.0
                && platform != Platform::Whatsapp
                && self.rng.random_bool(self.mix.receipts_share);
            self.seq += 1;
            events.push(Event {
                customer: self.customer_id(platform, n),
                ts: now_ms + i as u64,
                mid: self.message_id(platform),
                text: QUESTIONS[(self.seq % QUESTIONS.len() as u64) as usize],
                receipt: receipt.then(|| self.rng.random_bool(0.5)),
            });
        }
        let expects = self.expectations(platform, &events);
        if count > 1 && self.mix.out_of_order > 0.0 && self.rng.random_bool(self.mix.out_of_order) {
            events.reverse();
        }
        let body = match platform {
            Platform::Messenger => messaging_body("page", self.account(platform), &events),
            Platform::Instagram => messaging_body("instagram", self.account(platform), &events),
            Platform::Whatsapp => whatsapp_body(self.account(platform), &events),
            // Emails are made by `email` above.
            Platform::Gmail => Value::Null,
        };
        Webhook {
            body: body.to_string().into_bytes(),
            events: count,
            expects,
            mail: None,
        }
    }

    /// One customer email (a new thread) and the reply it expects.
    fn email(&mut self) -> Webhook {
        let n = self.pick_customer();
        self.seq += 1;
        let customer = self.customer_id(Platform::Gmail, n);
        let mailbox = self.account(Platform::Gmail).to_string();
        let question = QUESTIONS[(self.seq % QUESTIONS.len() as u64) as usize];
        Webhook {
            body: Vec::new(),
            events: 1,
            expects: vec![Expectation {
                account: mailbox.clone(),
                customer: customer.clone(),
            }],
            mail: Some(crate::tools::sim::gmail::NewMail {
                mailbox,
                from: format!("Load Test <{customer}>"),
                subject: format!("Question {}", self.seq),
                text: Some(question.to_string()),
                ..Default::default()
            }),
        }
    }

    fn pick_customer(&mut self) -> u64 {
        let customers = self.mix.customers.max(1);
        if self.mix.round_robin {
            let n = self.next_customer % customers;
            self.next_customer += 1;
            n
        } else {
            self.rng.random_range(0..customers)
        }
    }

    fn account(&self, platform: Platform) -> &str {
        let account = match platform {
            Platform::Messenger => &self.mix.page,
            Platform::Instagram => &self.mix.instagram,
            Platform::Whatsapp => &self.mix.whatsapp,
            Platform::Gmail => &self.mix.gmail,
        };
        account.as_deref().unwrap_or_default()
    }

    fn message_id(&self, platform: Platform) -> String {
        match platform {
            Platform::Whatsapp => format!("wamid.LG{:08x}{:012x}", self.run, self.seq),
            _ => format!("m_lg{:08x}{:012x}", self.run, self.seq),
        }
    }

    fn expectations(&self, platform: Platform, events: &[Event]) -> Vec<Expectation> {
        let account = self.account(platform);
        events
            .iter()
            .filter(|e| e.receipt.is_none())
            .map(|e| Expectation {
                account: account.to_string(),
                customer: e.customer.clone(),
            })
            .collect()
    }
}

struct Event {
    customer: String,
    ts: u64,
    mid: String,
    text: &'static str,
    /// `Some(true)` a delivery receipt, `Some(false)` a read receipt.
    receipt: Option<bool>,
}

fn messaging_body(object: &str, account: &str, events: &[Event]) -> Value {
    let entry: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut m = json!({
                "sender": {"id": e.customer},
                "recipient": {"id": account},
                "timestamp": e.ts,
            });
            match e.receipt {
                Some(true) => m["delivery"] = json!({"watermark": e.ts}),
                Some(false) => m["read"] = json!({"watermark": e.ts}),
                None => m["message"] = json!({"mid": e.mid, "text": e.text}),
            }
            json!({"id": account, "time": e.ts, "messaging": [m]})
        })
        .collect();
    json!({"object": object, "entry": entry})
}

fn whatsapp_body(phone_number_id: &str, events: &[Event]) -> Value {
    let messages: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "from": e.customer,
                "id": e.mid,
                "timestamp": (e.ts / 1000).to_string(),
                "type": "text",
                "text": {"body": e.text},
            })
        })
        .collect();
    let contacts: Vec<Value> = events
        .iter()
        .map(|e| json!({"profile": {"name": "Load Test"}, "wa_id": e.customer}))
        .collect();
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": format!("WABA{phone_number_id}"),
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": phone_number_id, "phone_number_id": phone_number_id},
                    "contacts": contacts,
                    "messages": messages,
                }
            }]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix() -> Mix {
        Mix {
            page: Some("PAGE".into()),
            instagram: None,
            whatsapp: None,
            gmail: None,
            instagram_share: 0.0,
            whatsapp_share: 0.0,
            gmail_share: 0.0,
            customers: 10,
            round_robin: false,
            batch_max: 5,
            burst_share: 0.0,
            burst_size: 3,
            out_of_order: 0.0,
            receipts_share: 0.0,
        }
    }

    #[test]
    fn every_message_event_expects_one_reply_and_parses() {
        let mut t = Traffic::new(mix(), 7, 1);
        for _ in 0..50 {
            let w = t.next(1_700_000_000_000);
            assert!((1..=5).contains(&w.events));
            assert_eq!(w.expects.len(), w.events);
            let parsed = crate::channels::webhook::parse(&w.body, 0).unwrap();
            assert_eq!(parsed.event_count(), w.events);
        }
    }

    #[test]
    fn receipts_expect_nothing_and_bursts_share_a_customer() {
        let mut t = Traffic::new(
            Mix {
                receipts_share: 1.0,
                ..mix()
            },
            1,
            1,
        );
        assert!(t.next(1).expects.is_empty());
        let mut t = Traffic::new(
            Mix {
                burst_share: 1.0,
                out_of_order: 1.0,
                ..mix()
            },
            1,
            1,
        );
        let w = t.next(1_000);
        assert_eq!(w.events, 3);
        assert!(w
            .expects
            .iter()
            .all(|e| e.customer == w.expects[0].customer));
        let body: Value = serde_json::from_slice(&w.body).unwrap();
        assert_eq!(body["entry"][0]["messaging"][0]["timestamp"], 1_002);
    }

    #[test]
    fn round_robin_gives_every_customer_one_message() {
        let mut t = Traffic::new(
            Mix {
                round_robin: true,
                customers: 7,
                batch_max: 1,
                ..mix()
            },
            5,
            1,
        );
        let mut seen = std::collections::HashMap::<String, u32>::new();
        let mut events = 0;
        while events < 7 {
            let w = t.next(1);
            events += w.events;
            for e in w.expects {
                *seen.entry(e.customer).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 7);
        assert!(seen.values().all(|n| *n == 1));
    }

    #[test]
    fn gmail_emails_take_their_share_and_expect_a_reply_to_the_sender() {
        let mut t = Traffic::new(
            Mix {
                gmail: Some("support@load.example".into()),
                gmail_share: 0.5,
                ..mix()
            },
            3,
            9,
        );
        let hooks: Vec<_> = (0..400).map(|_| t.next(1)).collect();
        let mails: Vec<_> = hooks.iter().filter(|w| w.mail.is_some()).collect();
        assert!((150..250).contains(&mails.len()), "{}", mails.len());
        let m = mails[0].mail.as_ref().unwrap();
        assert_eq!(m.mailbox, "support@load.example");
        assert!(m.from.contains(&mails[0].expects[0].customer));
        assert_eq!(mails[0].expects[0].account, "support@load.example");
        assert!(
            hooks.iter().any(|w| w.mail.is_none()),
            "the rest is Messenger"
        );
    }

    #[test]
    fn whatsapp_shape() {
        let mut t = Traffic::new(
            Mix {
                page: None,
                whatsapp: Some("PN1".into()),
                whatsapp_share: 1.0,
                ..mix()
            },
            3,
            9,
        );
        let w = t.next(1_700_000_000_000);
        let body: Value = serde_json::from_slice(&w.body).unwrap();
        let value = &body["entry"][0]["changes"][0]["value"];
        assert_eq!(value["metadata"]["phone_number_id"], "PN1");
        assert_eq!(value["messages"][0]["type"], "text");
        assert_eq!(w.expects[0].account, "PN1");
    }
}
