//! What the host tells its operator about itself: log lines ([`logs`]), Prometheus metrics
//! ([`metrics`]) and the management listener that serves them with health checks
//! ([`management`]).

pub mod logs;
pub mod management;
pub mod metrics;
