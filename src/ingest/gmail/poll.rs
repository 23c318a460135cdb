//! What keeps Gmail mailboxes read without pushes: every
//! `google.poll_interval`, a check of each mailbox goes on the bus (to the
//! instance that owns the mailbox, which reads its history from the stored
//! cursor), so mail whose push was late or lost waits at most that long;
//! and `users.watch` is renewed every `google.watch_every` for mailboxes
//! with a `push_topic` (a watch lapses after 7 days).

use std::sync::Arc;

use super::{mailbox_event, Mailboxes};
use crate::channels::gmail::api::GmailApi;
use crate::clock::now_ms;
use crate::config::ChannelKind;
use crate::conversation::{EngineContext, MailboxSync};
use crate::store::RecordKind;

/// Builds the mailboxes' reader into `ctx` and starts their checks.
pub fn start(ctx: &Arc<EngineContext>, api: Arc<GmailApi>) -> tokio::task::JoinHandle<()> {
    let google = ctx.config.google.clone();
    let files = ctx.config.attachments_dir();
    let mailboxes = Arc::new(Mailboxes::new(
        api,
        ctx.store.clone(),
        ctx.bus.clone(),
        ctx.integrations.clone(),
        ctx.alerts.clone(),
        google,
        files,
    ));
    let sync: Arc<dyn MailboxSync> = mailboxes.clone();
    let _ = ctx.mailboxes.set(sync);
    tokio::spawn(checks(mailboxes))
}

async fn checks(mailboxes: Arc<Mailboxes>) {
    let mut tick = tokio::time::interval(mailboxes.google.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let gmail: Vec<_> = mailboxes
            .integrations
            .values()
            .into_iter()
            .filter(|c| c.channel == ChannelKind::Gmail)
            .collect();
        for config in gmail {
            let check = mailbox_event(&config.id, 0);
            if let Err(e) = mailboxes.bus.publish(std::slice::from_ref(&check)).await {
                tracing::debug!(integration = %config.id, error = %e, "Mailbox check not queued; next time");
            }
            if config.push_topic.as_deref().is_some_and(|t| !t.is_empty()) {
                // Beside the checks: a slow watch call holds up no mailbox.
                let mailboxes = mailboxes.clone();
                tokio::spawn(async move {
                    let topic = config.push_topic.clone().unwrap_or_default();
                    renew_watch(&mailboxes, &config, &topic).await;
                });
            }
        }
    }
}

/// `users.watch` again when the last one is older than `watch_every`.
async fn renew_watch(
    mailboxes: &Mailboxes,
    config: &crate::config::IntegrationConfig,
    topic: &str,
) {
    let key = format!("watch:{}", config.id);
    let last = mailboxes
        .store
        .records(RecordKind::Mailboxes)
        .await
        .ok()
        .and_then(|r| r.into_iter().find(|(k, _)| *k == key))
        .and_then(|(_, v)| String::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let every = mailboxes.google.watch_every.as_millis() as u64;
    if now_ms().saturating_sub(last) < every {
        return;
    }
    match mailboxes.api.watch(config, topic).await {
        Ok((history_id, _)) => {
            tracing::info!(integration = %config.id, history_id, "Gmail watch renewed");
            let stamp = now_ms().to_string().into_bytes();
            if let Err(e) = mailboxes
                .store
                .put_record(RecordKind::Mailboxes, &key, stamp)
                .await
            {
                tracing::warn!(integration = %config.id, error = %e, "Gmail watch renewal not recorded");
            }
        }
        Err(crate::channels::gmail::api::GmailError::Expired(reason)) => {
            mailboxes
                .alerts
                .token_refused(&mailboxes.integrations.tokens, config, &reason);
        }
        Err(e) => {
            tracing::warn!(integration = %config.id, error = %e, "Gmail watch not renewed; retrying at the next check");
        }
    }
}
