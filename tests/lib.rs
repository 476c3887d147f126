//! Integration tests live in `all/` (one test binary, as wasmtime does); this crate has no code.
