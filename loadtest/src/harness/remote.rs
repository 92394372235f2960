//! The fleet of `authbench load`: one server someone else runs, in any language, reached on
//! loopback. Only the scenarios that need no control over its processes run here.

use super::fleet::{Fleet, Known, Step, rounds_step, subject_step};
use crate::plan::LoadConfig;
use crate::results::Capabilities;
use crate::scenario::rounds::Cell;
use crate::scenario::{Knobs, MeLoad, Sink, Subject, revocation};

/// Someone else's server and what `load` was told about it.
#[derive(Debug)]
pub struct RemoteFleet {
    pub knobs: Knobs,
    pub subject: Subject,
    pub capabilities: Capabilities,
    pub password: String,
    pub admin_key: String,
    load: Option<MeLoad>,
}

impl RemoteFleet {
    pub fn new(knobs: Knobs, subject: Subject, capabilities: Capabilities, config: &LoadConfig) -> Self {
        Self {
            knobs,
            subject,
            capabilities,
            password: config.user_password.clone(),
            admin_key: config.admin_key.clone(),
            load: None,
        }
    }

    /// The `/me` load, logged in at the first step that needs it.
    fn load(&mut self) -> anyhow::Result<MeLoad> {
        if self.load.is_none() {
            let tokens = self.knobs.plan.connections.min(16);
            self.load = Some(self.knobs.runtime.block_on(MeLoad::login(&self.subject, tokens))?);
        }
        self.load.clone().ok_or_else(|| anyhow::anyhow!("no tokens"))
    }
}

impl Fleet for RemoteFleet {
    fn measure(&mut self, step: &Step, known: Known, sink: Sink<'_>) -> anyhow::Result<()> {
        match step {
            Step::Rounds(_) => {
                let load = self.load()?;
                let label = self.subject.variant.clone();
                let cells = [Cell { subject: &self.subject, load: &load, label: &label }];
                rounds_step(&cells, &self.knobs, sink)
            }
            Step::Sweep(_) | Step::Rate(..) | Step::Login(_) => {
                // A login flow logs its own users in; steady and sweep need the `/me` tokens.
                let load = if matches!(step, Step::Login(_)) { None } else { Some(self.load()?) };
                subject_step(step, &self.subject, load.as_ref(), &self.knobs, known, sink)
            }
            Step::Release(_) => Ok(()),
            Step::Revocation(_) => revocation::run_remote(
                self.subject.addr,
                &self.capabilities,
                &self.password,
                &self.admin_key,
                &self.knobs,
                sink,
            ),
            Step::Calibration
            | Step::Outage(..)
            | Step::Rtt
            | Step::Tokensize
            | Step::Population(_)
            | Step::Scale(..) => {
                anyhow::bail!("`load` cannot run this step: it needs servers authbench starts")
            }
        }
    }
}
