//! The plugin side: the functions `export_provider!` exports, and the host's context as a
//! [`Context`] for provider code.
//!
//! None of this needs a runtime: the futures handed to the host are polled by the host's, and
//! the context's futures come from the host too.

use std::ffi::c_void;
use std::fmt::Display;
use std::marker::PhantomData;

use async_ffi::{FfiFuture, FutureExt};
use async_trait::async_trait;
use plugboard_core::{
    Context, EncodedRecords, HttpRequest, HttpResponse, LogLevel, Provider, ProviderError, Record,
    RunInfo,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::abi::{HostContext, InitResult, ProviderVTable, RBuffer, RSlice};
use crate::{panic, wire};

/// Builds the provider for `PluginDeclaration::init`. The `export_provider!` macro calls it
/// from the exported `init` function.
pub fn init<P, E>(constructor: impl FnOnce() -> Result<P, E>) -> InitResult
where
    P: Provider + 'static,
    E: Display,
{
    let failed = |message: String| InitResult {
        instance: std::ptr::null(),
        vtable: &Shims::<P>::VTABLE,
        error: RBuffer::new(message.into_bytes()),
    };
    match panic::catch(|| constructor().map_err(|e| e.to_string())) {
        Ok(Ok(provider)) => InitResult {
            instance: Box::into_raw(Box::new(provider)).cast_const().cast(),
            vtable: &Shims::<P>::VTABLE,
            error: RBuffer::new(Vec::new()),
        },
        Ok(Err(message)) => failed(message),
        Err(panic) => failed(format!("its constructor panicked: {panic}")),
    }
}

/// The provider functions for a `P` made by [`init`].
struct Shims<P>(PhantomData<P>);

impl<P: Provider + 'static> Shims<P> {
    const VTABLE: ProviderVTable = ProviderVTable {
        spec: Self::spec,
        run_sync: Self::run_sync,
        run_action: Self::run_action,
        drop: Self::drop,
    };

    /// # Safety
    /// `instance` comes from [`init`] for this `P` and has not been dropped; the returned
    /// reference must not outlive it (the host keeps the instance until no call is running).
    unsafe fn provider<'a>(instance: *const c_void) -> &'a P {
        // SAFETY: the caller's contract; `init` made `instance` from a `Box<P>`.
        unsafe { &*instance.cast::<P>() }
    }

    unsafe extern "C" fn spec(instance: *const c_void) -> RBuffer {
        // SAFETY: the host passes the instance `init` returned, alive during this call.
        let provider = unsafe { Self::provider(instance) };
        let result = panic::catch(|| provider.spec().clone())
            .map_err(|panic| ProviderError::internal(format!("spec() panicked: {panic}")));
        RBuffer::new(wire::encode_result(&result, "the provider spec"))
    }

    unsafe extern "C" fn run_sync(
        instance: *const c_void,
        name: RSlice<'_>,
        ctx: HostContext,
    ) -> FfiFuture<RBuffer> {
        // SAFETY: the host keeps the instance alive until this future is done or dropped
        // (`LoadedProvider::run_sync` borrows it for the whole call).
        let provider: &'static P = unsafe { Self::provider(instance) };
        let name = text(name, "the sync name");
        async move {
            let result = match name {
                Ok(name) => {
                    let ctx = ProxyContext::new(ctx);
                    panic::catch_future(provider.run_sync(&name, &ctx))
                        .await
                        .unwrap_or_else(|panic| Err(panicked(provider, "sync", &name, &panic)))
                }
                Err(error) => Err(error),
            };
            RBuffer::new(wire::encode_result(&result, "the sync's outcome"))
        }
        .into_ffi()
    }

    unsafe extern "C" fn run_action(
        instance: *const c_void,
        name: RSlice<'_>,
        input: RSlice<'_>,
        ctx: HostContext,
    ) -> FfiFuture<RBuffer> {
        // SAFETY: as in `run_sync`.
        let provider: &'static P = unsafe { Self::provider(instance) };
        let call = text(name, "the action name").and_then(|name| {
            let input: Value = wire::decode(input.as_bytes(), "the action input")?;
            Ok((name, input))
        });
        async move {
            let result = match call {
                Ok((name, input)) => {
                    let ctx = ProxyContext::new(ctx);
                    panic::catch_future(provider.run_action(&name, input, &ctx))
                        .await
                        .unwrap_or_else(|panic| Err(panicked(provider, "action", &name, &panic)))
                }
                Err(error) => Err(error),
            };
            RBuffer::new(wire::encode_result(&result, "the action's output"))
        }
        .into_ffi()
    }

    unsafe extern "C" fn drop(instance: *const c_void) {
        // SAFETY: the host passes the instance once, when no future of it is alive; `init`
        // made it with `Box::into_raw`.
        let provider = unsafe { Box::from_raw(instance.cast_mut().cast::<P>()) };
        // The host is letting go of the provider and has no one to tell: a panicking `Drop` is
        // contained, not reported.
        let _ = panic::catch(move || drop(provider));
    }
}

fn text(slice: RSlice<'_>, what: &str) -> Result<String, ProviderError> {
    slice
        .to_str()
        .map(str::to_owned)
        .map_err(|e| ProviderError::internal(format!("plugin boundary: {what} is not UTF-8: {e}")))
}

