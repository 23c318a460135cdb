//! The fake model's streamed answer: its events as server-sent events,
//! paced, damaged as a fault asks, counted in flight while they last.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;

use super::super::SimState;
use super::ModelFault;

/// The events as SSE bytes, paced over the latency; damaged as `fault` says.
pub(super) fn async_stream(
    events: Vec<Value>,
    pause: Duration,
    fault: Option<ModelFault>,
    state: Arc<SimState>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(
        (
            events.into_iter(),
            0usize,
            Some(InFlightOwned::enter(state)),
        ),
        move |(mut events, sent, guard)| async move {
            guard.as_ref()?;
            if sent == 2 && fault == Some(ModelFault::Ended) {
                // The role chunk and the first words went; the body ends.
                return None;
            }
            if sent == 1 {
                match fault {
                    Some(ModelFault::Stall) => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return None;
                    }
                    Some(ModelFault::Cut) => {
                        let cut = std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection cut mid-stream",
                        );
                        return Some((Err(cut), (events, sent + 1, None)));
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(pause).await;
            match events.next() {
                Some(e) => Some((
                    Ok(Bytes::from(format!("data: {e}\n\n"))),
                    (events, sent + 1, guard),
                )),
                None => Some((
                    Ok(Bytes::from_static(b"data: [DONE]\n\n")),
                    (events, sent + 1, None),
                )),
            }
        },
    )
}

/// [`InFlight`] for the life of a streamed answer.
struct InFlightOwned(Arc<SimState>);

impl InFlightOwned {
    fn enter(state: Arc<SimState>) -> Self {
        let now = state.model.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        state.model.max_in_flight.fetch_max(now, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for InFlightOwned {
    fn drop(&mut self) {
        self.0.model.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
