//! Attacks on the servers, one module per defect of the revocation-under-attack issue, each named for the attacker's goal, over real HTTP and a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../support/mod.rs"]
mod support;

mod acknowledged_revocation;
mod forgotten_versions;
mod half_done_revocation;
mod index_race;
mod json_array;
mod jwt_rotation;
mod login_flood;
mod password_race;
mod pumped_marks;
mod push_log;
mod refresh_retry;
mod silent_body;
mod small_openings;
