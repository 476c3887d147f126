//! Hostile input for the pickle reader: handcrafted files for each class of attack that once got
//! through (zero-width strings, size overflows, memo DAGs, shared containers, repeated keys),
//! and a seeded mutation fuzzer over real pickles (byte flips at opcodes and their arguments,
//! truncation at opcode boundaries, inflated length fields). Every input must decode or be
//! refused with a [`PickleError`]: no panic, no hang, and heap memory within the decode bound
//! plus a constant times the file's length.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::util::test_alloc::peak_during;

/// A small pickle writer for the handcrafted cases (protocol 4 opcodes).
#[derive(Default)]
struct P(Vec<u8>);

impl P {
    fn new() -> P {
        P(vec![0x80, 4])
    }
    fn op(mut self, bytes: &[u8]) -> P {
        self.0.extend_from_slice(bytes);
        self
    }
    fn str(mut self, s: &str) -> P {
        self.0.push(0x8c);
        self.0.push(u8::try_from(s.len()).expect("short string"));
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(mut self, i: u32) -> P {
        self.0.push(b'J');
        self.0.extend_from_slice(&i.to_le_bytes());
        self
    }
    fn long(mut self, v: u64) -> P {
        self.0.extend_from_slice(&[0x8a, 8]);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> P {
        self.0.push(b'B');
        self.0
            .extend_from_slice(&u32::try_from(b.len()).expect("small").to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn global(self, module: &str, name: &str) -> P {
        self.op(b"c")
            .op(module.as_bytes())
            .op(b"\n")
            .op(name.as_bytes())
            .op(b"\n")
    }
    /// `numpy.dtype(spec)` on the stack.
    fn dtype(self, spec: &str) -> P {
        self.global("numpy", "dtype")
            .str(spec)
            .op(&[0x88, 0x88, 0x87, b'R'])
    }
    /// `_reconstruct(ndarray, (0,), b'b')`, then the start of its state `(1, shape, ...`.
    fn array_head(self, shape: &[u64]) -> P {
        let mut p = self
            .global("numpy.core.multiarray", "_reconstruct")
            .global("numpy", "ndarray")
            .int(0)
            .op(&[0x85])
            .op(b"C\x01b")
            .op(&[0x87, b'R', b'('])
            .int(1)
            .op(b"(");
        for &d in shape {
            p = p.long(d);
        }
        p.op(b"t")
    }
    /// The end of an array's state, after its dtype: `..., False, data)`, then BUILD.
    fn array_tail(self, data: &[u8]) -> P {
        self.op(&[0x89]).bytes(data).op(b"tb")
    }
    /// An array with the state `(1, shape, dtype, False, data)`.
    fn array(self, shape: &[u64], dtype: &str, data: &[u8]) -> P {
        self.array_head(shape).dtype(dtype).array_tail(data)
    }
    fn end(self) -> Vec<u8> {
        self.op(b".").0
    }
}

fn refused(bytes: &[u8], kind: PickleErrorKind, needle: &str) -> PickleError {
    let (e, peak) = peak_during(|| read(bytes));
    let e = e.expect_err("the pickle must be refused");
    assert_eq!(e.kind, kind, "{e}");
    assert!(e.message.contains(needle), "{e}");
    assert!(peak < 300 << 20, "{peak} bytes to refuse {e}");
    e
}

#[test]
fn zero_width_strings_are_refused_before_any_allocation() {
    // 10^12 strings of 0 bytes from an empty buffer: `count x size == len` holds.
    let p = P::new().array(&[1_000_000_000_000], "<U0", b"").end();
    refused(&p, PickleErrorKind::Malformed, "0-byte items");
    // A bare `<U` is the same dtype.
    let p = P::new().array(&[1_000_000_000_000], "<U", b"").end();
    refused(&p, PickleErrorKind::Malformed, "0-byte items");
    // The item size set by BUILD on the dtype (numpy 1's (3, '<', None, ..., elsize, ...)).
    let p = P::new()
        .array_head(&[1 << 40])
        .dtype("U4")
        .op(b"(")
        .int(3)
        .str("<")
        .op(b"NNN")
        .int(0)
        .int(4)
        .int(8)
        .op(b"tb")
        .array_tail(b"")
        .end();
    refused(&p, PickleErrorKind::Malformed, "0-byte items");
    // numpy 2's `_frombuffer(b'', dtype('<U0'), shape, 'C')`.
    let p = P::new()
        .global("numpy._core.numeric", "_frombuffer")
        .op(b"(")
        .bytes(b"")
        .dtype("<U0")
        .op(b"(")
        .long(1_000_000_000_000)
        .op(b"t")
        .str("C")
        .op(b"tR")
        .end();
    refused(&p, PickleErrorKind::Malformed, "0-byte items");
    // An empty array of 0-byte items is harmless and decodes.
    let v = read(&P::new().array(&[0], "<U0", b"").end()).unwrap();
    assert!(matches!(v, Value::Array(NdArray { ref shape, .. }) if shape == &[0]));
}

#[test]
fn dtype_sizes_that_overflow_are_refused() {
    // 4611686018427387904 x 4 wraps to 0 in 64 bits; one more wrapped to 4 (`<U1`).
    for spec in ["<U4611686018427387904", "<U4611686018427387905"] {
        let p = P::new().array(&[3], spec, b"").end();
        refused(&p, PickleErrorKind::Unsupported, spec);
    }
    // A str item size that is not whole characters.
    let e = read(
        &P::new()
            .dtype("U1")
            .op(b"(")
            .int(3)
            .str("<")
            .op(b"NNN")
            .int(6)
            .int(4)
            .int(8)
            .op(b"tb.")
            .0,
    )
    .unwrap_err();
    assert!(e.message.contains("whole number"), "{e}");
}

#[test]
fn memo_dags_are_refused_at_the_decode_bound_quickly() {
    // Each level a tuple of the previous level twice (BINPUT under its own key, BINGET the
    // last level's twice): 2^40 leaves from under 300 bytes.
    let mut q = P::new().op(&[b']', b'q', 0]);
    for level in 0..40u8 {
        q = q.op(&[b'h', level, b'h', level, 0x86, b'q', level + 1]);
    }
    let p = q.end();
    assert!(p.len() < 300, "{} bytes", p.len());
    let started = Instant::now();
    refused(&p, PickleErrorKind::TooLarge, "memo references");
    assert!(started.elapsed() < Duration::from_secs(20));
    // A bound given explicitly is the one enforced, and named.
    let e = read_with_budget(&p, 1 << 20).unwrap_err();
    assert_eq!(e.kind, PickleErrorKind::TooLarge);
    assert!(e.message.contains("more than 1 MiB"), "{e}");
}

#[test]
fn a_shared_container_decodes_as_python_shares_it() {
    // {'a': {'x': array([1.5, 2.5])}, 'b': <the same dict>}: what Python's pickler writes when
    // two pool groups hold one dict.
    let data: Vec<u8> = [1.5f64, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = P::new()
        .op(b"}(")
        .str("a")
        .op(b"}")
        .op(b"r")
        .op(&7u32.to_le_bytes())
        .str("x")
        .array(&[2], "<f8", &data)
        .op(b"s")
        .str("b")
        .op(b"j")
        .op(&7u32.to_le_bytes())
        .op(b"u")
        .end();
    let v = read(&p).unwrap();
    let a = v.get("a").expect("a");
    assert_eq!(Some(a), v.get("b"));
    assert_eq!(
        a.get("x"),
        Some(&Value::Array(NdArray {
            shape: vec![2],
            data: ArrayData::F64(vec![1.5, 2.5]),
        }))
    );
}

#[test]
fn repeated_keys_keep_the_first_position_and_the_last_value_as_python_does() {
    // {'k': 0.0, 'z': 1, 'k': 1.0} and {1: 'int', 1.0: 'float', True: 'bool', 2: 'two'}
    let p = P::new()
        .op(b"}(")
        .str("k")
        .op(b"G")
        .op(&0.0f64.to_be_bytes())
        .str("z")
        .int(1)
        .str("k")
        .op(b"G")
        .op(&1.0f64.to_be_bytes())
        .op(b"u")
        .end();
    let v = read(&p).unwrap();
    assert_eq!(
        v,
        Value::Dict(vec![
            (Value::Str("k".into()), Value::Float(1.0)),
            (Value::Str("z".into()), Value::Int(1)),
        ])
    );
    let p = P::new()
        .op(b"}(")
        .int(1)
        .str("int")
        .op(b"G")
        .op(&1.0f64.to_be_bytes())
        .str("float")
        .op(&[0x88])
        .str("bool")
        .int(2)
        .str("two")
        .op(b"u")
        .end();
    let v = read(&p).unwrap();
    assert_eq!(
        v,
        Value::Dict(vec![
            (Value::Int(1), Value::Str("bool".into())),
            (Value::Int(2), Value::Str("two".into())),
        ])
    );
    // A list as a key: Python cannot hash it.
    let p = P::new().op(b"}]").int(1).op(b"s").end();
    refused(&p, PickleErrorKind::Malformed, "cannot hash");
}

/// The files the fuzzer mutates: the embedded LLMRouter pickle (numpy 2, protocol 4) and the
/// shared pickle fixtures (numpy 1 protocols 2 and 4, numpy 2 protocol 5, a file of another
/// layout, a truncated one, a malicious one).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("data/llmrouter/llmrouter_router_dataset.pkl")];
    let shared = root.join("../../shared/data/fixtures");
    let mut more: Vec<PathBuf> = std::fs::read_dir(&shared)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared data folder)", shared.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pkl"))
        .collect();
    more.sort();
    assert!(
        more.len() >= 6,
        "expected the 6 pickle fixtures, found {more:?}"
    );
    files.extend(more);
    files
        .into_iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&f).unwrap())
        })
        .collect()
}

