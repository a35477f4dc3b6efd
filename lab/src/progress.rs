//! The runner's progress: a bar with the elapsed time and an estimate of what is left on a
//! terminal, one line per run either way (above the bar, or alone when stderr is not a terminal
//! and the bar stays hidden, as in CI logs).

use indicatif::{ProgressBar, ProgressStyle};

/// The suite's progress over `total` runs.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} runs, about {eta} left  {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        Progress { bar }
    }

    /// A run starts: shown beside the bar.
    pub fn start(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    /// A run ended with `line` to report.
    pub fn done(&self, line: &str) {
        self.say(line);
        self.bar.inc(1);
    }

    /// A line above the bar (or on stderr alone when there is no bar).
    pub fn say(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// The suite ended.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
