//! Pull progress: a bar per layer and a total on a terminal; silence when piped.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use microsandbox::image::PullEvent;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

/// Renders [`PullEvent`]s.
#[derive(Debug)]
pub struct PullProgress {
    multi: Option<MultiProgress>,
    total: Mutex<Option<ProgressBar>>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    downloaded: Mutex<bool>,
}

impl PullProgress {
    /// Bars only when stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && !crate::output::is_quiet() && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        PullProgress {
            multi,
            total: Mutex::default(),
            bars: Mutex::default(),
            downloaded: Mutex::new(false),
        }
    }

    /// Updates the display for one event.
    pub fn event(&self, event: PullEvent) {
        if let PullEvent::Started { .. } = &event {
            if let Ok(mut d) = self.downloaded.lock() {
                *d = true;
            }
        }
        let (Some(multi), Ok(mut bars), Ok(mut total)) = (&self.multi, self.bars.lock(), self.total.lock()) else {
            return;
        };
        match event {
            PullEvent::Resolved { layers, bytes } => {
                let bar = multi.add(ProgressBar::new(bytes));
                bar.set_style(style(
                    "{prefix:>12} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                ));
                bar.set_prefix(format!("{layers} layers"));
                *total = Some(bar);
            }
            PullEvent::Started { digest, size } => {
                let bar = multi.add(ProgressBar::new(size));
                bar.set_style(style("{prefix:>12} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}"));
                bar.set_prefix(short(&digest));
                bars.insert(digest, bar);
            }
            PullEvent::Progress { digest, bytes } => {
                if let Some(bar) = bars.get(&digest) {
                    bar.inc(bytes);
                }
                if let Some(t) = total.as_ref() {
                    t.inc(bytes);
                }
            }
            PullEvent::Done { digest, cached, size } => match bars.get(&digest) {
                Some(bar) => bar.finish_with_message("done"),
                None if cached => {
                    if let Some(t) = total.as_ref() {
                        t.inc(size);
                    }
                    let _ = multi.println(format!("{} already present", short(&digest)));
                }
                None => {}
            },
        }
    }

    /// True when no layer had to be downloaded.
    pub fn all_cached(&self) -> bool {
        self.downloaded.lock().map(|d| !*d).unwrap_or(false)
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn short(digest: &str) -> String {
    let hex = digest.rsplit(':').next().unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}
