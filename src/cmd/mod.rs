//! The command line: one file per subcommand. This folder is the only place that reads the process
//! environment or prints; the stages below it take their configuration as values and return their
//! warnings with their results.

pub mod analyze;
pub mod cli;
pub mod console;
pub mod scaffold;
pub mod serve;
pub mod watch;
