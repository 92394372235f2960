//! The overall progress bar and the lines printed above it while a run measures (hidden with
//! --quiet, plain lines when stderr is not a terminal).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The overall progress bar (hidden with --quiet or when stderr is not a terminal).
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool, estimate: Duration) -> Self {
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(estimate.as_secs().max(1)) };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise} of ~{len}s] {bar:30} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar, started: Instant::now(), quiet }
    }

    pub fn step(&self, message: String) {
        self.bar.set_position(self.started.elapsed().as_secs());
        self.bar.set_message(message);
    }

    /// A line above the bar; printed plainly when no bar is drawn (not a terminal).
    pub fn println(&self, line: String) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
