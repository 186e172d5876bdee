//! Named points where a test can stop a run dead, to prove that a crash there loses nothing.
//!
//! Inert unless the environment names a point: with `CUTOVER_FAILPOINT=name` and
//! `CUTOVER_FAILPOINT_FILE=path`, the process writes the point's name to the file when it gets
//! there and waits, so that the test can kill it (SIGKILL) at exactly that moment.

use std::sync::OnceLock;

/// Called where a crash must lose nothing.
pub fn reached(point: &str) {
    static AT: OnceLock<Option<(String, String)>> = OnceLock::new();
    let armed = AT.get_or_init(|| {
        Some((std::env::var("CUTOVER_FAILPOINT").ok()?, std::env::var("CUTOVER_FAILPOINT_FILE").ok()?))
    });
    let Some((name, file)) = armed else { return };
    if name != point {
        return;
    }
    tracing::warn!(point, "failpoint reached: waiting to be killed");
    let _ = std::fs::write(file, point);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
