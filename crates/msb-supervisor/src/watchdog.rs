//! Liveness of the guest, judged from outside: the agent must answer pings and keep to the
//! protocol, and a guest whose kernel said it halted or powered off must really have stopped
//! answering before it is treated as gone (anything in the guest can write those words to
//! its console).

use msb_boot::console::LastWords;
use msb_protocol::client::AgentClient;
use msb_protocol::mux::Closed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the agent is pinged.
const PING_EVERY: Duration = Duration::from_secs(2);
/// How long the agent may take to answer a ping before the guest counts as wedged.
/// Generous: under TCG a loaded host can stall a guest for seconds.
pub const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(10);
/// How long the agent may take to answer after the kernel said it halted.
const AFTER_LAST_WORDS: Duration = Duration::from_secs(1);

/// Why the watchdog gave up on the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestGone {
    /// The kernel said it halted or powered off, and the agent no longer answers.
    Said(LastWords),
    /// The agent stopped answering without a word.
    Unresponsive,
    /// The agent sent what no honest agent sends (a malformed frame, a length over the
    /// limit); the connection was dropped.
    BrokeProtocol(String),
}

/// Resolves when the guest is gone without the VM having exited. While `saving` is set the
/// guest stands still on purpose (a snapshot), so an unanswered ping then does not count.
pub async fn watch(
    agent: Arc<AgentClient>,
    mut last_words: watch::Receiver<Option<LastWords>>,
    saving: Arc<AtomicBool>,
) -> GuestGone {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            what = agent.mux().broken() => return GuestGone::BrokeProtocol(what),
            _ = tick.tick() => {
                if !agent.ping(UNRESPONSIVE_AFTER).await && !saving.load(Ordering::SeqCst) {
                    return match agent.mux().closed_yet() {
                        Some(Closed::Broken(what)) => GuestGone::BrokeProtocol(what),
                        _ => GuestGone::Unresponsive,
                    };
                }
            }
            changed = last_words.changed() => {
                if changed.is_err() {
                    // The console closed: the VM is ending, which the supervisor sees itself.
                    std::future::pending::<()>().await;
                }
                let said = last_words.borrow_and_update().clone();
                if let Some(words @ (LastWords::Halted | LastWords::PoweredOff)) = said {
                    if !agent.ping(AFTER_LAST_WORDS).await {
                        return GuestGone::Said(words);
                    }
                }
            }
        }
    }
}
