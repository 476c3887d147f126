//! What a submission must be before it is run: a WebAssembly component within the size cap
//! that parses and validates, a name and an author by the rules, parameters that parse. The
//! same checks serve `leaderboard submit` and the server's `POST /api/submissions` (a refusal
//! there is a 400 with the reason).

use routereval_sdk::Params;

use crate::leaderboard::db::NewSubmission;

/// The longest name or author, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A refusal, with the reason for the submitter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// Checks a display name or author: 1 to 64 characters, no control or invisible formatting
/// characters, no leading or trailing space. Any other text (`<`, quotes, non-Latin scripts) is
/// allowed: pages escape it.
///
/// # Errors
/// The rule broken, naming `what`.
pub fn check_name(what: &str, name: &str) -> Result<(), Refusal> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(Refusal(format!(
            "the {what} must be 1 to {MAX_NAME_CHARS} characters, got {n}"
        )));
    }
    if name.trim() != name {
        return Err(Refusal(format!(
            "the {what} must not start or end with white space"
        )));
    }
    // Controls, and the bidirectional and zero-width formatting characters that make text
    // display as something else.
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    if let Some(c) = name.chars().find(|&c| bad(c)) {
        return Err(Refusal(format!(
            "the {what} contains the control or formatting character U+{:04X}; use printable \
             text",
            c as u32
        )));
    }
    Ok(())
}

/// Parses `key=value` items into the canonical sorted spec stored with the entry, checking they
/// parse as the engine will pass them. `seed` is refused: the leaderboard fixes it.
///
/// # Errors
/// An item that does not parse, a repeated key, or `seed`.
pub fn canonical_params(items: &[String], seed: u64) -> Result<String, Refusal> {
    let spec = items.join(",");
    let params = Params::parse(&spec, seed).map_err(|e| Refusal(format!("parameters: {e}")))?;
    if params.seed() != seed || items.iter().any(|i| i.trim_start().starts_with("seed=")) {
        return Err(Refusal(
            "parameters: `seed` is fixed by the leaderboard's configuration".into(),
        ));
    }
    let mut kv: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    kv.sort();
    let canonical = kv.join(",");
    if canonical.len() > 4096 {
        return Err(Refusal("parameters: at most 4096 bytes".into()));
    }
    Ok(canonical)
}

/// Checks `bytes` is a WebAssembly component that validates, within `max_bytes`; says what it
/// is instead (a native library, a core module, a command).
///
/// # Errors
/// The reason it is refused.
pub fn check_component(bytes: &[u8], max_bytes: usize) -> Result<(), Refusal> {
    if bytes.len() > max_bytes {
        return Err(Refusal(format!(
            "the component is {} bytes, over this leaderboard's cap of {max_bytes} bytes",
            bytes.len()
        )));
    }
    let head = &bytes[..bytes.len().min(8)];
    if crate::plugin::native::is_native_library(head) {
        return Err(Refusal(
            "this is a native library; a leaderboard runs only WebAssembly components, which the \
             sandbox can contain: build the router for wasm32-wasip2 (`cargo build --release \
             --target wasm32-wasip2`) or with `routereval-sdk build` for Python"
                .into(),
        ));
    }
    if head.starts_with(b"exec:") || head.starts_with(b"#!") {
        return Err(Refusal(
            "this is a command or script; a leaderboard runs only WebAssembly components (an \
             `exec:` router runs outside any sandbox)"
                .into(),
        ));
    }
    if !head.starts_with(b"\0asm") {
        return Err(Refusal(
            "this is not WebAssembly (it does not start with `\\0asm`); submit the `.wasm` \
             component a router crate builds for wasm32-wasip2"
                .into(),
        ));
    }
    // A core module or an unknown layer: the loader's own check and message.
    crate::plugin::wasm::check_header(std::path::Path::new("the submission"), bytes)
        .map_err(|e| Refusal(format!("{e:#}")))?;
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    validator
        .validate_all(bytes)
        .map_err(|e| Refusal(format!("the component is malformed: {e}")))?;
    Ok(())
}

/// Everything a submission is checked for; the record to store.
///
/// # Errors
/// The first rule it breaks.
#[allow(clippy::too_many_arguments, reason = "the fields of a submission")]
pub fn admit(
    name: &str,
    author: Option<&str>,
    params: &[String],
    seed: u64,
    component: Vec<u8>,
    max_bytes: usize,
    via: &'static str,
    token: Option<i64>,
) -> Result<NewSubmission, Refusal> {
    check_name("name", name)?;
    if let Some(a) = author {
        check_name("author", a)?;
    }
    let params = canonical_params(params, seed)?;
    check_component(&component, max_bytes)?;
    Ok(NewSubmission {
        name: name.to_string(),
        author: author.map(str::to_string),
        params,
        sha256: crate::util::sha256_hex(&component),
        component,
        via,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert!(check_name("name", "knn (k=5)").is_ok());
        assert!(check_name("name", "<script>alert(1)</script>").is_ok());
        assert!(check_name("name", "路由器").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", " x").is_err());
        assert!(check_name("name", "a\u{1b}[2Jb").is_err());
        assert!(check_name("name", "abc\u{202e}def").is_err());
        assert!(check_name("name", &"x".repeat(65)).is_err());
    }

    #[test]
    fn params_are_canonical_and_seed_is_refused() {
        assert_eq!(
            canonical_params(&["k=5".into(), "a=x".into()], 0).unwrap(),
            "a=x,k=5"
        );
        assert_eq!(canonical_params(&[], 0).unwrap(), "");
        assert!(canonical_params(&["seed=3".into()], 0).is_err());
        assert!(canonical_params(&["k".into()], 0).is_err());
    }

    #[test]
    fn components_only() {
        let max = 1 << 20;
        let says = |b: &[u8], what: &str| {
            let e = check_component(b, max).unwrap_err().0;
            assert!(e.contains(what), "{e}");
        };
        says(b"\x7fELF\x02\x01\x01\x00rest", "native library");
        says(b"exec:python3 x.py", "command");
        says(b"\0asm\x01\0\0\0", "core WebAssembly module");
        says(b"hello world", "not WebAssembly");
        says(b"\0asm\x0d\0\x01\0\xff\xff", "malformed");
        says(&vec![0u8; max + 1], "over this leaderboard's cap");
    }
}
