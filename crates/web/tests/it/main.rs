//! The portal's integration tests, in one binary: the JSON API through `app(state)` with
//! `oneshot`, and the HTML portal in a real headless Chromium.

#![allow(clippy::unwrap_used)]

mod api;
mod browser;
mod fixture;
mod schemathesis;
