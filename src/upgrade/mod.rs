//! One upgrade, journaled before the daemon is stopped and carried out once it is: the steps and
//! their journal, the backup of `data/` (policy, the backups that exist, the copy engine, the
//! restore), the pre-upgrade hooks and their contract, and the fault points of the crash tests.
//! Uses `acquire`, `home` and the shared pieces; never touches the daemon process.

pub mod backup;
pub mod fault;
pub mod hook;
pub mod journal;
pub mod readiness;
pub mod scheduled;
pub mod steps;
