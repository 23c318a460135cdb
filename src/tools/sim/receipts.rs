//! Echo, delivery and read webhooks the simulator sends back to the engine
//! for the messages it accepted, signed with the app secret like Meta's.
//! Echoes (`message_echoes` on Messenger / Instagram, the `sent` status on
//! WhatsApp) return the sender's part id (`metadata`,
//! `biz_opaque_callback_data`), as Meta does.
//!
//! Receipts are gathered for a short while and sent in batches, one
//! webhook per kind with one entry per account, the way Meta batches them:
//! Messenger `delivery {mids, watermark}` / `read {watermark}`, Instagram
//! `read {mid}` (`messaging_seen`), WhatsApp `statuses` (`delivered`,
//! `read`).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::channels::webhook::sign;
use crate::clock::now_ms;

/// Where receipts go.
#[derive(Debug, Clone)]
pub struct ReceiptTarget {
    /// The engine's `/webhooks/meta/{app}` URL.
    pub url: String,
    pub app_secret: String,
    /// Send read receipts after the delivery ones.
    pub read: bool,
    /// How long receipts gather before a batch goes out.
    pub delay: Duration,
    /// Accounts that are Instagram accounts (their webhooks use
    /// `object = "instagram"`).
    pub instagram: HashSet<String>,
    /// Send echoes (Messenger / Instagram `message_echoes`, WhatsApp `sent`
    /// statuses) before the delivery receipts.
    pub echoes: bool,
    /// The `app_id` echoes carry (the sending app's id at Meta).
    pub app_id: u64,
}

/// One accepted message to confirm.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub whatsapp: bool,
    pub account: String,
    pub recipient: String,
    pub message_id: String,
    /// The sender's part id (`metadata` / `biz_opaque_callback_data`).
    pub part_id: Option<String>,
    /// The message's text, for its echo.
    pub text: Option<String>,
}

/// How the receipt webhooks fared.
#[derive(Debug, Default)]
pub struct ReceiptCounts {
    /// Webhooks the engine answered with a 2xx.
    pub accepted: AtomicU64,
    /// Webhooks refused or not delivered.
    pub failed: AtomicU64,
}

/// Starts the sender; receipts pushed into the returned channel go out.
pub fn spawn(target: ReceiptTarget, counts: Arc<ReceiptCounts>) -> mpsc::UnboundedSender<Receipt> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(target, rx, counts));
    tx
}