fn panicked<P: Provider>(provider: &P, kind: &str, name: &str, panic: &str) -> ProviderError {
    ProviderError::internal(format!(
        "provider `{}` panicked in {kind} `{name}`: {panic}",
        provider.spec().id
    ))
}

/// The host's context, for provider code.
///
/// Only the shims above make one, inside the future of a run, and hand provider code a
/// reference to it: so it never outlives the run whose context `host` points at.
struct ProxyContext {
    host: HostContext,
}

impl ProxyContext {
    fn new(host: HostContext) -> Self {
        ProxyContext { host }
    }

    /// Hands a batch of records to the host, with where each record is in it: the host keeps
    /// the bytes as they are and finds the records without parsing them. A batch provider code
    /// encoded itself is parsed here, once, which also checks it before it crosses.
    async fn send_records(
        &self,
        model: &str,
        records: &EncodedRecords,
    ) -> Result<(), ProviderError> {
        let spans = wire::encode_spans(&records.spans()?);
        let vtable = self.host.vtable();
        // SAFETY: as for the calls of the `Context` impl below: `self.host` is the context of
        // the run this proxy lives in, and `records` and `spans` outlive the call.
        let call = unsafe {
            (vtable.save_records)(
                self.host.data(),
                RSlice::text(model),
                RSlice::new(records.as_bytes()),
                RSlice::new(&spans),
            )
        };
        Self::finish(call, "save_records").await
    }

    /// Awaits a context call's future and decodes its JSON result.
    async fn finish<T: DeserializeOwned>(
        call: FfiFuture<RBuffer>,
        what: &str,
    ) -> Result<T, ProviderError> {
        wire::decode_result(call.await.as_bytes(), what)
    }
}

// Each `unsafe` call below relies on the same facts, stated once: `self.host` is the context of
// the run this proxy lives in, alive until the run's future is done or dropped, and so alive
// for the call and for the future it returns (awaited within the same run). Arguments borrow
// locals that outlive the call, and the host copies what it keeps.
#[async_trait]
impl Context for ProxyContext {
    async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ProviderError> {
        let request = wire::encode(&request, "the HTTP request")?;
        let vtable = self.host.vtable();
        // SAFETY: see above.
        let call = unsafe { (vtable.http)(self.host.data(), RSlice::new(&request)) };
        wire::decode_response(&call.await)
    }

    async fn save_records(&self, model: &str, records: Vec<Record>) -> Result<(), ProviderError> {
        let encoded = EncodedRecords::encode(&records)?;
        // Not kept while the host stores the batch.
        drop(records);
        self.send_records(model, &encoded).await
    }

    async fn save_encoded_records(
        &self,
        model: &str,
        records: EncodedRecords,
    ) -> Result<(), ProviderError> {
        self.send_records(model, &records).await
    }

    async fn delete_records(&self, model: &str, ids: Vec<String>) -> Result<(), ProviderError> {
        let ids = wire::encode(&ids, "the record ids")?;
        let vtable = self.host.vtable();
        // SAFETY: see above.
        let call = unsafe {
            (vtable.delete_records)(self.host.data(), RSlice::text(model), RSlice::new(&ids))
        };
        Self::finish(call, "delete_records").await
    }

    async fn begin_crawl(&self, model: &str) -> Result<(), ProviderError> {
        let vtable = self.host.vtable();
        // SAFETY: see above.
        let call = unsafe { (vtable.begin_crawl)(self.host.data(), RSlice::text(model)) };
        Self::finish(call, "begin_crawl").await
    }

    async fn end_crawl(&self, model: &str) -> Result<u64, ProviderError> {
        let vtable = self.host.vtable();
        // SAFETY: see above.
        let call = unsafe { (vtable.end_crawl)(self.host.data(), RSlice::text(model)) };
        Self::finish(call, "end_crawl").await
    }

    async fn checkpoint(&self) -> Result<Option<Value>, ProviderError> {
        let vtable = self.host.vtable();
        // SAFETY: see above.
        let call = unsafe { (vtable.checkpoint)(self.host.data()) };
        Self::finish(call, "checkpoint").await
    }

    async fn set_checkpoint(&self, checkpoint: Value) -> Result<(), ProviderError> {
        let checkpoint = wire::encode(&checkpoint, "the checkpoint")?;
        let vtable = self.host.vtable();
        // SAFETY: see above.
        let call = unsafe { (vtable.set_checkpoint)(self.host.data(), RSlice::new(&checkpoint)) };
        Self::finish(call, "set_checkpoint").await
    }

    fn run_info(&self) -> RunInfo {
        let vtable = self.host.vtable();
        // SAFETY: see above.
        let info = unsafe { (vtable.run_info)(self.host.data()) };
        // `run_info` cannot return an error, and only a host bug makes this fail: the panic
        // fails the run (the shims catch it) with the reason.
        wire::decode_result(info.as_bytes(), "run_info")
            .unwrap_or_else(|e: ProviderError| panic!("the host could not tell the run info: {e}"))
    }

    fn log(&self, level: LogLevel, message: &str) {
        let vtable = self.host.vtable();
        // SAFETY: see above.
        unsafe {
            (vtable.log)(
                self.host.data(),
                wire::log_level_code(level),
                RSlice::text(message),
            )
        }
    }
}
