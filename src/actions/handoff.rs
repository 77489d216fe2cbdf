//! The hand-off worker: renders queued notifications to our own people and enqueues them.
