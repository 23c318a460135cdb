//! Gmail end to end, against the simulator's fake Gmail and push tokens
//! signed with its key (published at its `/oauth2/v3/certs`): an email
//! answered in its thread, pushes that do not check out refused, a
//! redelivered push answered once, a lost push caught up by the periodic
//! check, a history id too old resynced without answering twice, own mail
//! and automated mail left alone, a 5 MB attachment kept and downloaded, a
//! refused refresh token marking the mailbox expired with an alert.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::tools::sim::gmail::oidc::{push_body, PushClaims};
use switchboard::tools::sim::gmail::{GmailFaults, NewMail, SimFile};

use crate::support::*;

const MAILBOX: &str = "support@acme.example";
const AUDIENCE: &str = "https://switchboard.example/webhooks/gmail/acme-mail";
const SERVICE_ACCOUNT: &str = "gmail-push@acme-project.iam.gserviceaccount.com";
const SUBSCRIPTION: &str = "projects/acme-project/subscriptions/gmail-push";
const REFRESH: &str = "1//refresh-token-acme";

/// An engine with a Gmail integration `acme-mail` on the simulator's fake
/// Gmail (its mailbox made before the engine starts), checking mailboxes
/// every `poll`.
async fn mail_desk(poll: &str, settings: &str) -> Desk {
    let poll = poll.to_string();
    let settings = settings.to_string();
    let edit: Edit = Arc::new(move |toml: String, graph: &GraphSim| {
        graph.sim.gmail().add_mailbox(MAILBOX, REFRESH);
        let root = graph.sim.root_url();
        let toml = toml.replacen(
            "confirm_wait = \"1s\"",
            "confirm_wait = \"1s\"\nrequest_timeout = \"1s\"",
            1,
        );
        format!(
            r#"{toml}
[google]
gmail_base_url = "{root}"
token_url = "{root}/oauth2/token"
jwks_url = "{root}/oauth2/v3/certs"
poll_interval = "{poll}"

[[integrations]]
id = "acme-mail"
tenant = "acme"
channel = "gmail"
account_id = "{MAILBOX}"
assistant = "support"
oauth_client_id = "client-1.apps.googleusercontent.com"
oauth_client_secret = "client-secret-1"
refresh_token = "{REFRESH}"
push_audience = "{AUDIENCE}"
push_service_account = "{SERVICE_ACCOUNT}"
push_subscription = "{SUBSCRIPTION}"
{settings}
"#
        )
    });
    let desk = Desk::start_edited(0, "", "", edit).await;
    // The first check sets the mailbox's cursor: mail from then on is new.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while desk.gmail().calls("profile") == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    desk
}

fn mail(from: &str, subject: &str, text: &str) -> NewMail {
    NewMail {
        mailbox: MAILBOX.into(),
        from: from.into(),
        subject: subject.into(),
        text: Some(text.into()),
        ..NewMail::default()
    }
}

impl Desk {
    fn gmail(&self) -> &switchboard::tools::sim::gmail::GmailSim {
        self.graph.sim.gmail()
    }

    /// Sets the mailbox's faults (none but those `set` sets).
    fn gmail_faults(&self, set: impl FnOnce(&mut GmailFaults)) {
        let mut faults = GmailFaults {
            mailbox: MAILBOX.into(),
            ..GmailFaults::default()
        };
        set(&mut faults);
        self.gmail().set_faults(faults);
    }

