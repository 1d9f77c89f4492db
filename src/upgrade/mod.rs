//! One upgrade, journaled before the daemon is stopped and carried out once it is: the steps and
//! their journal, the backup of `data/` and the copy engine behind it, the pre-upgrade hooks, the
//! manual-upgrade queue, and the fault points of the crash tests. Uses `acquire`, `home` and the shared pieces; never
//! touches the daemon process.

pub mod backup;
pub mod batch;
pub mod copy;
pub mod fault;
pub mod hook;
pub mod journal;
pub mod readiness;
pub mod scheduled;
pub mod steps;
