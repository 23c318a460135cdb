use std::sync::Mutex;

use super::*;

/// Records what it was asked to do; fails or panics on request.
struct Probe {
    log: Arc<Mutex<Vec<String>>>,
    /// Each message waits for this before it is done (a slow handler).
    gate: Arc<Notify>,
}

enum Msg {
    Note(&'static str),
    Slow(&'static str),
    Fail,
    Panic,
}

impl Behaviour for Probe {
    type Msg = Msg;

    async fn start(&mut self) -> Result<(), ActorProcessingErr> {
        self.log.lock().unwrap().push("start".into());
        Ok(())
    }

    async fn handle(&mut self, msg: Msg) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Note(n) => self.log.lock().unwrap().push(n.into()),
            Msg::Slow(n) => {
                self.gate.notified().await;
                self.log.lock().unwrap().push(n.into());
            }
            Msg::Fail => return Err("it failed".into()),
            Msg::Panic => panic!("it panicked"),
        }
        Ok(())
    }

    fn stopped(&mut self) {
        self.log.lock().unwrap().push("stopped".into());
    }
}

struct Run {
    addr: ActorAddr<Msg>,
    log: Arc<Mutex<Vec<String>>>,
    gate: Arc<Notify>,
    exit: tokio::sync::oneshot::Receiver<(u64, Exit)>,
    alive: Arc<Alive>,
}

fn start() -> Run {
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Notify::new());
    let alive = Arc::new(Alive::default());
    let (tx, exit) = tokio::sync::oneshot::channel();
    let probe = Probe {
        log: log.clone(),
        gate: gate.clone(),
    };
    let addr = spawn(
        move |_| probe,
        alive.clone(),
        move |id, exit| {
            let _ = tx.send((id, exit));
        },
    );
    Run {
        addr,
        log,
        gate,
        exit,
        alive,
    }
}

/// Waits for the actor to end (its address kept meanwhile, so only a stop
/// or a failure can end it).
async fn ended(run: Run) -> (Vec<String>, Exit) {
    ended_as(run.addr.id(), run.exit, &run.alive, &run.log).await
}

/// Waits for actor `id` to end; what it logged and how it ended.
async fn ended_as(
    id: u64,
    exit: tokio::sync::oneshot::Receiver<(u64, Exit)>,
    alive: &Alive,
    log: &Mutex<Vec<String>>,
) -> (Vec<String>, Exit) {
    let (ended, exit) = tokio::time::timeout(Duration::from_secs(10), exit)
        .await
        .expect("the actor ends")
        .expect("its end is reported");
    assert_eq!(ended, id);
    assert!(alive.wait_none(Duration::from_secs(10)).await);
    let log = log.lock().unwrap().clone();
    (log, exit)
}

#[tokio::test]
async fn messages_in_order_then_a_stop_runs_the_stop_hook() {
    let run = start();
    for n in ["a", "b", "c"] {
        run.addr.send_message(Msg::Note(n)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    run.addr.stop();
    let (log, exit) = ended(run).await;
    assert_eq!(log, ["start", "a", "b", "c", "stopped"]);
    assert!(matches!(exit, Exit::Stopped));
}

#[tokio::test]
async fn a_stop_is_taken_before_queued_messages() {
    let run = start();
    run.addr.send_message(Msg::Slow("slow")).unwrap();
    run.addr.send_message(Msg::Note("queued")).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    run.addr.stop();
    run.gate.notify_one();
    let (log, exit) = ended(run).await;
    assert_eq!(log, ["start", "slow", "stopped"], "the queued one is left");
    assert!(matches!(exit, Exit::Stopped));
}

#[tokio::test]
async fn a_stop_before_the_first_poll_is_taken_after_the_start() {
    let run = start();
    run.addr.stop();
    let (log, _) = ended(run).await;
    assert_eq!(log, ["start", "stopped"]);
}

#[tokio::test]
async fn an_error_or_a_panic_is_reported_as_a_failure_without_the_stop_hook() {
    for msg in [Msg::Fail, Msg::Panic] {
        let run = start();
        run.addr.send_message(msg).unwrap();
        let (log, exit) = ended(run).await;
        assert_eq!(log, ["start"]);
        match exit {
            Exit::Failed(e) => assert!(e.to_string().contains("it"), "{e}"),
            Exit::Stopped => panic!("reported as stopped"),
        }
    }
}

#[tokio::test]
async fn the_actor_stops_once_every_strong_address_is_gone() {
    let run = start();
    let weak = WeakAddr {
        mailbox: run.addr.mailbox.clone(),
    };
    let id = run.addr.id();
    drop(run.addr);
    let (log, exit) = ended_as(id, run.exit, &run.alive, &run.log).await;
    assert_eq!(log, ["start", "stopped"]);
    assert!(matches!(exit, Exit::Stopped));
    assert!(weak.send_message(Msg::Note("late")).is_err());
}

#[tokio::test]
async fn an_aborted_actor_is_no_longer_counted_alive() {
    let run = start();
    run.addr.send_message(Msg::Slow("never")).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!run.alive.wait_none(Duration::from_millis(50)).await);
    run.addr.abort();
    assert!(run.alive.wait_none(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn an_ended_actor_refuses_messages_even_from_a_strong_address() {
    let run = start();
    run.addr.send_message(Msg::Fail).unwrap();
    let addr = run.addr.clone();
    let (log, _) = ended(run).await;
    assert_eq!(log, ["start"]);
    assert!(addr.send_message(Msg::Note("late")).is_err());
}

#[tokio::test]
async fn an_actor_aborted_before_it_ran_refuses_messages() {
    let run = start();
    // Aborted at once: the task may never have been polled.
    run.addr.abort();
    assert!(run.alive.wait_none(Duration::from_secs(10)).await);
    assert!(run.addr.send_message(Msg::Note("late")).is_err());
}