/// Whether the opcode at `at` is followed by a little-endian length of this many bytes.
fn length_field(op: u8) -> Option<usize> {
    match op {
        b'X' | b'B' | 0x8b => Some(4),
        0x8d | 0x8e | 0x96 | 0x95 => Some(8),
        0x8c | b'C' | 0x8a => Some(1),
        _ => None,
    }
}

/// One fuzz case: decodes (and, when it decodes, reads as a dataset) and checks the outcome.
fn check(label: &str, bytes: &[u8], budget: usize, slowest: &mut Duration) {
    let started = Instant::now();
    let (outcome, peak) = peak_during(|| {
        catch_unwind(AssertUnwindSafe(|| {
            read_with_budget(bytes, budget).map(|v| {
                // The dataset layer must refuse what it cannot use, not panic on it.
                let _ = crate::data::load::from_value(v, "fuzz", label);
            })
        }))
    });
    let took = started.elapsed();
    *slowest = (*slowest).max(took);
    assert!(outcome.is_ok(), "{label}: the reader panicked");
    let bound = budget + 64 * bytes.len() + (16 << 20);
    assert!(
        peak <= bound,
        "{label}: {peak} bytes of heap, over {bound} (the decode bound {budget} + 64 x {})",
        bytes.len()
    );
    assert!(took < Duration::from_secs(10), "{label}: {took:?}");
}

