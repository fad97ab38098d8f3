//! The host side of the context: the host's `&dyn Context` behind the [`ContextVTable`] a
//! plugin calls.
//!
//! Each function decodes its arguments before returning (they are borrowed only for the call),
//! then runs the host's context method in a future the plugin polls. Panics in the host's
//! context become errors of the call, so they travel back through the provider code like any
//! other failure.

use std::ffi::c_void;
use std::future::Future;

use async_ffi::{FfiFuture, FutureExt};
use plugboard_core::{Context, EncodedRecords, HttpRequest, ProviderError};
use serde::Serialize;
use serde_json::Value;

use crate::abi::{ContextVTable, HostContext, HttpOutput, RBuffer, RSlice};
use crate::{panic, wire};

static VTABLE: ContextVTable = ContextVTable {
    http,
    save_records,
    delete_records,
    begin_crawl,
    end_crawl,
    checkpoint,
    set_checkpoint,
    run_info,
    log,
};

/// The handle for one run. `ctx` must stay where it is, and alive, until the plugin's future
/// for the run is done or dropped; the caller keeps it in that future's own frame.
pub(crate) fn handle(ctx: &&dyn Context) -> HostContext {
    HostContext::new((ctx as *const &dyn Context).cast(), &VTABLE)
}

/// # Safety
/// `data` comes from [`handle`], whose context is alive as long as any use of the result.
unsafe fn context(data: *const c_void) -> &'static dyn Context {
    // SAFETY: the caller's contract. The `'static` is a promise to the plugin's future types,
    // which carry no lifetime: the plugin awaits every context future inside the run.
    unsafe { *data.cast::<&'static dyn Context>() }
}

/// Runs the host's side of a call as a future for the plugin, catching panics.
fn call<T, F>(what: &'static str, future: F) -> FfiFuture<RBuffer>
where
    T: Serialize,
    F: Future<Output = Result<T, ProviderError>> + Send + 'static,
{
    async move {
        let result = panic::catch_future(future)
            .await
            .unwrap_or_else(|panic| Err(host_panicked(what, &panic)));
        RBuffer::new(wire::encode_result(&result, what))
    }
    .into_ffi()
}

fn host_panicked(what: &str, panic: &str) -> ProviderError {
    ProviderError::internal(format!("the host's {what} panicked: {panic}"))
}

fn model(slice: RSlice<'_>) -> Result<String, ProviderError> {
    slice
        .to_str()
        .map(str::to_owned)
        .map_err(|e| ProviderError::internal(format!("plugin boundary: model is not UTF-8: {e}")))
}

unsafe extern "C" fn http(data: *const c_void, request: RSlice<'_>) -> FfiFuture<HttpOutput> {
    // SAFETY: the plugin calls with the handle of its run, inside that run.
    let ctx = unsafe { context(data) };
    let request = wire::decode::<HttpRequest>(request.as_bytes(), "the HTTP request");
    async move {
        let response = match request {
            Ok(request) => panic::catch_future(ctx.http(request))
                .await
                .unwrap_or_else(|panic| Err(host_panicked("http", &panic))),
            Err(error) => Err(error),
        };
        wire::encode_response(response)
    }
    .into_ffi()
}

unsafe extern "C" fn save_records(
    data: *const c_void,
    model_name: RSlice<'_>,
    records: RSlice<'_>,
    spans: RSlice<'_>,
) -> FfiFuture<RBuffer> {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    // Copied, not decoded: the slice is only borrowed for this call, and the host's context
    // decodes (or stores as they are) what it needs. The spans come from the plugin's side of
    // this crate, which wrote or parsed the JSON; `EncodedRecords::raw` still refuses any that
    // do not fit the bytes.
    let args = model(model_name).and_then(|model| {
        let spans = wire::decode_spans(spans.as_bytes())?;
        let records = EncodedRecords::with_spans(records.as_bytes().to_vec(), spans);
        Ok((model, records))
    });
    call("save_records", async move {
        let (model, records) = args?;
        ctx.save_encoded_records(&model, records).await
    })
}

unsafe extern "C" fn delete_records(
    data: *const c_void,
    model_name: RSlice<'_>,
    ids: RSlice<'_>,
) -> FfiFuture<RBuffer> {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    let args = model(model_name).and_then(|model| {
        let ids: Vec<String> = wire::decode(ids.as_bytes(), "the record ids")?;
        Ok((model, ids))
    });
    call("delete_records", async move {
        let (model, ids) = args?;
        ctx.delete_records(&model, ids).await
    })
}

unsafe extern "C" fn begin_crawl(
    data: *const c_void,
    model_name: RSlice<'_>,
) -> FfiFuture<RBuffer> {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    let model = model(model_name);
    call("begin_crawl", async move { ctx.begin_crawl(&model?).await })
}

unsafe extern "C" fn end_crawl(data: *const c_void, model_name: RSlice<'_>) -> FfiFuture<RBuffer> {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    let model = model(model_name);
    call("end_crawl", async move { ctx.end_crawl(&model?).await })
}

unsafe extern "C" fn checkpoint(data: *const c_void) -> FfiFuture<RBuffer> {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    call("checkpoint", ctx.checkpoint())
}

unsafe extern "C" fn set_checkpoint(data: *const c_void, value: RSlice<'_>) -> FfiFuture<RBuffer> {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    let value = wire::decode::<Value>(value.as_bytes(), "the checkpoint");
    call(
        "set_checkpoint",
        async move { ctx.set_checkpoint(value?).await },
    )
}

unsafe extern "C" fn run_info(data: *const c_void) -> RBuffer {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    let info = panic::catch(|| ctx.run_info()).map_err(|panic| host_panicked("run_info", &panic));
    RBuffer::new(wire::encode_result(&info, "run_info"))
}

unsafe extern "C" fn log(data: *const c_void, level: u32, message: RSlice<'_>) {
    // SAFETY: as in `http`.
    let ctx = unsafe { context(data) };
    let message = String::from_utf8_lossy(message.as_bytes());
    // A log line the host failed to keep is not worth failing the run for.
    let _ = panic::catch(|| ctx.log(wire::log_level(level), &message));
}
