//! Run-time choice of instruction set for the SDK's hot loops.
//!
//! `dispatch!(vis name, generic, (args))` defines `name`, which calls `generic` (an
//! `#[inline(always)]` function) compiled for AVX-512 (F, VL, DQ), for AVX2 or for the baseline,
//! whichever the CPU has; on other targets (WebAssembly is compiled with SIMD as a whole) it is
//! `generic`. The loops are written without reassociation and without fused multiply-add, so
//! every version gives the same bits.

#[cfg(test)]
thread_local! {
    /// Tests set it to run the baseline versions whatever the CPU has.
    pub(crate) static FORCE_GENERIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

macro_rules! dispatch {
    ($vis:vis $name:ident, $generic:ident, ($($arg:ident: $ty:ty),*)) => {
        $vis fn $name($($arg: $ty),*) {
            #[cfg(test)]
            if $crate::dispatch::FORCE_GENERIC.with(|f| f.get()) {
                return $generic($($arg),*);
            }
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2")]
                unsafe fn avx512($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512dq")
                {
                    // SAFETY: the CPU has the features the function is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

/// The instruction set the dispatched kernels use on this CPU: `avx512` (F, VL, DQ), `avx2`
/// or `baseline` (every version gives the same bits; a manifest records it all the same).
pub fn instruction_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512dq")
        {
            return "avx512";
        }
        if std::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "baseline"
}
