//! The decision guide as data: per requirement and variant, whether this run's figures show
//! the requirement met, failed, or cannot tell (the interval straddles the threshold), with the
//! figures that decided it. `compare` reads it to show where two runs' verdicts differ.

use serde::{Deserialize, Serialize};

/// What the figures show about one requirement for one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Meets,
    Fails,
    /// The interval of the deciding figure straddles the threshold (or the design's own bound
    /// does, where the measurement cannot reach it).
    Undecided,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meets => "meets",
            Self::Fails => "fails",
            Self::Undecided => "undecided",
        }
    }
}

/// One (requirement, variant) cell of the guide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuideEntry {
    pub requirement: String,
    pub variant: String,
    pub verdict: Verdict,
    /// The figures and intervals that decided it, in words.
    pub figures: String,
}
