//! Ready-made multi-agent patterns: [`supervisor`] (a supervisor that hands work to
//! specialists who report back) and [`plan_execute`] (plan, execute a step, re-plan until
//! done).

pub mod plan_execute;
pub mod supervisor;
