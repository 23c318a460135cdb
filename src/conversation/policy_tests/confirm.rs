//! Parts whose send outcome was lost: confirmed by their echo, resent
//! only after the wait.

use super::*;

/// A conversation whose customer asked at `T0` and whose reply is planned
/// (one part in the outbox).
fn answered() -> Conversation {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hours?", T0), T0);
    c.plan_reply("We're open", T0);
    c
}

#[test]
fn an_unconfirmed_part_is_confirmed_by_its_echo_and_never_sent_again() {
    let mut c = answered();
    let part = c.record.outbox[0].part_id.clone();
    assert!(is_part_id(&part));
    // The send timed out after the bytes left: unconfirmed for 10 s.
    c.part_unconfirmed(T0 + 10_000);
    assert!(c.awaiting_confirmation(T0 + 1));
    assert!(!c.resend_due(T0 + 5_000), "not before the wait");
    // The echo names the part: settled, not a person answering.
    assert_eq!(
        c.apply(&own_echo("m_late", &part, T0 + 2_000), T0 + 2_000),
        EventOutcome::Confirmed
    );
    assert!(c.record.outbox.is_empty());
    assert_eq!(
        c.record.mode,
        Mode::Ai,
        "the engine's own echo is no takeover"
    );
    assert!(!c.resend_due(T0 + 20_000));
    // A second echo of it changes nothing.
    assert_eq!(
        c.apply(&own_echo("m_late", &part, T0 + 3_000), T0 + 3_000),
        EventOutcome::Ignored
    );
}

#[test]
fn an_unconfirmed_part_is_sent_again_only_after_the_wait() {
    let mut c = answered();
    c.part_unconfirmed(T0 + 10_000);
    assert_eq!(
        c.record.next_deadline(),
        Some(T0 + 10_000),
        "a timer wakes it"
    );
    assert!(!c.resend_due(T0 + 9_999));
    assert!(c.resend_due(T0 + 10_000));
    assert!(!c.awaiting_confirmation(T0 + 10_000));
    // Resent with a new deadline written first: a restart right after the
    // resend finds it held, not due.
    c.resend_unconfirmed(T0 + 20_000);
    assert_eq!(c.record.outbox.len(), 1, "still to send");
    assert_eq!(c.hold_outbox(T0 + 12_000), 0, "already held");
    assert!(c.awaiting_confirmation(T0 + 12_000));
}

/// The outbox was paused after a platform failure; then the first part
/// is held for its confirmation past that pause (a reload, or a retry
/// whose answer was lost): the next wake is the hold's end, never the
/// passed pause (which would wake the actor again and again).
#[test]
fn a_passed_outbox_pause_is_no_deadline_once_the_part_is_held() {
    let mut c = answered();
    c.retry_outbox_at(T0 + 30_000);
    assert_eq!(c.record.next_deadline(), Some(T0 + 30_000));
    // Reloaded after the pause passed: held for the confirmation wait.
    assert_eq!(c.hold_outbox(T0 + 45_000), 1);
    assert_eq!(c.record.next_deadline(), Some(T0 + 45_000));
    // A pause that ends after the hold still counts.
    let mut c = answered();
    c.retry_outbox_at(T0 + 30_000);
    c.part_unconfirmed(T0 + 10_000);
    assert_eq!(c.record.next_deadline(), Some(T0 + 10_000));
    assert_eq!(c.record.outbox_retry_ms, Some(T0 + 30_000));
}

#[test]
fn a_replayed_message_plans_the_same_part_ids_held_for_confirmation() {
    let short = || integration_with(serde_json::json!({"max_message_length": 20}));
    let first = {
        let mut c = Conversation::new(short(), "fb:C", "C", None, T0);
        c.apply(&message("m1", "hours?", T0), T0);
        c.plan_reply("Open.\n\nAlso on Sunday.", T0);
        c.record
            .outbox
            .iter()
            .map(|p| p.part_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(first.len(), 2, "a reply in two parts");
    let mut c = Conversation::new(short(), "fb:C", "C", None, T0);
    c.hold_new_parts(Some(T0 + 10_000));
    c.apply(&message("m1", "hours?", T0), T0);
    c.plan_reply("Open.\n\nAlso on Sunday.", T0);
    let again: Vec<_> = c.record.outbox.iter().map(|p| p.part_id.clone()).collect();
    assert_eq!(first, again);
    assert!(c
        .record
        .outbox
        .iter()
        .all(|p| p.unconfirmed_until_ms == Some(T0 + 10_000)));
    // Only the second part's echo came back: it is settled, the first
    // still waits.
    c.apply(&own_echo("m_2", &again[1], T0 + 100), T0 + 100);
    assert_eq!(c.record.outbox.len(), 1);
    assert_eq!(c.record.outbox[0].part_id, again[0]);
}

#[test]
fn an_echo_from_this_app_without_a_part_id_is_no_takeover() {
    let mut c = Conversation::new(integration(100, 0, true), "fb:C", "C", None, T0);
    c.apply(&message("m1", "hours?", T0), T0);
    let mut e = echo("m_x", T0 + 1);
    if let EventKind::Echo { own_app, .. } = &mut e.kind {
        *own_app = true;
    }
    assert_eq!(c.apply(&e, T0 + 1), EventOutcome::Ignored);
    assert_eq!(c.record.mode, Mode::Ai);
    // Another app's echo is a person answering.
    c.apply(&echo("m_y", T0 + 2), T0 + 2);
    assert_eq!(c.record.mode, Mode::Human);
}

#[test]
fn a_part_sent_without_an_id_learns_it_from_its_echo() {
    let mut c = answered();
    let part = c.record.outbox[0].part_id.clone();
    c.part_sent(String::new(), T0 + 1);
    assert_eq!(c.record.sent_parts.len(), 1);
    assert_eq!(
        c.apply(&own_echo("m_real", &part, T0 + 2), T0 + 2),
        EventOutcome::Ignored
    );
    assert!(c.record.sent_parts.is_empty());
    assert!(c.record.sent_ids.iter().any(|(mid, _)| mid == "m_real"));
    assert_eq!(c.record.mode, Mode::Ai);
}
