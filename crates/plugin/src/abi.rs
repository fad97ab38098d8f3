//! The binary interface between the host and a provider plugin.
//!
//! Everything here is `#[repr(C)]` and holds only integers, pointers, function pointers and
//! [`async_ffi`] futures: Rust has no stable ABI, and the two sides are separately compiled
//! binaries, each with its own copy of std and its own allocator.
//!
//! A plugin exports one static, [`PluginDeclaration`], under [`DECLARATION_SYMBOL`]. Its first
//! field, [`DeclarationHeader`], has a layout that never changes across ABI versions, so the
//! loader can read the versions of any plugin — old or new — and refuse a mismatch before it
//! touches anything else. The rest is valid only for the header's `abi_version`.
//!
//! Data crosses as bytes, almost always JSON (`wire.rs` has the encodings; records also
//! carry where each one is in their JSON, as fixed-width offsets, so the host need not parse it):
//! - arguments as an [`RSlice`], borrowed for the duration of the call only: the callee decodes
//!   or copies what its future needs before it returns;
//! - results as an [`RBuffer`], owned by the receiver but freed through the function pointer it
//!   carries, that is by the allocator of the side that allocated it.
//!
//! Futures are `async_ffi::FfiFuture`s, polled by the host's runtime with wakers that are
//! wrapped on each crossing; the plugin never needs a runtime of its own.
//!
//! Bump [`ABI_VERSION`] on any change after the header: a field added, removed, reordered or
//! retyped, a function signature, an encoding in `wire.rs`, or a new method of `Context` or
//! `Provider` that the tables must carry.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::str::Utf8Error;

use async_ffi::FfiFuture;

/// The version of everything after [`DeclarationHeader`].
///
/// 2: `ContextVTable::save_records` carries `Context::save_encoded_records` too, and the host
/// hands the records' bytes to it instead of decoding them.
/// 3: `ContextVTable::save_records` carries where each record is in those bytes, so the host
/// does not parse them to find out.
pub const ABI_VERSION: u32 = 3;

/// The first bytes of every declaration, so a library that happens to export a symbol of the
/// same name is not mistaken for a plugin.
pub const MAGIC: [u8; 16] = *b"plugboard-plugin";

/// The name under which a plugin exports its [`PluginDeclaration`].
pub const DECLARATION_SYMBOL: &str = "PLUGBOARD_PLUGIN_DECLARATION";

// The futures' layout and waker protocol are async-ffi's: a release that changes them changes
// ours, so it must not slip in with a dependency update.
const _: () = assert!(
    async_ffi::ABI_VERSION == 2,
    "async-ffi changed its ABI: bump plugboard_plugin::ABI_VERSION and update this check"
);

/// Bytes borrowed from the caller for the duration of one call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RSlice<'a> {
    ptr: *const u8,
    len: usize,
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: an `RSlice` is a `&[u8]` in FFI clothing, and `&[u8]` is `Send` and `Sync`.
unsafe impl Send for RSlice<'_> {}
// SAFETY: as above.
unsafe impl Sync for RSlice<'_> {}

impl<'a> RSlice<'a> {
    pub const fn new(bytes: &'a [u8]) -> Self {
        RSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            _borrow: PhantomData,
        }
    }

    pub const fn text(text: &'a str) -> Self {
        Self::new(text.as_bytes())
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        // SAFETY: the fields are private and only `new` sets them, from a live `&'a [u8]`; the
        // other side of the boundary builds its slices with the same code (same ABI version and
        // compiler, which the loader checked).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn to_str(&self) -> Result<&'a str, Utf8Error> {
        std::str::from_utf8(self.as_bytes())
    }
}

/// Bytes handed over to the receiver, freed by the side that allocated them.
///
/// Each side has its own allocator (a plugin links its own std), so the buffer carries the
/// allocating side's `free`; dropping it calls that function.
#[repr(C)]
pub struct RBuffer {
    ptr: *mut u8,
    len: usize,
    capacity: usize,
    free: unsafe extern "C" fn(ptr: *mut u8, len: usize, capacity: usize),
}

