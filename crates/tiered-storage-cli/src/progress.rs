//! Progress bars on stderr, drawn only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `total` items (`unit` names them: "records", "groups"), or a spinner with a count
/// when the total is unknown. Hidden when stderr is not a terminal. The message (see
/// [`update`]) carries the rate and what was written; the bar fills the rest of the line.
pub fn bar(total: Option<u64>, prefix: &str, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match total {
        Some(_) => format!(
            "{{prefix}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {unit}, {{msg}}, ETA {{eta}}"
        ),
        None => format!("{{spinner}} {{prefix}} {{human_pos}} {unit}, {{msg}}"),
    };
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix.to_owned());
    bar.set_message("0/s");
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Move the bar to `pos` and show the average rate since it started, then `extra` (such as
/// "3 files written").
pub fn update(bar: &ProgressBar, pos: u64, extra: &str) {
    bar.set_position(pos);
    let per_sec = HumanCount(rate(pos, bar.elapsed()));
    if extra.is_empty() {
        bar.set_message(format!("{per_sec}/s"));
    } else {
        bar.set_message(format!("{per_sec}/s, {extra}"));
    }
}

/// `n` per second over `elapsed`, as a whole number.
pub fn rate(n: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return n;
    }
    (n as f64 / secs).round() as u64
}
