//! The store of one evaluation: its WASI context (everything denied, clocks frozen, timers due
//! at once), the memory limiter over all the plugin's memories and the host's allocations for
//! it, and the capped log.

use super::tensors::TensorTable;
use super::*;
use crate::util::clip;

/// The store's data: WASI state, limits, the log and the panic message.
pub(super) struct State {
    pub(super) host_kernels: bool,
    /// The fuel this instance was given (0: no limit), for messages.
    pub(super) fuel_budget: u64,
    /// Its deadline in seconds, for messages.
    pub(super) timeout_secs: f64,
    /// When its deadline passes (host code checks it; the epoch stops WebAssembly code).
    pub(super) deadline: std::time::Instant,
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) log: Arc<Mutex<LogBuf>>,
    pub(super) panic: Option<String>,
    /// The tensors the host holds for the plugin (`routereval:router/tensors`).
    pub(super) tensors: TensorTable,
}

impl State {
    pub(super) fn new(policy: &SandboxPolicy, seed: u64) -> State {
        let log = Arc::new(Mutex::new(LogBuf {
            text: String::new(),
            cap: policy.max_log_bytes(),
            dropped: 0,
        }));
        // Random bytes, for the guest's hash-map seeds and the like: a fixed function of the
        // run's seed, so a rerun sees the same bytes.
        let mut rng = routereval_sdk::Rng::new(seed ^ 0x005e_ed0f_5a4d_b0c5);
        let bytes: Vec<u8> = (0..4096)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect();
        let wasi = WasiCtxBuilder::new()
            .stdout(CappedLog(log.clone()))
            .stderr(CappedLog(log.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(wasmtime_wasi::Deterministic::new(bytes.clone()))
            .insecure_random(wasmtime_wasi::Deterministic::new(bytes))
            .insecure_random_seed(u128::from(seed))
            .build();
        State {
            host_kernels: policy.host_kernels,
            fuel_budget: policy.fuel,
            timeout_secs: policy.timeout_secs,
            deadline: deadline_after(policy.timeout_secs),
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                cap: policy.memory_bytes(),
                linear: 0,
                held: 0,
                refused: None,
            },
            log,
            panic: None,
            tensors: TensorTable::default(),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `secs` from now; a deadline too far to represent is a century away.
pub(super) fn deadline_after(secs: f64) -> std::time::Instant {
    let now = std::time::Instant::now();
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| now.checked_add(d))
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// What the memory cap refused, for the message.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Linear memory growing to this many bytes (all the plugin's memories together), with
    /// this many bytes of host-held tensors.
    Linear(usize, u64),
    /// A host kernel asking for `host` bytes of host memory with `linear` bytes in use.
    Host {
        kernel: String,
        host: u64,
        linear: u64,
    },
}

/// The memory cap, for all the plugin's linear memories together and what the host allocates
/// for it (see [`admit`]). The limit is not a wasmtime `Trap`: the limiter records that it
/// refused, so the failure is reported as `out_of_memory` however the guest reacts.
pub(super) struct Limiter {
    pub(super) cap: usize,
    /// The bytes of linear memory the plugin has, over all its memories.
    pub(super) linear: usize,
    /// The bytes of the tensors the host holds for it.
    pub(super) held: u64,
    pub(super) refused: Option<Refusal>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.linear.saturating_sub(current).saturating_add(desired);
        if (total as u64).saturating_add(self.held) > self.cap as u64 {
            self.refused = Some(Refusal::Linear(total, self.held));
            return Err(wasmtime::format_err!(
                "linear memory of {total} bytes is over the sandbox's cap of {} bytes",
                self.cap
            ));
        }
        self.linear = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The WASI interface whose timers [`freeze_timers`] replaces: the version `wasmtime-wasi`
/// defines (a guest's import of any 0.2.x version resolves to it).
pub(super) const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Timers on the frozen clock: `subscribe-duration` and `subscribe-instant` give a pollable that
/// is ready at once, so a guest's sleep returns immediately instead of holding the worker in
/// real time (WASI's own timers sleep in host code, which neither the epoch nor the deadline can
/// interrupt). The clock does not move, so a router that waits for time to pass waits in
/// WebAssembly, where fuel and the deadline stop it.
pub(super) fn freeze_timers(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    fn ready(
        mut cx: StoreContextMut<'_, State>,
    ) -> wasmtime::Result<(Resource<wasmtime_wasi::p2::DynPollable>,)> {
        let table = &mut cx.data_mut().table;
        let timer = table.push(ReadyTimer)?;
        Ok((wasmtime_wasi::p2::subscribe(table, timer)?,))
    }
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |cx, (_,): (u64,)| ready(cx))?;
    clock.func_wrap("subscribe-instant", |cx, (_,): (u64,)| ready(cx))?;
    Ok(())
}

/// A timer of the frozen clock: always due.
pub(super) struct ReadyTimer;

#[wasmtime_wasi::async_trait]
impl Pollable for ReadyTimer {
    async fn ready(&mut self) {}
}

/// Clocks that never move: a router cannot time anything, so its results cannot depend on
/// the machine's speed.
pub(super) struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The evaluation's log, capped: what does not fit is counted, not kept.
#[derive(Debug)]
pub(super) struct LogBuf {
    pub(super) text: String,
    pub(super) cap: usize,
    pub(super) dropped: usize,
}

impl LogBuf {
    pub(super) fn push(&mut self, s: &str) {
        let room = self.cap.saturating_sub(self.text.len());
        let kept = clip(s, room);
        self.text.push_str(kept);
        self.dropped += s.len() - kept.len();
    }

    pub(super) fn push_bytes(&mut self, b: &[u8]) {
        self.push(&String::from_utf8_lossy(b));
    }
}

/// Standard output and error of the guest: into the capped log. Writes never fail (a chatty
/// router is not a broken one); past the cap they are dropped.
#[derive(Clone)]
pub(super) struct CappedLog(Arc<Mutex<LogBuf>>);

impl CappedLog {
    pub(super) fn append(&self, b: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_bytes(b);
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedLog {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedLog {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 16)
    }
}

impl tokio::io::AsyncWrite for CappedLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
