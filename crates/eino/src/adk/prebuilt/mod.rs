//! Ready-made multi-agent patterns: [`supervisor`] (a supervisor that hands work to
//! specialists who report back), [`plan_execute`] (plan, execute a step, re-plan until
//! done) and [`deep`] (a planner with a task list, sub-agents through a `task` tool, files
//! and context reduction).

pub mod deep;
pub mod plan_execute;
pub mod supervisor;
