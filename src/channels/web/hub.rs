//! The web chat sockets open on this instance, by conversation: a reply
//! or typing indicator for a conversation is handed to each of its sockets
//! (a visitor may have several tabs open). A socket that cannot keep up
//! misses frames here and gets them from the store (each socket checks for
//! lines it has not shown), as does a socket open on another instance than
//! the conversation's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::sync::lock;

/// Frames waiting for one socket, at most.
const QUEUE: usize = 64;

/// A socket: its number and where its frames go.
type Socket = (u64, mpsc::Sender<Value>);

#[derive(Default)]
pub struct WebHub {
    sockets: Mutex<HashMap<String, Vec<Socket>>>,
    next: AtomicU64,
}

impl WebHub {
    /// A socket of `conversation`: its number and its frames.
    pub fn register(&self, conversation: &str) -> (u64, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.sockets)
            .entry(conversation.to_string())
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    pub fn unregister(&self, conversation: &str, id: u64) {
        let mut sockets = lock(&self.sockets);
        if let Some(list) = sockets.get_mut(conversation) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                sockets.remove(conversation);
            }
        }
    }

    /// Hands `frame` to every socket of `conversation` here; how many took it.
    pub fn deliver(&self, conversation: &str, frame: &Value) -> usize {
        let sockets = lock(&self.sockets);
        sockets.get(conversation).map_or(0, |list| {
            list.iter()
                .filter(|(_, tx)| tx.try_send(frame.clone()).is_ok())
                .count()
        })
    }

    /// Sockets open here.
    pub fn open(&self) -> usize {
        lock(&self.sockets).values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_reach_every_socket_of_the_conversation_only() {
        let hub = WebHub::default();
        let (a, mut ra) = hub.register("w:v.1");
        let (_b, mut rb) = hub.register("w:v.1");
        let (_c, mut rc) = hub.register("w:v.2");
        assert_eq!(hub.deliver("w:v.1", &serde_json::json!({"n": 1})), 2);
        assert_eq!(ra.recv().await.unwrap()["n"], 1);
        assert_eq!(rb.recv().await.unwrap()["n"], 1);
        assert!(rc.try_recv().is_err());
        hub.unregister("w:v.1", a);
        assert_eq!(hub.deliver("w:v.1", &serde_json::json!({"n": 2})), 1);
        assert_eq!(hub.open(), 2);
    }
}
