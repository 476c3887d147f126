//! How a wasmtime error becomes the evaluation's typed failure: the limiter's refusal, fuel, the
//! deadline, the stacks (wasmtime's and a guest's shadow stack), a panic the SDK's hook reported,
//! `exit`, or any other trap (with its backtrace squeezed).

use super::*;
use crate::util::clip;

/// Rust and C guests keep a "shadow" stack in linear memory, placed first and growing down from
/// 1 MiB; overflowing it wraps the address below zero, so the access lands just under 4 GiB
/// (plus the access's offset), far above any memory a 32-bit guest can have.
pub(super) const SHADOW_STACK_WRAP: u64 = 0xFFF0_0000;

/// The faulting address of an out-of-bounds access, from wasmtime's message (wasmtime does not
/// expose it as a value).
pub(super) fn fault_address(text: &str) -> Option<u64> {
    const AT: &str = "memory fault at wasm address 0x";
    let rest = &text[text.find(AT)? + AT.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    u64::from_str_radix(&rest[..end], 16).ok()
}

/// Collapses runs of identical backtrace frames (deep recursion) into one line and a count.
pub(super) fn squeeze_backtrace(text: &str) -> String {
    let frame = |line: &str| -> Option<String> {
        let (index, rest) = line.trim_start().split_once(':')?;
        index.parse::<u32>().ok()?;
        Some(rest.trim().to_string())
    };
    let mut out = String::new();
    let mut last: Option<String> = None;
    let mut repeats = 0usize;
    for line in text.lines() {
        let f = frame(line);
        if f.is_some() && f == last {
            repeats += 1;
            continue;
        }
        if repeats > 0 {
            out.push_str(&format!("      ... the frame above {repeats} more times\n"));
            repeats = 0;
        }
        out.push_str(line);
        out.push('\n');
        last = f;
    }
    if repeats > 0 {
        out.push_str(&format!("      ... the frame above {repeats} more times\n"));
    }
    out.trim_end().to_string()
}

/// A trap's message with its cause first (a host function's error, or the trap's own
/// description) and the squeezed backtrace after: wasmtime puts the backtrace first, so a
/// clipped message would lose the reason.
pub(super) fn cause_first(e: &wasmtime::Error) -> String {
    let cause = e.root_cause().to_string();
    let all = squeeze_backtrace(&format!("{e:#}"));
    let backtrace = all
        .strip_suffix(&cause)
        .map(|b| b.trim_end().trim_end_matches(':').trim_end())
        .unwrap_or(&all);
    if backtrace.is_empty() || backtrace == cause {
        cause
    } else {
        format!("{cause}\n{backtrace}")
    }
}

/// The SDK's [`RouterError`](routereval_sdk::RouterError) a plugin's `router-error` stands for.
pub(super) fn router_error_from_wit(e: wit::RouterError) -> routereval_sdk::RouterError {
    use routereval_sdk::RouterError as E;
    match e.kind {
        wit::ErrorKind::InvalidParams => E::InvalidParams(e.message),
        wit::ErrorKind::InvalidInput => E::InvalidInput(e.message),
        wit::ErrorKind::Fit => E::Fit(e.message),
        wit::ErrorKind::Route => E::Route(e.message),
        wit::ErrorKind::Panic => E::Panic(e.message),
        wit::ErrorKind::Other => E::Other(e.message),
    }
}

/// Turns a wasmtime error from `stage` into the evaluation's typed failure.
pub(super) fn classify(
    host: &WasmHost,
    state: &State,
    stage: &str,
    e: &wasmtime::Error,
) -> Failure {
    let policy = &host.policy;
    let (kind, message) = if let Some(refusal) = &state.limiter.refused {
        let asked = match refusal {
            Refusal::Linear(bytes, 0) => {
                format!("asked for {} MiB of linear memory", bytes.div_ceil(1 << 20))
            }
            Refusal::Linear(bytes, held) => format!(
                "asked for {} MiB of linear memory on top of {} MiB of host-held tensors",
                bytes.div_ceil(1 << 20),
                held.div_ceil(1 << 20)
            ),
            Refusal::Host {
                kernel,
                host,
                linear,
            } => format!(
                "asked the host's `{kernel}` for {} MiB (its copies of the inputs, the result \
                 and working memory) on top of {} MiB of linear memory",
                host.div_ceil(1 << 20),
                linear.div_ceil(1 << 20)
            ),
        };
        (
            FailureKind::OutOfMemory,
            format!(
                "`{stage}` {asked}, over the sandbox's cap of {} MiB (raise it with \
                 --memory-limit)",
                policy.memory_mib
            ),
        )
    } else {
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => (
                FailureKind::OutOfFuel,
                format!(
                    "`{stage}` used up the fuel budget of {} ({})",
                    state.fuel_budget,
                    if stage == INFO_STAGE {
                        "the fixed budget a plugin has to say its name, whatever --fuel says"
                    } else {
                        "raise it with --fuel"
                    }
                ),
            ),
            Some(Trap::Interrupt) => (
                FailureKind::Timeout,
                format!(
                    "`{stage}` was stopped at the {} s deadline ({})",
                    state.timeout_secs,
                    if stage == INFO_STAGE {
                        "the fixed deadline a plugin has to say its name, whatever --timeout says"
                    } else {
                        "raise it with --timeout"
                    }
                ),
            ),
            Some(Trap::StackOverflow) => (
                FailureKind::StackOverflow,
                format!(
                    "`{stage}` overflowed the sandbox's {} KiB stack (raise it with --stack-limit)",
                    policy.stack_kib
                ),
            ),
            _ if format!("{e:#}").contains("fuel allocated for hostcalls") => (
                FailureKind::OutOfMemory,
                format!(
                    "`{stage}` passed the host more data in one call than the sandbox's memory cap \
                     of {} MiB",
                    policy.memory_mib
                ),
            ),
            Some(Trap::MemoryOutOfBounds)
                if fault_address(&format!("{e:#}")).is_some_and(|a| a >= SHADOW_STACK_WRAP) =>
            {
                (
                    FailureKind::StackOverflow,
                    format!(
                        "`{stage}` overflowed its shadow stack (the stack a Rust or C guest keeps \
                         in linear memory, 1 MiB by default: build with \
                         `-C link-arg=-zstack-size=<bytes>` for more)"
                    ),
                )
            }
            _ => match (&state.panic, e.downcast_ref::<wasmtime_wasi::I32Exit>()) {
                (Some(p), _) => (
                    FailureKind::Panic,
                    format!("`{stage}` panicked: {}", clip(p, 4096)),
                ),
                (None, Some(code)) => (
                    FailureKind::Trap,
                    format!(
                        "`{stage}` called exit({}): a router must return, not exit",
                        code.0
                    ),
                ),
                (None, None) => (
                    FailureKind::Trap,
                    format!("`{stage}` trapped: {}", clip(&cause_first(e), 4096)),
                ),
            },
        }
    };
    unusable(kind, message)
}
