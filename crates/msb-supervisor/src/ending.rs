//! How a sandbox's run ended, and recording it truthfully: stopped (asked for, or the guest
//! ended itself in order) or crashed (panic, reset, wedge, a killed VMM), with a reason.

use crate::relay::{StopHow, StopRequest};
use crate::watchdog::{GuestGone, UNRESPONSIVE_AFTER};
use msb_boot::console::LastWords;
use msb_boot::BootedVm;
use msb_protocol::ShutdownRequest;
use std::os::unix::process::ExitStatusExt;

/// Why the serving loop ended.
#[derive(Debug)]
pub enum Ending {
    /// Someone asked (a client, a timeout, the owner leaving, a signal).
    Requested(StopRequest),
    /// The VMM process exited by itself.
    VmExited(std::io::Result<std::process::ExitStatus>),
    /// The guest stopped without the VMM exiting (halted, wedged).
    GuestGone(GuestGone),
}

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Crashed rather than stopped.
    pub crashed: bool,
    /// Why, for people.
    pub reason: String,
    /// The exit code of the sandbox's command, when it ended the run.
    pub exit_code: Option<i32>,
}

/// Brings the VM down as `ending` requires and says how the run ended.
pub async fn finish(
    ending: Ending,
    vm: &mut BootedVm,
    stop_signal: i32,
) -> (Outcome, Option<tokio::sync::oneshot::Sender<()>>) {
    match ending {
        Ending::Requested(request) => {
            let reason = match request.how {
                StopHow::Graceful(grace) => {
                    let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
                    let done = vm
                        .shutdown(ShutdownRequest {
                            signal: stop_signal,
                            grace_ms,
                        })
                        .await;
                    describe_stop(&request.reason, grace.as_secs_f64(), done)
                }
                StopHow::Kill => {
                    vm.kill().await;
                    request.reason.clone()
                }
            };
            let outcome = Outcome {
                crashed: false,
                reason,
                exit_code: request.exit_code,
            };
            (outcome, request.done)
        }
        Ending::VmExited(status) => {
            vm.kill().await;
            let words = settled_last_words(vm).await;
            (exited(status, words), None)
        }
        Ending::GuestGone(gone) => {
            vm.kill().await;
            (gone_outcome(gone), None)
        }
    }
}

/// The reason of a requested stop, with what the guest had to be made to do.
fn describe_stop(reason: &str, grace_secs: f64, done: msb_boot::Shutdown) -> String {
    let mut said = reason.to_string();
    if done.killed_processes > 0 {
        said.push_str(&format!(
            " ({} process(es) killed after the {grace_secs:.0} s grace period)",
            done.killed_processes
        ));
    }
    if done.forced {
        said.push_str(" (the guest did not power off in time and was killed)");
    } else if !done.clean {
        said.push_str(" (the guest powered off without confirming a clean shutdown)");
    }
    said
}

/// The last words, once the console has been read to its end (QEMU has exited, so the
/// pipe ends soon; a bounded wait all the same).
async fn settled_last_words(vm: &BootedVm) -> Option<LastWords> {
    let mut words = vm.last_words();
    let closed = async { while words.changed().await.is_ok() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), closed).await;
    let said = words.borrow().clone();
    said
}

/// How a VM that exited by itself ended.
pub fn exited(status: std::io::Result<std::process::ExitStatus>, words: Option<LastWords>) -> Outcome {
    let crashed = |reason: String| Outcome {
        crashed: true,
        reason,
        exit_code: None,
    };
    let stopped = |reason: &str| Outcome {
        crashed: false,
        reason: reason.into(),
        exit_code: None,
    };
    match status {
        Err(e) => crashed(format!("the VMM could not be waited for: {e}")),
        Ok(s) if s.signal().is_some() => crashed(format!(
            "the VMM was killed by signal {}",
            s.signal().unwrap_or_default()
        )),
        Ok(s) if s.code() != Some(0) => crashed(format!("the VMM failed ({s})")),
        Ok(_) => match words {
            Some(LastWords::Panicked(msg)) => crashed(format!("the guest kernel panicked: {msg}")),
            Some(LastWords::AgentFailed(msg)) => crashed(format!("the guest agent failed: {msg}")),
            Some(LastWords::Rebooted) => stopped("the guest rebooted itself"),
            Some(LastWords::Halted) => stopped("the guest halted itself"),
            Some(LastWords::PoweredOff) => stopped("the guest powered itself off"),
            None => crashed("the guest reset without shutting down (a triple fault?)".into()),
        },
    }
}