// SAFETY: an `RBuffer` uniquely owns its bytes, like the `Vec<u8>` it was made from.
unsafe impl Send for RBuffer {}
// SAFETY: shared access only reads the bytes.
unsafe impl Sync for RBuffer {}

impl RBuffer {
    pub fn new(bytes: Vec<u8>) -> Self {
        let mut bytes = ManuallyDrop::new(bytes);
        RBuffer {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            capacity: bytes.capacity(),
            free: free_vec,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `new` took the parts from a `Vec<u8>` that stays allocated until `drop`; a
        // buffer from the other side was made by the same code.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for RBuffer {
    fn drop(&mut self) {
        // SAFETY: `free` belongs to the side that made this buffer and takes back exactly the
        // parts `new` took out of its `Vec`; `drop` runs once.
        unsafe { (self.free)(self.ptr, self.len, self.capacity) }
    }
}

/// # Safety
/// The parts must come from [`RBuffer::new`] in this same binary, and be freed only once.
unsafe extern "C" fn free_vec(ptr: *mut u8, len: usize, capacity: usize) {
    // SAFETY: the caller's contract: these are the parts of a `Vec<u8>` of this allocator.
    drop(unsafe { Vec::from_raw_parts(ptr, len, capacity) });
}

/// The part of the declaration whose layout never changes: what the loader reads to decide
/// whether it may read anything else.
#[repr(C)]
pub struct DeclarationHeader {
    /// Always [`MAGIC`].
    pub magic: [u8; 16],
    /// The [`ABI_VERSION`] the plugin was built with.
    pub abi_version: u32,
    /// The `plugboard-core` version the plugin was built against ([`crate::CORE_VERSION`]).
    pub core_version: RSlice<'static>,
    /// The compiler, target and panic strategy the plugin was built with ([`crate::COMPILER`]).
    pub compiler: RSlice<'static>,
    /// The provider's id, readable before the plugin is called, so that the host can refuse a
    /// second provider with the same id without running any of its code.
    pub provider_id: RSlice<'static>,
}

impl DeclarationHeader {
    /// The header of a plugin built with this crate.
    pub const fn current(provider_id: &'static str) -> Self {
        DeclarationHeader {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            core_version: RSlice::text(crate::CORE_VERSION),
            compiler: RSlice::text(crate::COMPILER),
            provider_id: RSlice::text(provider_id),
        }
    }
}

/// What a plugin exports under [`DECLARATION_SYMBOL`]; `export_provider!` writes it.
#[repr(C)]
pub struct PluginDeclaration {
    pub header: DeclarationHeader,
    /// Builds the provider. Called once per load, only after the header was accepted.
    pub init: unsafe extern "C" fn() -> InitResult,
}

impl PluginDeclaration {
    pub const fn current(
        provider_id: &'static str,
        init: unsafe extern "C" fn() -> InitResult,
    ) -> Self {
        PluginDeclaration {
            header: DeclarationHeader::current(provider_id),
            init,
        }
    }
}

/// The outcome of [`PluginDeclaration::init`].
#[repr(C)]
pub struct InitResult {
    /// The provider, owned by the host until it passes it to `vtable.drop`; null when the
    /// constructor failed.
    pub instance: *const c_void,
    pub vtable: &'static ProviderVTable,
    /// Why the constructor failed (UTF-8); empty on success.
    pub error: RBuffer,
}

/// The provider's functions. `instance` is always [`InitResult::instance`]; every result is
/// JSON of `Result<T, ProviderError>` with the `T` of the matching `Provider` method.
#[repr(C)]
pub struct ProviderVTable {
    /// `T` = `ProviderSpec`.
    pub spec: unsafe extern "C" fn(instance: *const c_void) -> RBuffer,
    /// `T` = `()`. The instance and the context must outlive the future.
    pub run_sync: unsafe extern "C" fn(
        instance: *const c_void,
        name: RSlice<'_>,
        ctx: HostContext,
    ) -> FfiFuture<RBuffer>,
    /// `input` is JSON; `T` = `serde_json::Value`. The instance and the context must outlive
    /// the future.
    pub run_action: unsafe extern "C" fn(
        instance: *const c_void,
        name: RSlice<'_>,
        input: RSlice<'_>,
        ctx: HostContext,
    ) -> FfiFuture<RBuffer>,
    /// Drops the instance; no future of it may be alive.
    pub drop: unsafe extern "C" fn(instance: *const c_void),
}

/// The host's `Context` for one run, as the plugin sees it: an opaque pointer and the host's
/// functions to call with it. Valid until the run's future completes or is dropped.
#[repr(C)]
pub struct HostContext {
    data: *const c_void,
    vtable: &'static ContextVTable,
}

// SAFETY: `data` points at a `&dyn Context`, and `Context: Send + Sync`.
unsafe impl Send for HostContext {}
// SAFETY: as above.
unsafe impl Sync for HostContext {}

impl HostContext {
    pub(crate) fn new(data: *const c_void, vtable: &'static ContextVTable) -> Self {
        HostContext { data, vtable }
    }

    pub(crate) fn data(&self) -> *const c_void {
        self.data
    }

    pub(crate) fn vtable(&self) -> &'static ContextVTable {
        self.vtable
    }
}

/// The host's `Context` functions, one per trait method. Results of the async ones are JSON of
/// `Result<T, ProviderError>` with the `T` of the method, except `http`'s ([`HttpOutput`]). The
/// futures borrow the context and must not outlive the run.
#[repr(C)]
pub struct ContextVTable {
    /// `request` is JSON of `HttpRequest`.
    pub http:
        unsafe extern "C" fn(ctx: *const c_void, request: RSlice<'_>) -> FfiFuture<HttpOutput>,
    /// `records` is JSON of `Vec<Record>` (`EncodedRecords`), for both `save_records` and
    /// `save_encoded_records`; `spans` says where each record is in it (`RecordSpan`s as
    /// `wire::encode_spans` writes them). The host passes both to its `save_encoded_records`
    /// as they are, so that it stores each record's data without decoding it or parsing the
    /// batch: the plugin's side wrote the JSON, or checked it when provider code wrote it.
    pub save_records: unsafe extern "C" fn(
        ctx: *const c_void,
        model: RSlice<'_>,
        records: RSlice<'_>,
        spans: RSlice<'_>,
    ) -> FfiFuture<RBuffer>,
    /// `ids` is JSON of `Vec<String>`.
    pub delete_records: unsafe extern "C" fn(
        ctx: *const c_void,
        model: RSlice<'_>,
        ids: RSlice<'_>,
    ) -> FfiFuture<RBuffer>,
    pub begin_crawl:
        unsafe extern "C" fn(ctx: *const c_void, model: RSlice<'_>) -> FfiFuture<RBuffer>,
    pub end_crawl:
        unsafe extern "C" fn(ctx: *const c_void, model: RSlice<'_>) -> FfiFuture<RBuffer>,
    pub checkpoint: unsafe extern "C" fn(ctx: *const c_void) -> FfiFuture<RBuffer>,
    /// `checkpoint` is JSON.
    pub set_checkpoint:
        unsafe extern "C" fn(ctx: *const c_void, checkpoint: RSlice<'_>) -> FfiFuture<RBuffer>,
    /// JSON of `Result<RunInfo, ProviderError>`.
    pub run_info: unsafe extern "C" fn(ctx: *const c_void) -> RBuffer,
    /// `level` as `wire::log_level_code` numbers it; `message` is UTF-8.
    pub log: unsafe extern "C" fn(ctx: *const c_void, level: u32, message: RSlice<'_>),
}

/// The outcome of `ContextVTable::http`: the head as JSON of `Result<{status, headers},
/// ProviderError>`, and the body as received (empty after an error). Responses are the bulk of a
/// sync's traffic, so the body is neither encoded (serde would write a `Vec<u8>` as an array of
/// numbers) nor copied on the host's side: the host hands over the buffer it read.
#[repr(C)]
pub struct HttpOutput {
    pub head: RBuffer,
    pub body: RBuffer,
}