#[test]
fn mutated_pickles_decode_or_are_refused_within_bounds() {
    // A tighter bound than the default, so the memory check means something on small files.
    const BUDGET: usize = 64 << 20;
    let mut rng = routereval_sdk::Rng::new(0x0f0e_2024);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut cases = 0usize;
    for (name, bytes) in corpus() {
        let ops = opcode_offsets(&bytes);
        assert!(!ops.is_empty(), "{name}");
        let small = bytes.len() <= 1 << 16;
        let pick = |rng: &mut routereval_sdk::Rng| ops[rng.next_u64() as usize % ops.len()];
        // Truncation at every opcode boundary of small files, at a sample of large ones.
        let cuts: Vec<usize> = if small {
            ops.clone()
        } else {
            (0..40).map(|_| pick(&mut rng)).collect()
        };
        for cut in cuts {
            check(
                &format!("{name} cut at {cut}"),
                &bytes[..cut],
                BUDGET,
                &mut slowest,
            );
            cases += 1;
        }
        // Byte flips at an opcode or within its first arguments, 1 to 4 at a time.
        let flips = if small { 400 } else { 60 };
        for _ in 0..flips {
            let mut m = bytes.clone();
            let n = 1 + rng.next_u64() as usize % 4;
            let mut at = Vec::new();
            for _ in 0..n {
                let i = (pick(&mut rng) + rng.next_u64() as usize % 10).min(m.len() - 1);
                m[i] = rng.next_u64() as u8;
                at.push(i);
            }
            check(
                &format!("{name} flipped at {at:?}"),
                &m,
                BUDGET,
                &mut slowest,
            );
            cases += 1;
        }
        // Inflated length fields: every length-prefixed opcode of small files, a sample of
        // large ones, each set to values past the end and past every bound.
        let mut sites: Vec<(usize, usize)> = ops
            .iter()
            .filter_map(|&o| length_field(bytes[o]).map(|w| (o + 1, w)))
            .filter(|&(o, w)| o + w <= bytes.len())
            .collect();
        if !small {
            sites = (0..30)
                .filter_map(|_| sites.get(rng.next_u64() as usize % sites.len().max(1)))
                .copied()
                .collect();
        }
        for (o, w) in sites {
            for v in [u64::MAX, u64::MAX / 2, 1 << 40, bytes.len() as u64] {
                let mut m = bytes.clone();
                let le = v.to_le_bytes();
                m[o..o + w].copy_from_slice(&le[..w]);
                check(
                    &format!("{name} length {v} at {o}"),
                    &m,
                    BUDGET,
                    &mut slowest,
                );
                cases += 1;
            }
        }
    }
    println!(
        "pickle fuzz: {cases} cases in {:.1} s (slowest {:.2} s)",
        started.elapsed().as_secs_f64(),
        slowest.as_secs_f64()
    );
    assert!(cases > 2000, "{cases} cases");
}
