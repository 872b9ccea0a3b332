//! Progress of streamed objects on stderr: a bar on a terminal, or JSON lines.

use super::args::ProgressMode;
use std::io::IsTerminal;
use std::sync::Arc;

/// Progress of the objects streamed by one command: a bar or JSON lines on stderr.
pub(super) struct Reporter(pub(super) Option<Arc<ProgressState>>);

pub(super) struct ProgressState {
    bar: Option<indicatif::ProgressBar>,
    current: std::sync::Mutex<Option<ObjectProgress>>,
}

struct ObjectProgress {
    name: String,
    started: std::time::Instant,
    last_line: std::time::Instant,
    bytes: u64,
}

impl Reporter {
    pub(super) fn new(mode: ProgressMode) -> Reporter {
        let bar = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}, {elapsed})")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                Some(bar)
            }
            ProgressMode::Json => None,
            ProgressMode::Auto | ProgressMode::None => return Reporter(None),
        };
        Reporter(Some(Arc::new(ProgressState { bar, current: std::sync::Mutex::new(None) })))
    }

    /// Reports the last object as done (after a success: a failed run's last object is not).
    pub(super) fn finish(&self) {
        if let Some(st) = &self.0 {
            st.close_current();
            if let Some(bar) = &st.bar {
                bar.finish_and_clear();
            }
        }
    }
}

impl ProgressState {
    pub(super) fn update(&self, name: &str, bytes: u64) {
        if let Some(bar) = &self.bar {
            if bar.message() != name {
                bar.set_message(name.to_string());
                bar.reset();
            }
            bar.set_position(bytes);
            return;
        }
        let now = std::time::Instant::now();
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().is_some_and(|c| c.name != name) {
            if let Some(done) = cur.take() {
                json_line("done", &done, now);
            }
        }
        let c = cur.get_or_insert_with(|| ObjectProgress {
            name: name.to_string(),
            started: now,
            last_line: now,
            bytes: 0,
        });
        let first = c.bytes == 0;
        c.bytes = bytes;
        // A line a second per object at most: CI logs stay short however big the backup.
        if first || now.duration_since(c.last_line) >= std::time::Duration::from_secs(1) {
            c.last_line = now;
            json_line("progress", c, now);
        }
    }

    fn close_current(&self) {
        if self.bar.is_none() {
            let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(done) = cur.take() {
                json_line("done", &done, std::time::Instant::now());
            }
        }
    }
}

fn json_line(event: &str, p: &ObjectProgress, now: std::time::Instant) {
    let secs = now.duration_since(p.started).as_secs_f64();
    let rate = if secs > 0.0 { (p.bytes as f64 / secs) as u64 } else { p.bytes };
    eprintln!(
        "{}",
        serde_json::json!({ "event": event, "object": p.name, "bytes": p.bytes, "elapsed_s": (secs * 1000.0).round() / 1000.0, "bytes_per_sec": rate })
    );
}
