//! Attacks on the servers, one module per defect of the revocation-under-attack issue, each named for the attacker's goal, over real HTTP and a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../support/mod.rs"]
mod support;

mod acknowledged_revocation;
mod index_race;
mod password_race;
