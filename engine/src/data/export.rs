//! Writing router datasets in RouterEval's official pickle layout (`--to routereval-pkl`), so
//! Python users can take the engine's datasets into their own tools.
//!
//! The file is a protocol-4 pickle whose arrays are encoded as numpy 1 encodes them
//! (`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype` and the array's state
//! tuple): numpy 1 reads it natively and numpy 2 through its `numpy.core` compatibility alias
//! (a file naming `numpy._core` would not load under numpy 1). Scores are `float64`, embeddings
//! `float32`, model names `<U` arrays, prompts object arrays of `str`, split indices `int64`,
//! as in the official files. Hand-written: serde-pickle has no notion of numpy arrays, and the
//! encoding is a few opcodes.

use std::path::Path;

use anyhow::Result;

use crate::data::{Difficulty, Matrix, RouterDataset};

/// A Python value to encode.
enum Py<'a> {
    Str(&'a str),
    Int(i64),
    Dict(Vec<(Py<'a>, Py<'a>)>),
    F64(Vec<usize>, Vec<f64>),
    F32(Vec<usize>, &'a [f32]),
    I64(&'a [i64]),
    Unicode(&'a [String]),
    Objects(&'a [String]),
}

struct Enc {
    out: Vec<u8>,
}

impl Enc {
    fn op(&mut self, b: u8) {
        self.out.push(b);
    }

    fn str(&mut self, s: &str) {
        if s.len() < 256 {
            self.op(0x8c); // SHORT_BINUNICODE
            self.out.push(s.len() as u8);
        } else {
            self.op(b'X'); // BINUNICODE
            self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, i: i64) {
        if (0..256).contains(&i) {
            self.op(b'K');
            self.out.push(i as u8);
        } else if let Ok(v) = i32::try_from(i) {
            self.op(b'J');
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.op(0x8a); // LONG1
            self.out.push(8);
            self.out.extend_from_slice(&i.to_le_bytes());
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        if b.len() < 256 {
            self.op(b'C'); // SHORT_BINBYTES
            self.out.push(b.len() as u8);
        } else if let Ok(n) = u32::try_from(b.len()) {
            self.op(b'B'); // BINBYTES
            self.out.extend_from_slice(&n.to_le_bytes());
        } else {
            self.op(0x8e); // BINBYTES8
            self.out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        }
        self.out.extend_from_slice(b);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.op(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.op(b'\n');
    }

    /// `numpy.dtype(code, False, True)` with its state.
    fn dtype(&mut self, code: &str, order: &str, elsize: i64, align: i64, flags: i64) {
        self.global("numpy", "dtype");
        self.str(code);
        self.op(0x89); // NEWFALSE
        self.op(0x88); // NEWTRUE
        self.op(0x87); // TUPLE3
        self.op(b'R');
        self.op(b'(');
        self.int(3);
        self.str(order);
        self.op(b'N');
        self.op(b'N');
        self.op(b'N');
        self.int(elsize);
        self.int(align);
        self.int(flags);
        self.op(b't');
        self.op(b'b');
    }

    /// An ndarray: `_reconstruct(ndarray, (0,), b'b')` then its state
    /// `(1, shape, dtype, False, data)`; `data` writes the dtype and the raw data (or list).
    fn array(&mut self, shape: &[usize], data: impl FnOnce(&mut Enc)) {
        self.global("numpy.core.multiarray", "_reconstruct");
        self.global("numpy", "ndarray");
        self.int(0);
        self.op(0x85); // TUPLE1
        self.bytes(b"b");
        self.op(0x87);
        self.op(b'R');
        self.op(b'(');
        self.int(1);
        self.op(b'(');
        for &d in shape {
            self.int(d as i64);
        }
        self.op(b't');
        data(self);
        self.op(b't');
        self.op(b'b');
    }

    /// A little-endian numeric array of dtype `code` (`f8`, `f4`, `i8`).
    fn numeric(&mut self, shape: &[usize], code: &str, raw: impl Iterator<Item = u8>) {
        let raw: Vec<u8> = raw.collect();
        self.array(shape, |e| {
            e.dtype(code, "<", -1, -1, 0);
            e.op(0x89); // NEWFALSE: C order
            e.bytes(&raw);
        });
    }

    fn value(&mut self, v: &Py<'_>) {
        match v {
            Py::Str(s) => self.str(s),
            Py::Int(i) => self.int(*i),
            Py::Dict(items) => {
                self.op(b'}');
                for chunk in items.chunks(1000) {
                    self.op(b'(');
                    for (k, v) in chunk {
                        self.value(k);
                        self.value(v);
                    }
                    self.op(b'u');
                }
            }
            Py::F64(shape, data) => {
                self.numeric(shape, "f8", data.iter().flat_map(|v| v.to_le_bytes()))
            }
            Py::F32(shape, data) => {
                self.numeric(shape, "f4", data.iter().flat_map(|v| v.to_le_bytes()))
            }
            Py::I64(data) => self.numeric(
                &[data.len()],
                "i8",
                data.iter().flat_map(|v| v.to_le_bytes()),
            ),
            Py::Unicode(strings) => {
                // Fixed width in code points; numpy's minimum is 1.
                let width = strings
                    .iter()
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(1);
                self.array(&[strings.len()], |e| {
                    e.dtype(&format!("U{width}"), "<", 4 * width as i64, 4, 8);
                    e.op(0x89);
                    let mut raw = Vec::with_capacity(strings.len() * width * 4);
                    for s in *strings {
                        let n = s.chars().count();
                        for c in s.chars() {
                            raw.extend_from_slice(&u32::from(c).to_le_bytes());
                        }
                        raw.resize(raw.len() + 4 * (width - n), 0);
                    }
                    e.bytes(&raw);
                });
            }
            Py::Objects(strings) => self.array(&[strings.len()], |e| {
                e.dtype("O8", "|", -1, -1, 63);
                e.op(0x89);
                e.op(b']');
                for chunk in strings.chunks(1000) {
                    e.op(b'(');
                    for s in chunk {
                        e.str(s);
                    }
                    e.op(b'e');
                }
            }),
        }
    }
}

fn f64_of_f32(m: &Matrix<f32>) -> Py<'static> {
    Py::F64(
        vec![m.rows(), m.cols()],
        m.as_slice().iter().map(|&v| f64::from(v)).collect(),
    )
}

/// The dataset as RouterEval's pickle.
pub fn to_routereval_pickle(ds: &RouterDataset) -> Vec<u8> {
    let mut top: Vec<(Py<'_>, Py<'_>)> = Vec::new();
    for difficulty in [Difficulty::Easy, Difficulty::Hard] {
        let mut sizes: Vec<(Py<'_>, Py<'_>)> = Vec::new();
        let pools: Vec<_> = ds
            .pools
            .iter()
            .filter(|p| p.difficulty == difficulty)
            .collect();
        let mut ms: Vec<usize> = pools.iter().map(|p| p.m()).collect();
        ms.dedup();
        for m in ms {
            let mut groups = Vec::new();
            for p in pools.iter().filter(|p| p.m() == m) {
                let mut data = vec![
                    (Py::Str("train_score"), f64_of_f32(&p.train_scores)),
                    (Py::Str("val_score"), f64_of_f32(&p.val_scores)),
                    (
                        Py::Str("test_score"),
                        Py::F64(
                            vec![p.test_scores.rows(), p.test_scores.cols()],
                            p.test_scores.as_slice().to_vec(),
                        ),
                    ),
                ];
                if let Some(l) = &p.train_labels {
                    data.push((Py::Str("train_label"), f64_of_f32(l)));
                }
                groups.push((
                    Py::Str(&p.group),
                    Py::Dict(vec![
                        (Py::Str("data"), Py::Dict(data)),
                        (Py::Str("model"), Py::Unicode(&p.models)),
                    ]),
                ));
            }
            sizes.push((Py::Int(m as i64), Py::Dict(groups)));
        }
        top.push((Py::Str(difficulty.as_str()), Py::Dict(sizes)));
    }
    if let Some([tr, va, te]) = &ds.split_indices {
        top.push((
            Py::Str("split_index"),
            Py::Dict(vec![
                (Py::Str("train_indices"), Py::I64(tr)),
                (Py::Str("val_indices"), Py::I64(va)),
                (Py::Str("test_indices"), Py::I64(te)),
            ]),
        ));
    }
    if let Some(rule) = ds.pool_selection {
        // Which items chose the pools' models (RouterEval's files have no such key; its
        // loader ignores keys it does not read).
        top.push((Py::Str("pool_selection"), Py::Str(rule.as_str())));
    }
    let splits = [("train", &ds.train), ("val", &ds.val), ("test", &ds.test)];
    let keys = ["train_embed", "val_embed", "test_embed"];
    top.push((
        Py::Str("embedding"),
        Py::Dict(
            splits
                .iter()
                .zip(keys)
                .map(|((_, s), k)| {
                    (
                        Py::Str(k),
                        Py::F32(
                            vec![s.embeddings.rows(), s.embeddings.cols()],
                            s.embeddings.as_slice(),
                        ),
                    )
                })
                .collect(),
        ),
    ));
    let keys = ["train_prompt", "val_prompt", "test_prompt"];
    top.push((
        Py::Str("prompt"),
        Py::Dict(
            splits
                .iter()
                .zip(keys)
                .map(|((_, s), k)| (Py::Str(k), Py::Objects(&s.prompts)))
                .collect(),
        ),
    ));
    let mut enc = Enc { out: vec![0x80, 4] };
    enc.value(&Py::Dict(top));
    enc.op(b'.');
    enc.out
}

/// Writes the dataset as RouterEval's pickle to `path`, atomically (a temporary file beside it,
/// renamed): a failed write leaves nothing half-written.
///
/// # Errors
/// The file cannot be written.
pub fn write_routereval_pickle(ds: &RouterDataset, path: &Path) -> Result<()> {
    crate::util::write_atomically(path, &to_routereval_pickle(ds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::load::from_pickle_bytes;

    #[test]
    fn the_engine_reads_back_what_it_writes() {
        let ds = crate::data::embedded::default_dataset().unwrap();
        let bytes = to_routereval_pickle(&ds);
        let mut back = from_pickle_bytes(&bytes, &ds.benchmark, "export").unwrap();
        assert_eq!(back.source, "export");
        // Everything but where it was read from: splits (val included), pools, indices.
        back.source.clone_from(&ds.source);
        assert_eq!(back, ds);
    }
}