    /// Posts a push with `claims`; its status.
    async fn push_with(&self, claims: &PushClaims, subscription: &str) -> u16 {
        let url = format!("http://{}/webhooks/gmail/acme-mail", self.engine.addr);
        let body = push_body(MAILBOX, self.gmail().history_id(), subscription);
        reqwest::Client::new()
            .post(url)
            .bearer_auth(claims.sign())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Posts a valid push for the mailbox's current history id.
    async fn push(&self) {
        let status = self
            .push_with(&PushClaims::valid(AUDIENCE, SERVICE_ACCOUNT), SUBSCRIPTION)
            .await;
        assert_eq!(status, 200);
    }

    /// The engine's replies so far (sent mail with its part header).
    fn replies(&self) -> Vec<Value> {
        self.gmail()
            .sent(MAILBOX)
            .into_iter()
            .filter(|m| m["headers"]["X-Switchboard-Part"].is_string())
            .collect()
    }

    /// Waits until the engine has sent `n` replies; returns them.
    async fn sent_mail(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let sent = self.replies();
            if sent.len() >= n || tokio::time::Instant::now() > deadline {
                assert_eq!(sent.len(), n, "{sent:#?}");
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_answered_in_its_thread_with_the_right_headers() {
    let desk = mail_desk("1h", "").await;
    let (id, thread, _) = desk
        .gmail()
        .deliver(mail(
            "Ann Lee <Ann@Example.com>",
            "Часы работы",
            "What are your hours?\n\n> old quote",
        ))
        .unwrap();
    desk.push().await;
    let sent = desk.sent_mail(1).await;
    let reply = &sent[0];
    assert_eq!(reply["threadId"], thread.as_str());
    assert_eq!(reply["headers"]["To"], "ann@example.com");
    assert_eq!(reply["headers"]["Subject"], "Re: Часы работы");
    let original = format!("<{id}@mail.example>");
    assert_eq!(reply["headers"]["In-Reply-To"], original.as_str());
    assert!(reply["headers"]["References"]
        .as_str()
        .unwrap()
        .contains(&original));
    assert!(
        reply["headers"]["X-Switchboard-Part"].is_string(),
        "{reply}"
    );
    // The assistant's answer says it is automatic (no responder answers it).
    assert_eq!(
        reply["headers"]["Auto-Submitted"], "auto-replied",
        "{reply}"
    );
    assert_eq!(reply["text"], "We're open 9-5.");
    assert!(
        reply["html"]
            .as_str()
            .unwrap()
            .contains("<p>We&#39;re open 9-5.</p>")
            || reply["html"]
                .as_str()
                .unwrap()
                .contains("<p>We're open 9-5.</p>"),
        "{reply}"
    );
    // The conversation is the thread with that address; the customer's
    // words without the quoted history.
    let conversation = format!("acme-mail:{thread}/ann@example.com");
    // The reply goes out before the turn is written: wait for the record.
    let path = format!("/conversations/{}", conversation.replace('/', "%2F"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut status, mut body) = desk.get(&path).await;
    while status != 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        (status, body) = desk.get(&path).await;
    }
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"], "gmail");
    let texts: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(texts.contains(&"What are your hours?"), "{texts:?}");
    // Its own reply, read back from the history, confirms the send and is
    // not answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    desk.push().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(desk.replies().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_whose_token_does_not_check_out_are_refused() {
    let desk = mail_desk("1h", "").await;
    desk.gmail()
        .deliver(mail("bob@example.com", "Hi", "hours?"))
        .unwrap();
    let valid = PushClaims::valid(AUDIENCE, SERVICE_ACCOUNT);
    let cases = [
        (
            "unpublished key",
            PushClaims {
                unpublished_key: true,
                ..valid.clone()
            },
        ),
        (
            "expired",
            PushClaims {
                expires_in: -600,
                ..valid.clone()
            },
        ),
        (
            "wrong audience",
            PushClaims {
                audience: "https://evil.example/x".into(),
                ..valid.clone()
            },
        ),
        (
            "wrong issuer",
            PushClaims {
                issuer: "https://issuer.example".into(),
                ..valid.clone()
            },
        ),
        (
            "other account",
            PushClaims {
                email: "someone@evil.example".into(),
                ..valid.clone()
            },
        ),
        (
            "unverified email",
            PushClaims {
                email_verified: false,
                ..valid.clone()
            },
        ),
    ];
    for (what, claims) in &cases {
        assert_eq!(desk.push_with(claims, SUBSCRIPTION).await, 401, "{what}");
    }
    assert_eq!(
        desk.push_with(&valid, "projects/other/subscriptions/x")
            .await,
        401,
        "another subscription"
    );
    // No token at all.
    let url = format!("http://{}/webhooks/gmail/acme-mail", desk.engine.addr);
    let status = reqwest::Client::new()
        .post(&url)
        .body(push_body(MAILBOX, 1, SUBSCRIPTION))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // A token for a mangled body is still checked first; garbage after a
    // good token is a 400.
    let status = reqwest::Client::new()
        .post(&url)
        .bearer_auth(valid.sign())
        .body("{not json")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(desk.replies().is_empty(), "nothing answered");
    let metrics = desk.metrics().await;
    assert!(
        metrics.contains(
            r#"switchboard_webhook_requests_total{channel="gmail",outcome="unauthorized"} 8"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_push_is_answered_once() {
    let desk = mail_desk("1h", "").await;
    desk.gmail()
        .deliver(mail("carol@example.com", "Order", "hours?"))
        .unwrap();
    let pushes = (0..4).map(|_| desk.push());
    futures_util::future::join_all(pushes).await;
    desk.sent_mail(1).await;
    desk.push().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(desk.replies().len(), 1, "answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_push_is_caught_up_by_the_periodic_check() {
    let desk = mail_desk("1s", "").await;
    // Let the first check set the cursor, then mail arrives with no push.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    desk.gmail()
        .deliver(mail("dan@example.com", "Question", "hours?"))
        .unwrap();
    let sent = desk.sent_mail(1).await;
    assert_eq!(sent[0]["headers"]["To"], "dan@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_id_too_old_is_resynced_without_answering_twice() {
    let desk = mail_desk("1h", "").await;
    desk.gmail()
        .deliver(mail("erin@example.com", "First", "hours?"))
        .unwrap();
    desk.push().await;
    desk.sent_mail(1).await;
    // Gmail forgets the history the engine's cursor points into.
    desk.gmail_faults(|f| {
        f.history_from = desk.gmail().history_id() + 1;
    });
    desk.gmail()
        .deliver(mail("frank@example.com", "Second", "hours?"))
        .unwrap();
    desk.push().await;
    let sent = desk.sent_mail(2).await;
    let to: Vec<&str> = sent
        .iter()
        .map(|m| m["headers"]["To"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["erin@example.com", "frank@example.com"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(desk.replies().len(), 2, "erin is not answered again");
    assert!(desk
        .metrics()
        .await
        .contains("switchboard_gmail_resyncs_total 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_mail_and_automated_mail_are_not_answered() {
    let desk = mail_desk("1h", "").await;
    let mut own = mail(MAILBOX, "Note to a supplier", "Please ship 10 lamps.");
    own.to = Some("orders@supplier.example".into());
    own.labels = vec!["SENT".into()];
    desk.gmail().deliver(own).unwrap();
    let mut auto = mail("noreply@shop.example", "Out of office", "I am away.");
    auto.headers = vec![("Auto-Submitted".into(), "auto-replied".into())];
    desk.gmail().deliver(auto).unwrap();
    let mut list = mail("news@list.example", "Newsletter", "Our news");
    list.headers = vec![("List-Id".into(), "<news.list.example>".into())];
    desk.gmail().deliver(list).unwrap();
    let mut draft = mail("gina@example.com", "Draft", "hours?");
    draft.labels = vec!["DRAFT".into()];
    desk.gmail().deliver(draft).unwrap();
    desk.gmail()
        .deliver(mail("hank@example.com", "Real", "hours?"))
        .unwrap();
    desk.push().await;
    let sent = desk.sent_mail(1).await;
    assert_eq!(sent[0]["headers"]["To"], "hank@example.com");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(desk.replies().len(), 1);
}

/// An attachment whose download is cut short in every try of three reads
/// of its email (a slow link, a proxy that cuts large answers) is listed
/// without its file, and the email is still answered: it is never dropped
/// for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_whose_attachment_download_keeps_being_cut_is_still_answered() {
    let desk = mail_desk("1h", "").await;
    desk.gmail_faults(|f| f.cut_attachments = true);
    let mut m = mail("ivy@example.com", "Invoice", "hours?");
    m.files = vec![SimFile {
        name: "invoice.pdf".into(),
        mime_type: "application/pdf".into(),
        size: 512 * 1024,
    }];
    desk.gmail().deliver(m).unwrap();
    desk.push().await;
    // Three reads of the email, each trying the file four times, with the
    // mailbox's pauses between them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while desk.replies().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = desk.sent_mail(1).await;
    assert_eq!(sent[0]["headers"]["To"], "ivy@example.com");
    assert!(desk.gmail().calls("attachment") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_attachment_is_kept_listed_and_downloaded() {
    let desk = mail_desk("1h", "").await;
    let mut m = mail("ivy@example.com", "Invoice", "hours?");
    m.files = vec![
        SimFile {
            name: "invoice.pdf".into(),
            mime_type: "application/pdf".into(),
            size: 5 * 1024 * 1024,
        },
        SimFile {
            name: "huge.zip".into(),
            mime_type: "application/zip".into(),
            size: 26 * 1024 * 1024,
        },
    ];
    let (_, thread, _) = desk.gmail().deliver(m).unwrap();
    desk.push().await;
    desk.sent_mail(1).await;
    let id = format!("acme-mail:{thread}/ivy@example.com").replace('/', "%2F");
    // The reply goes out before the turn is written: wait for the line.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let inbound = loop {
        let (_, body) = desk.get(&format!("/conversations/{id}")).await;
        let found = body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["direction"] == "in").cloned());
        match found {
            Some(m) => break m,
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => panic!("no inbound line: {body}"),
        }
    };
    let body = json!({"messages": [inbound.clone()]});
    let attachments = inbound["attachments"].as_array().unwrap().clone();
    assert_eq!(attachments.len(), 2, "{body}");
    assert_eq!(attachments[0]["caption"], "invoice.pdf");
    assert_eq!(attachments[0]["type"], "file");
    assert_eq!(attachments[1]["caption"], "huge.zip");
    assert!(
        attachments[1]["id"].is_null(),
        "over 25 MB: listed, not kept"
    );
    let key = attachments[0]["id"].as_str().unwrap();
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/conversations/{id}/attachments/{key}",
            desk.engine.addr
        ))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), 5 * 1024 * 1024);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    let (status, _) = desk
        .get(&format!("/conversations/{id}/attachments/nope-0"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_marks_the_mailbox_expired_and_alerts() {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let desk = mail_desk("1h", &format!("alert_webhook = \"{hook}\"")).await;
    desk.gmail_faults(|f| {
        f.refuse_refresh = true;
    });
    desk.gmail()
        .deliver(mail("jo@example.com", "Hello", "hours?"))
        .unwrap();
    desk.push().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let integration = loop {
        let (_, body) = desk.get("/integrations/acme-mail").await;
        if body["token"] == "expired" || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(integration["token"], "expired", "{integration}");
    let reason = integration["token_health"]["reason"].as_str().unwrap();
    assert!(reason.contains("invalid_grant"), "{reason}");
    for secret in [REFRESH, "client-secret-1"] {
        assert!(!integration.to_string().contains(secret), "{integration}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = got.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "token_expired");
    assert_eq!(alerts[0]["integration"], "acme-mail");
    // The token works again: the mail waiting is read and answered.
    desk.gmail_faults(|_| {});
    desk.push().await;
    desk.sent_mail(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_whose_answer_was_lost_is_found_in_the_mailbox_not_sent_again() {
    let desk = mail_desk("1h", "").await;
    // Gmail keeps the reply but answers after the engine gave up waiting.
    desk.gmail_faults(|f| {
        f.late_send_ms = 2500;
    });
    desk.gmail()
        .deliver(mail("kim@example.com", "Late", "hours?"))
        .unwrap();
    desk.push().await;
    desk.sent_mail(1).await;
    // The part waits `confirm_wait`, then is looked for by its Message-ID
    // before any second send.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(desk.replies().len(), 1, "{:#?}", desk.replies());
    let metrics = desk.metrics().await;
    assert!(
        metrics.contains(
            r#"switchboard_ambiguous_sends_total{channel="gmail",outcome="unconfirmed"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_answers_with_a_file_by_link_in_one_email_and_the_ai_stays_out() {
    let desk = mail_desk("1h", "").await;
    let (_, thread, _) = desk
        .gmail()
        .deliver(mail("lee@example.com", "Invoice please", "hours?"))
        .unwrap();
    desk.push().await;
    desk.sent_mail(1).await;
    let id = format!("acme-mail:{thread}/lee@example.com").replace('/', "%2F");
    let (status, body) = desk
        .post(
            &format!("/conversations/{id}/messages"),
            serde_json::json!({
                "text": "Here is your invoice.",
                "attachment": {"type": "file", "url": "https://files.example/inv-7.pdf"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = desk.sent_mail(2).await;
    assert_eq!(sent[1]["threadId"], thread.as_str());
    assert_eq!(
        sent[1]["text"],
        "Here is your invoice.\n\nhttps://files.example/inv-7.pdf"
    );
    // The person has the conversation: the customer's next email in the
    // thread is not answered by the AI.
    let mut next = mail(
        "lee@example.com",
        "Re: Invoice please",
        "thanks, and your hours?",
    );
    next.thread = Some(thread.clone());
    desk.gmail().deliver(next).unwrap();
    desk.push().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(desk.replies().len(), 2);
    let (_, body) = desk.get(&format!("/conversations/{id}")).await;
    assert_eq!(body["mode"], "human", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_is_set_up_for_a_mailbox_with_a_topic_and_not_repeated_too_soon() {
    let desk = mail_desk("1s", "push_topic = \"projects/acme-project/topics/gmail\"").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while desk.gmail().calls("watch") == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        desk.gmail().calls("watch"),
        1,
        "renewed daily, not at every check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_sees_a_persons_reply_sent_from_gmail_meanwhile() {
    let desk = mail_desk("1h", "").await;
    let (_, thread, _) = desk
        .gmail()
        .deliver(mail("mo@example.com", "Broken", "hours?"))
        .unwrap();
    desk.push().await;
    desk.sent_mail(1).await;
    desk.gmail_faults(|f| {
        f.history_from = desk.gmail().history_id() + 1;
    });
    // A person answers in Gmail itself, then the customer writes again.
    let mut person = mail(MAILBOX, "Re: Broken", "I will call you.");
    person.to = Some("mo@example.com".into());
    person.labels = vec!["SENT".into()];
    person.thread = Some(thread.clone());
    desk.gmail().deliver(person).unwrap();
    let mut again = mail("mo@example.com", "Re: Broken", "ok, what are your hours?");
    again.thread = Some(thread.clone());
    desk.gmail().deliver(again).unwrap();
    desk.push().await;
    let id = format!("acme-mail:{thread}/mo@example.com").replace('/', "%2F");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (_, body) = desk.get(&format!("/conversations/{id}")).await;
        let seen = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["text"] == "ok, what are your hours?"));
        if seen || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["mode"], "human", "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        desk.replies().len(),
        1,
        "the AI stays out of the person's thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_gmail_garbles_is_left_out_and_the_others_are_answered() {
    let desk = mail_desk("1h", "").await;
    desk.gmail_faults(|f| {
        f.garbled_subjects = vec!["Garbled".into()];
    });
    desk.gmail()
        .deliver(mail("nia@example.com", "Garbled", "hours?"))
        .unwrap();
    desk.gmail()
        .deliver(mail("oz@example.com", "Fine", "hours?"))
        .unwrap();
    desk.push().await;
    // Three reads (1 s and 2 s apart) before it is left out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while desk.replies().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replies = desk.replies();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(replies[0]["headers"]["To"], "oz@example.com");
    assert!(desk.metrics().await.contains(
        r#"switchboard_webhook_items_skipped_total{channel="gmail",kind="unreadable"} 1"#
    ));
}