fn gone_outcome(gone: GuestGone) -> Outcome {
    match gone {
        GuestGone::Said(LastWords::PoweredOff) => Outcome {
            crashed: false,
            reason: "the guest powered itself off".into(),
            exit_code: None,
        },
        GuestGone::Said(_) => Outcome {
            crashed: false,
            reason: "the guest halted itself".into(),
            exit_code: None,
        },
        GuestGone::Unresponsive => Outcome {
            crashed: true,
            reason: format!(
                "the guest stopped answering (no reply within {} s); its VM was killed",
                UNRESPONSIVE_AFTER.as_secs()
            ),
            exit_code: None,
        },
        GuestGone::BrokeProtocol(what) => Outcome {
            crashed: true,
            reason: format!("the guest agent broke the protocol ({what}); its VM was killed"),
            exit_code: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    fn code(c: i32) -> std::io::Result<ExitStatus> {
        Ok(ExitStatus::from_raw(c << 8))
    }

    #[test]
    fn a_vm_that_exits_by_itself_is_judged_by_the_guests_last_words() {
        let panic = exited(code(0), Some(LastWords::Panicked("Attempted to kill init!".into())));
        assert!(panic.crashed && panic.reason.contains("panicked: Attempted to kill init!"));
        let reboot = exited(code(0), Some(LastWords::Rebooted));
        assert!(!reboot.crashed && reboot.reason.contains("rebooted"));
        let agent = exited(code(0), Some(LastWords::AgentFailed("no port".into())));
        assert!(agent.crashed && agent.reason.contains("no port"));
        assert!(exited(code(0), None).crashed, "a reset without a word is a crash");
        let killed = exited(Ok(ExitStatus::from_raw(9)), Some(LastWords::Rebooted));
        assert!(killed.crashed && killed.reason.contains("signal 9"));
        assert!(exited(code(1), None).crashed);
    }

    #[test]
    fn a_guest_gone_quiet_is_a_crash_and_one_that_halted_is_a_stop() {
        assert!(gone_outcome(GuestGone::Unresponsive).crashed);
        let broke = gone_outcome(GuestGone::BrokeProtocol("malformed message: x".into()));
        assert!(broke.crashed && broke.reason.contains("broke the protocol (malformed message: x)"));
        let halted = gone_outcome(GuestGone::Said(LastWords::Halted));
        assert!(!halted.crashed && halted.reason.contains("halted"));
        assert!(gone_outcome(GuestGone::Said(LastWords::PoweredOff))
            .reason
            .contains("powered"));
    }

    #[test]
    fn a_stop_says_what_the_guest_had_to_be_made_to_do() {
        let clean = msb_boot::Shutdown {
            clean: true,
            killed_processes: 0,
            forced: false,
        };
        assert_eq!(describe_stop("stopped", 5.0, clean), "stopped");
        let killed = msb_boot::Shutdown {
            killed_processes: 2,
            ..clean
        };
        assert!(describe_stop("stopped", 5.0, killed).contains("2 process(es) killed after the 5 s"));
        let forced = msb_boot::Shutdown {
            clean: false,
            killed_processes: 0,
            forced: true,
        };
        assert!(describe_stop("stopped", 5.0, forced).contains("was killed"));
    }
}