async fn run(
    target: ReceiptTarget,
    mut rx: mpsc::UnboundedReceiver<Receipt>,
    counts: Arc<ReceiptCounts>,
) {
    let http = reqwest::Client::new();
    let target = Arc::new(target);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BATCHES));
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(target.delay).await;
        let mut batch = vec![first];
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let bodies = webhooks(&target, &batch);
        // Each batch goes out on its own, as Meta's webhooks do: one that
        // is refused and retried never holds back the next ones.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let (http, target, counts) = (http.clone(), target.clone(), counts.clone());
        tokio::spawn(async move {
            for body in bodies {
                let counter = if post(&http, &target, body).await {
                    &counts.accepted
                } else {
                    &counts.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
}

/// The webhooks that confirm `batch`, in the order they go out: each
/// carries at most `PER_WEBHOOK` receipts, as Meta's stay small (an
/// engine's body limit then never refuses one for good), and a message's
/// echo goes before its delivery receipt.
fn webhooks(target: &ReceiptTarget, batch: &[Receipt]) -> Vec<Value> {
    let mut bodies = Vec::new();
    for chunk in batch.chunks(PER_WEBHOOK) {
        if target.echoes {
            bodies.extend(receipt_bodies(target, chunk, Kind::Echo, now_ms()));
        }
        bodies.extend(delivery_body(target, chunk));
        if target.read {
            bodies.extend(read_body(target, chunk));
        }
    }
    bodies
}

/// Receipts in one webhook at most (about 25 KB of echoes).
const PER_WEBHOOK: usize = 100;

/// Receipt batches being delivered at once.
const CONCURRENT_BATCHES: usize = 64;

/// Attempts at one receipt webhook, as Meta retries a webhook that was
/// not acknowledged (an engine restarting, shedding load).
const ATTEMPTS: u32 = 60;

async fn post(http: &reqwest::Client, target: &ReceiptTarget, body: Value) -> bool {
    let bytes = body.to_string().into_bytes();
    let signature = sign(target.app_secret.as_bytes(), &bytes);
    let mut pause = std::time::Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        let result = http
            .post(&target.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(bytes.clone())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => return true,
            // Refused for good: the engine will not take it later either
            // (a timeout or a rate limit is tried again, as Meta does).
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 408 | 429) => {
                tracing::warn!(status = r.status().as_u16(), "Receipt webhook refused");
                return false;
            }
            Ok(r) => tracing::debug!(
                status = r.status().as_u16(),
                attempt,
                "Receipt webhook not taken; retrying"
            ),
            Err(e) => {
                tracing::debug!(error = %e, attempt, "Receipt webhook not delivered; retrying")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
    tracing::warn!("Receipt webhook given up after {ATTEMPTS} attempts");
    false
}

fn group(target: &ReceiptTarget, batch: &[Receipt]) -> [BTreeMap<String, Vec<Receipt>>; 3] {
    let mut page = BTreeMap::<String, Vec<Receipt>>::new();
    let mut instagram = BTreeMap::<String, Vec<Receipt>>::new();
    let mut whatsapp = BTreeMap::<String, Vec<Receipt>>::new();
    for r in batch {
        let map = if r.whatsapp {
            &mut whatsapp
        } else if target.instagram.contains(&r.account) {
            &mut instagram
        } else {
            &mut page
        };
        map.entry(r.account.clone()).or_default().push(r.clone());
    }
    [page, instagram, whatsapp]
}

/// Which receipt a webhook carries.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Echo,
    Delivery,
    Read,
}

/// The delivery webhooks for a batch (one per platform object present).
fn delivery_body(target: &ReceiptTarget, batch: &[Receipt]) -> Vec<Value> {
    receipt_bodies(target, batch, Kind::Delivery, now_ms())
}

fn read_body(target: &ReceiptTarget, batch: &[Receipt]) -> Vec<Value> {
    receipt_bodies(target, batch, Kind::Read, now_ms() + 1)
}

/// The `messaging` item of one receipt, in the object's documented shape.
fn receipt_event(
    target: &ReceiptTarget,
    object: &str,
    account: &str,
    r: &Receipt,
    kind: Kind,
    now: u64,
) -> Value {
    let mut event = json!({
        "sender": {"id": r.recipient},
        "recipient": {"id": account},
        "timestamp": now,
    });
    match kind {
        Kind::Echo => {
            // The business sent it: sender and recipient swap.
            event["sender"] = json!({"id": account});
            event["recipient"] = json!({"id": r.recipient});
            let mut message = json!({
                "is_echo": true,
                "app_id": target.app_id,
                "mid": r.message_id,
            });
            if let Some(text) = &r.text {
                message["text"] = json!(text);
            }
            if let Some(part) = &r.part_id {
                message["metadata"] = json!(part);
            }
            event["message"] = message;
        }
        Kind::Delivery => {
            event["delivery"] = json!({"mids": [r.message_id], "watermark": now});
        }
        Kind::Read if object == "instagram" => event["read"] = json!({"mid": r.message_id}),
        Kind::Read => event["read"] = json!({"watermark": now}),
    }
    event
}

fn receipt_bodies(target: &ReceiptTarget, batch: &[Receipt], kind: Kind, now: u64) -> Vec<Value> {
    let [page, instagram, whatsapp] = group(target, batch);
    let mut out = Vec::new();
    for (object, accounts) in [("page", page), ("instagram", instagram)] {
        if accounts.is_empty() {
            continue;
        }
        let entry: Vec<Value> = accounts
            .iter()
            .map(|(account, rs)| {
                let messaging: Vec<Value> = rs
                    .iter()
                    .map(|r| receipt_event(target, object, account, r, kind, now))
                    .collect();
                json!({"id": account, "time": now, "messaging": messaging})
            })
            .collect();
        out.push(json!({"object": object, "entry": entry}));
    }
    if !whatsapp.is_empty() {
        let status = match kind {
            Kind::Echo => "sent",
            Kind::Delivery => "delivered",
            Kind::Read => "read",
        };
        out.push(whatsapp_statuses(&whatsapp, status, now));
    }
    out
}

fn whatsapp_statuses(accounts: &BTreeMap<String, Vec<Receipt>>, status: &str, now: u64) -> Value {
    let entry: Vec<Value> = accounts
        .iter()
        .map(|(phone_number_id, rs)| {
            let statuses: Vec<Value> = rs
                .iter()
                .map(|r| {
                    let mut s = json!({
                        "id": r.message_id,
                        "status": status,
                        "timestamp": (now / 1000).to_string(),
                        "recipient_id": r.recipient,
                    });
                    if let Some(part) = &r.part_id {
                        s["biz_opaque_callback_data"] = json!(part);
                    }
                    s
                })
                .collect();
            json!({
                "id": phone_number_id,
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": phone_number_id, "phone_number_id": phone_number_id},
                        "statuses": statuses,
                    }
                }]
            })
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": entry})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ReceiptTarget {
        ReceiptTarget {
            url: String::new(),
            app_secret: String::new(),
            read: true,
            delay: Duration::ZERO,
            instagram: ["IG".to_string()].into(),
            echoes: true,
            app_id: 555,
        }
    }

    fn receipt(account: &str, whatsapp: bool) -> Receipt {
        Receipt {
            whatsapp,
            account: account.into(),
            recipient: "C".into(),
            message_id: "m_1".into(),
            part_id: Some("sb1.p".into()),
            text: Some("hi".into()),
        }
    }

    #[test]
    fn one_webhook_per_object_with_the_documented_fields() {
        let batch = [
            receipt("PAGE", false),
            receipt("IG", false),
            receipt("PN", true),
        ];
        let deliveries = delivery_body(&target(), &batch);
        assert_eq!(deliveries.len(), 3);
        assert_eq!(deliveries[0]["object"], "page");
        assert_eq!(
            deliveries[0]["entry"][0]["messaging"][0]["delivery"]["mids"][0],
            "m_1"
        );
        assert_eq!(deliveries[1]["object"], "instagram");
        let wa = &deliveries[2]["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(wa["status"], "delivered");
        let reads = read_body(&target(), &batch);
        assert!(reads[0]["entry"][0]["messaging"][0]["read"]["watermark"].is_u64());
        assert_eq!(reads[1]["entry"][0]["messaging"][0]["read"]["mid"], "m_1");
        assert_eq!(
            reads[2]["entry"][0]["changes"][0]["value"]["statuses"][0]["status"],
            "read"
        );
        let echoes = receipt_bodies(&target(), &batch, Kind::Echo, 1);
        let echo = &echoes[0]["entry"][0]["messaging"][0];
        assert_eq!(echo["sender"]["id"], "PAGE");
        assert_eq!(echo["recipient"]["id"], "C");
        assert_eq!(echo["message"]["is_echo"], true);
        assert_eq!(echo["message"]["metadata"], "sb1.p");
        let sent = &echoes[2]["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(sent["status"], "sent");
        assert_eq!(sent["biz_opaque_callback_data"], "sb1.p");
    }

    /// A backlog of 500 receipts (the sender gathers that many after the
    /// engine was away) goes out in webhooks an engine with a 64 KiB body
    /// limit takes, each message's echo before its delivery receipt.
    #[test]
    fn a_large_backlog_goes_out_in_small_webhooks_echoes_first() {
        let batch: Vec<Receipt> = (0..500)
            .map(|i| Receipt {
                recipient: format!("customer-{i:06}"),
                message_id: format!("m_{i:032}"),
                text: Some("thanks, your order ships today".repeat(3)),
                ..receipt("PAGE", false)
            })
            .collect();
        let bodies = webhooks(&target(), &batch);
        assert_eq!(bodies.len(), 15, "echo, delivery and read for each 100");
        let mut echoed = std::collections::HashSet::new();
        for body in &bodies {
            assert!(
                body.to_string().len() < 64 * 1024,
                "{} bytes",
                body.to_string().len()
            );
            for item in body["entry"][0]["messaging"].as_array().unwrap() {
                if item["message"]["is_echo"] == true {
                    echoed.insert(item["message"]["mid"].as_str().unwrap().to_string());
                } else if let Some(mids) = item["delivery"]["mids"].as_array() {
                    assert!(echoed.contains(mids[0].as_str().unwrap()), "echo first");
                }
            }
        }
        assert_eq!(echoed.len(), 500);
    }
}
