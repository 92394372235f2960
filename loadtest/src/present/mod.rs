//! Everything that renders a [`Results`](crate::results::Results): the lines and table of the
//! terminal, `compare`, and the report. It reads the results alone (a test checks that this
//! module imports nothing of the crate but `results`), so a run can be re-rendered later.

pub mod compare;
pub mod guide;
pub mod report;
pub mod terminal;
pub mod units;
