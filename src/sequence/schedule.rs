//! The scheduler task.
