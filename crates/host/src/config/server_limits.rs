//! `[server]`'s limits: the read timeouts and connection cap of the listener, the request body
//! size, and the proxy's timeout and per-connection cap, each bounded and refused with the key
//! named.

use std::time::Duration;

use plugboard_core::spec::HumanDuration;

use super::read::{self, Ctx, Table};
use crate::listener::Limits;

/// Proxied requests one connection may have in flight unless `[server]
/// max_proxy_requests_per_connection` says otherwise: several times what one account's
/// callers need (providers throttle one account long before: Graph allows 4 concurrent
/// requests per mailbox), yet few enough that one caller looping on one account holds at most
/// this many of the host's sockets and answers.
pub const DEFAULT_MAX_PROXY_REQUESTS_PER_CONNECTION: usize = 32;

/// `[server] proxy_timeout` (1s to 1h, default [`plugboard_core::http::DEFAULT_REQUEST_TIMEOUT`],
/// as for syncs) and `max_proxy_requests_per_connection` (1 to 10000).
pub(super) fn read_proxy_limits(
    ctx: &mut Ctx<'_>,
    t: &mut Table,
) -> (Option<Duration>, Option<usize>) {
    let timeout = match t.take("proxy_timeout") {
        None => Some(plugboard_core::http::DEFAULT_REQUEST_TIMEOUT),
        Some(f) => read_timeout(ctx, &f),
    };
    let requests = match t.take("max_proxy_requests_per_connection") {
        None => Some(DEFAULT_MAX_PROXY_REQUESTS_PER_CONNECTION),
        Some(f) => match ctx.integer(&f, "a number of requests") {
            Some(n @ 1..=10_000) => Some(n as usize),
            Some(_) => {
                ctx.error(&f, "must be from 1 to 10000");
                None
            }
            None => None,
        },
    };
    (timeout, requests)
}

/// The request body limit unless `[server] max_body_size` says otherwise: far above any JSON
/// the API takes, far below what would strain memory.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024;

/// `[server] max_body_size`: bytes as a number, or with a unit (`"64KiB"`, `"2MiB"`, `"1MB"`),
/// from 1 KiB to 1 GiB.
pub(super) fn read_max_body_size(ctx: &mut Ctx<'_>, t: &mut Table) -> Option<usize> {
    let Some(f) = t.take("max_body_size") else {
        return Some(DEFAULT_MAX_BODY_SIZE);
    };
    let size = ctx.byte_size(
        &f,
        "a size such as \"1MiB\", \"512KiB\" or a number of bytes",
    )?;
    match usize::try_from(size) {
        Ok(size @ 1024..=0x4000_0000) => Some(size),
        _ => {
            ctx.error(&f, "must be from 1KiB to 1GiB");
            None
        }
    }
}

/// The longest read timeout `[server]` accepts: anything longer holds connections as good as
/// forever.
const MAX_READ_TIMEOUT: Duration = Duration::from_secs(3600);

/// `[server] header_read_timeout`, `body_read_timeout` and `max_connections`, each defaulting to
/// [`Limits::default`].
pub(super) fn read_limits(ctx: &mut Ctx<'_>, t: &mut Table) -> Option<Limits> {
    let defaults = Limits::default();
    let mut timeout = |name: &str, default: Duration| match t.take(name) {
        None => Some(default),
        Some(f) => read_timeout(ctx, &f),
    };
    let header_read_timeout = timeout("header_read_timeout", defaults.header_read_timeout);
    let body_read_timeout = timeout("body_read_timeout", defaults.body_read_timeout);
    let max_connections = match t.take("max_connections") {
        None => Some(defaults.max_connections),
        Some(f) => match ctx.integer(&f, "a number of connections")? {
            n @ 1..=1_000_000 => Some(n as usize),
            _ => {
                ctx.error(&f, "must be from 1 to 1000000");
                None
            }
        },
    };
    Some(Limits {
        header_read_timeout: header_read_timeout?,
        body_read_timeout: body_read_timeout?,
        max_connections: max_connections?,
    })
}

/// A timeout of `[server]`, from 1s to [`MAX_READ_TIMEOUT`].
fn read_timeout(ctx: &mut Ctx<'_>, f: &read::Field) -> Option<Duration> {
    let text = ctx.string(f, "a duration such as \"10s\"")?;
    match text.parse::<HumanDuration>().map(HumanDuration::get) {
        Ok(d) if d >= Duration::from_secs(1) && d <= MAX_READ_TIMEOUT => Some(d),
        Ok(_) => {
            ctx.error(f, "must be from 1s to 1h");
            None
        }
        Err(e) => {
            ctx.error(f, e);
            None
        }
    }
}
