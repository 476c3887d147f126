//! A pickle reader that executes nothing.
//!
//! Python's `pickle.load` runs whatever callables a file names, so a downloaded dataset can run
//! code. This reader interprets the pickle opcodes itself and builds only plain values (`None`,
//! booleans, integers, floats, strings, bytes, lists, tuples, dicts) and numpy arrays. The only
//! globals it accepts are the few numpy uses to rebuild arrays and dtypes; any other global is
//! refused with an error that names it, before anything could be called.
//!
//! Why our own reader: `serde-pickle` turns every global it does not know into an opaque
//! placeholder (so it cannot name the refused one) and drops the dtype string of a numpy array
//! when it applies the `BUILD` state, so it cannot rebuild arrays; `repugnant-pickle` (0.0.1,
//! "low effort scraping") yields a raw op tree with no numpy support and no limits. Neither
//! decodes numpy arrays safely, so this module does, in a few hundred lines.
//!
//! Supported: protocols 2 to 5 (and the text opcodes `INT`, `FLOAT`, `GET`, `PUT`, `GLOBAL`),
//! memo, frames, in-band buffers (`BYTEARRAY8`); numpy 1 and 2 array pickles
//! (`numpy.core.multiarray._reconstruct`, `numpy._core.multiarray._reconstruct`,
//! `numpy._core.numeric._frombuffer`, `_codecs.encode` for protocol-2 bytes, numpy scalars),
//! dtypes `f4`, `f8`, signed and unsigned integers, `b1`, `<U` and object arrays of `str`, either
//! byte order, C or Fortran order.

use std::collections::HashMap;
use std::fmt;

mod numpy;

use numpy::array_bytes;

/// A decoded Python value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A list (or a set, whose order is the file's).
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A numpy array.
    Array(NdArray),
}

impl Value {
    /// A short description of the value's type, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(i) => format!("the int {i}"),
            Value::Float(x) => format!("the float {x}"),
            Value::Str(s) if s.chars().count() <= 40 => format!("the str {s:?}"),
            Value::Str(_) => "a str".into(),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::List(v) => format!("a list of {} items", v.len()),
            Value::Tuple(v) => format!("a tuple of {} items", v.len()),
            Value::Dict(v) => format!("a dict of {} keys", v.len()),
            Value::Array(a) => format!("a {} array of shape {:?}", a.data.dtype_name(), a.shape),
        }
    }

    /// The value for `key` when `self` is a dict with such a `str` key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A numpy array, in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// The shape; `[]` for a 0-d array.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: ArrayData,
}

/// The elements of an array, widened to one type per family.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// `f4`.
    F32(Vec<f32>),
    /// `f8`.
    F64(Vec<f64>),
    /// Any integer dtype up to 64 bits (unsigned values above `i64::MAX` are refused).
    I64(Vec<i64>),
    /// `b1`.
    Bool(Vec<bool>),
    /// `<U` arrays and object arrays whose elements are all `str`.
    Str(Vec<String>),
}

impl ArrayData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::Bool(v) => v.len(),
            ArrayData::Str(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype family, for messages.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
            ArrayData::I64(_) => "int",
            ArrayData::Bool(_) => "bool",
            ArrayData::Str(_) => "str",
        }
    }
}

/// What kind of failure a [`PickleError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PickleErrorKind {
    /// The file ends before the pickle does.
    Truncated,
    /// The file names a callable this reader will not touch.
    RefusedGlobal,
    /// A valid pickle feature this reader does not implement.
    Unsupported,
    /// Bytes that are not a valid pickle, or an array whose parts disagree.
    Malformed,
    /// A pickle that decodes to more than the reader's size bound (see [`decode_budget`]).
    TooLarge,
}

/// A failure to read a pickle, with the byte offset of the opcode that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset in the file.
    pub offset: usize,
    /// The kind of failure.
    pub kind: PickleErrorKind,
    /// What went wrong, in words.
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for PickleError {}

/// Reads one pickle from `bytes` without executing anything.
///
/// # Errors
/// [`PickleError`] for truncated or malformed input, an unsupported opcode, or a global other
/// than numpy's array and dtype reconstructors.
pub fn read(bytes: &[u8]) -> Result<Value, PickleError> {
    read_with_budget(bytes, decode_budget(bytes.len()))
}

/// [`read`] with an explicit bound on the decoded size: the bytes of every array, string and
/// container the reader builds, copies included (see [`decode_budget`] for the default).
///
/// # Errors
/// As [`read`], and [`PickleErrorKind::TooLarge`] when the decoded values would exceed `budget`
/// bytes.
pub fn read_with_budget(bytes: &[u8], budget: usize) -> Result<Value, PickleError> {
    let mut vm = Vm::new(bytes, budget);
    let root = vm.run()?;
    vm.op_pos = bytes.len();
    let mut refs = vec![0u32; vm.arena.len()];
    vm.count_refs(root, &mut refs);
    vm.take_value(root, &refs, false, 0)
}

/// The default bound on what a pickle of `len` bytes may decode to: 32 times its size, and at
/// least 256 MiB.
///
/// A pickle can describe far more than it holds: a memo reference is two bytes however large
/// the object it repeats, so a few hundred bytes of nested references describe a tree of 2^40
/// nodes (Python shares them; a reader that copies must stop). Honest files stay well inside
/// the bound: numbers decode to at most 8 bytes per byte of the file (`i1` widened to `i64`),
/// strings of `<U1` to about 7, and RouterEval's files share little.
pub fn decode_budget(len: usize) -> usize {
    len.saturating_mul(32).max(256 << 20)
}

/// Containers nested deeper than this are refused (RouterEval files nest 6 deep).
const MAX_DEPTH: usize = 64;

/// What a decoded string costs against the budget beyond its bytes (the `String` itself).
const STR_OVERHEAD: usize = size_of::<String>();

type Id = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Callable {
    Reconstruct,
    NdarrayClass,
    DtypeClass,
    FromBuffer,
    CodecsEncode,
    Scalar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
    Unicode,
    Object,
}

#[derive(Clone, Copy, Debug)]
struct Dtype {
    kind: Kind,
    /// Bytes per element.
    size: usize,
    big_endian: bool,
}

#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Callable),
    Dtype(Dtype),
    /// The result of `_reconstruct(ndarray, ...)`, waiting for its `BUILD` state.
    PendingArray,
    Array(NdArray),
    /// An array already moved into the output tree.
    Moved,
}

impl Obj {
    fn type_name(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) => "int",
            Obj::Float(_) => "float",
            Obj::Str(_) => "str",
            Obj::Bytes(_) => "bytes",
            Obj::List(_) => "list",
            Obj::Tuple(_) => "tuple",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "global",
            Obj::Dtype(_) => "numpy dtype",
            Obj::PendingArray => "unbuilt numpy array",
            Obj::Array(_) => "numpy array",
            Obj::Moved => "array",
        }
    }
}

struct Vm<'a> {
    buf: &'a [u8],
    pos: usize,
    op_pos: usize,
    arena: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    /// Bytes the decoded values may still take.
    budget: std::cell::Cell<usize>,
    /// The whole bound, for messages.
    limit: usize,
    /// The offset of every opcode run, when asked for (the fuzz test mutates at these).
    trace: Option<Vec<usize>>,
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'P' | b'Q' => "PERSID (persistent references)",
        b'i' => "INST (class instantiation)",
        b'o' => "OBJ (class instantiation)",
        0x81 => "NEWOBJ (class instantiation)",
        0x92 => "NEWOBJ_EX (class instantiation)",
        0x82..=0x84 => "EXT (extension registry)",
        0x97 | 0x98 => "NEXT_BUFFER (out-of-band buffers)",
        b'S' | b'V' | b'L' => "a protocol-0 text opcode",
        b'T' | b'U' => "BINSTRING (Python 2 str)",
        _ => "an unknown opcode",
    }
}

impl<'a> Vm<'a> {
    fn new(buf: &'a [u8], budget: usize) -> Vm<'a> {
        Vm {
            buf,
            pos: 0,
            op_pos: 0,
            arena: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            budget: std::cell::Cell::new(budget),
            limit: budget,
            trace: None,
        }
    }

    fn err(&self, kind: PickleErrorKind, message: impl Into<String>) -> PickleError {
        PickleError {
            offset: self.op_pos,
            kind,
            message: message.into(),
        }
    }

    fn malformed(&self, message: impl Into<String>) -> PickleError {
        self.err(PickleErrorKind::Malformed, message)
    }

    /// Takes `bytes` from the decoded-size budget, or refuses the file.
    fn charge(&self, bytes: usize) -> Result<(), PickleError> {
        match self.budget.get().checked_sub(bytes) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(self.err(
                PickleErrorKind::TooLarge,
                format!(
                    "the pickle decodes to more than {} MiB, the reader's bound for a file of \
                     {} bytes (32 times its size, at least 256 MiB): it repeats shared objects \
                     (memo references) or describes arrays far larger than the bytes it holds",
                    self.limit >> 20,
                    self.buf.len()
                ),
            )),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PickleError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.err(
                PickleErrorKind::Truncated,
                format!(
                    "the file ends inside {what}: {n} bytes needed, {left} left (the file is truncated)"
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize, what: &str) -> Result<u64, PickleError> {
        let b = self.take(n, what)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    fn len_of(&mut self, n: usize, what: &str) -> Result<usize, PickleError> {
        let v = self.uint(n, what)?;
        usize::try_from(v).map_err(|_| self.malformed(format!("{what} length {v} is too large")))
    }

    fn line(&mut self, what: &str) -> Result<&'a str, PickleError> {
        let rest = &self.buf[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err(
                PickleErrorKind::Truncated,
                format!("the file ends inside {what} (no newline)"),
            ));
        };
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end])
            .map_err(|_| self.malformed(format!("{what} is not UTF-8")))
    }

    fn utf8(&self, b: &[u8], what: &str) -> Result<String, PickleError> {
        String::from_utf8(b.to_vec())
            .map_err(|_| self.malformed(format!("{what} is not valid UTF-8")))
    }

    fn alloc(&mut self, o: Obj) -> Id {
        self.arena.push(o);
        self.arena.len() - 1
    }

    fn push(&mut self, o: Obj) {
        let id = self.alloc(o);
        self.stack.push(id);
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed("stack underflow"));
        }
        Ok(self.stack.pop().unwrap_or_default())
    }

    fn top(&self) -> Result<Id, PickleError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.malformed("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(m) = self.marks.pop() else {
            return Err(self.malformed("no MARK on the stack"));
        };
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(id);
                Ok(())
            }
            None => Err(self.malformed(format!("memo key {key} was never stored"))),
        }
    }

    fn str_of(&self, id: Id, what: &str) -> Result<&str, PickleError> {
        match &self.arena[id] {
            Obj::Str(s) => Ok(s),
            o => Err(self.malformed(format!("{what} must be a str, found {}", o.type_name()))),
        }
    }

    fn int_of(&self, id: Id, what: &str) -> Result<i64, PickleError> {
        match &self.arena[id] {
            Obj::Int(i) => Ok(*i),
            o => Err(self.malformed(format!("{what} must be an int, found {}", o.type_name()))),
        }
    }

    fn tuple_of(&self, id: Id, what: &str) -> Result<Vec<Id>, PickleError> {
        match &self.arena[id] {
            Obj::Tuple(v) => Ok(v.clone()),
            o => Err(self.malformed(format!("{what} must be a tuple, found {}", o.type_name()))),
        }
    }

    fn shape_of(&self, id: Id) -> Result<Vec<usize>, PickleError> {
        self.tuple_of(id, "an array shape")?
            .into_iter()
            .map(|d| {
                let v = self.int_of(d, "an array dimension")?;
                usize::try_from(v)
                    .map_err(|_| self.malformed(format!("negative array dimension {v}")))
            })
            .collect()
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        let c = match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Callable::Reconstruct
            }
            ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Callable::Scalar,
            ("numpy", "ndarray") => Callable::NdarrayClass,
            ("numpy", "dtype") => Callable::DtypeClass,
            ("numpy._core.numeric" | "numpy.core.numeric", "_frombuffer") => Callable::FromBuffer,
            ("_codecs", "encode") => Callable::CodecsEncode,
            _ => {
                return Err(self.err(
                    PickleErrorKind::RefusedGlobal,
                    format!(
                        "refused global `{module}.{name}`: this reader only rebuilds numpy arrays \
                         and plain containers, and Python's pickle would call this one (the file \
                         may try to run code); nothing was executed"
                    ),
                ));
            }
        };
        self.push(Obj::Global(c));
        Ok(())
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            self.op_pos = self.pos;
            if let Some(t) = &mut self.trace {
                t.push(self.pos);
            }
            let op = self.take(1, "an opcode")?[0];
            match op {
                0x80 => {
                    let v = self.take(1, "PROTO")?[0];
                    if v > 5 {
                        return Err(self.err(
                            PickleErrorKind::Unsupported,
                            format!("pickle protocol {v} is newer than 5"),
                        ));
                    }
                }
                0x95 => {
                    self.take(8, "FRAME")?;
                }
                b'.' => {
                    let id = self.pop()?;
                    return Ok(id);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.stack.push(id);
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                b'J' => {
                    let v = self.uint(4, "BININT")? as u32 as i32;
                    self.push(Obj::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.uint(1, "BININT1")?;
                    self.push(Obj::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2, "BININT2")?;
                    self.push(Obj::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.len_of(1, "LONG1")?
                    } else {
                        self.len_of(4, "LONG4")?
                    };
                    let b = self.take(n, "a long integer")?;
                    if n > 8 {
                        return Err(self.err(
                            PickleErrorKind::Unsupported,
                            format!("an integer of {n} bytes does not fit in 64 bits"),
                        ));
                    }
                    let mut v = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    v[..n].copy_from_slice(b);
                    self.push(Obj::Int(i64::from_le_bytes(v)));
                }
                b'I' => {
                    let l = self.line("INT")?;
                    let o = match l {
                        "01" => Obj::Bool(true),
                        "00" => Obj::Bool(false),
                        _ => Obj::Int(
                            l.parse()
                                .map_err(|_| self.malformed(format!("bad INT {l:?}")))?,
                        ),
                    };
                    self.push(o);
                }
                b'F' => {
                    let l = self.line("FLOAT")?;
                    let v = l
                        .parse()
                        .map_err(|_| self.malformed(format!("bad FLOAT {l:?}")))?;
                    self.push(Obj::Float(v));
                }
                b'G' => {
                    let b = self.take(8, "BINFLOAT")?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Obj::Float(f64::from_be_bytes(a)));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.len_of(4, "BINUNICODE")?,
                        0x8c => self.len_of(1, "SHORT_BINUNICODE")?,
                        _ => self.len_of(8, "BINUNICODE8")?,
                    };
                    let b = self.take(n, "a string")?;
                    let s = self.utf8(b, "a string")?;
                    self.push(Obj::Str(s));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.len_of(4, "BINBYTES")?,
                        b'C' => self.len_of(1, "SHORT_BINBYTES")?,
                        0x8e => self.len_of(8, "BINBYTES8")?,
                        _ => self.len_of(8, "BYTEARRAY8")?,
                    };
                    let b = self.take(n, "a bytes object")?.to_vec();
                    self.push(Obj::Bytes(b));
                }
                b']' => self.push(Obj::List(Vec::new())),
                b')' => self.push(Obj::Tuple(Vec::new())),
                b'}' => self.push(Obj::Dict(Vec::new())),
                0x8f => self.push(Obj::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items));
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Obj::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Obj::Dict(pairs));
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.extend_list(l, vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.extend_list(l, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.extend_dict(d, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let d = self.top()?;
                    self.extend_dict(d, pairs)?;
                }
                b'p' => {
                    let l = self.line("PUT")?;
                    let k = l
                        .parse()
                        .map_err(|_| self.malformed(format!("bad PUT key {l:?}")))?;
                    self.memo_put(k)?;
                }
                b'q' => {
                    let k = self.uint(1, "BINPUT")?;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.uint(4, "LONG_BINPUT")?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'g' => {
                    let l = self.line("GET")?;
                    let k = l
                        .parse()
                        .map_err(|_| self.malformed(format!("bad GET key {l:?}")))?;
                    self.memo_get(k)?;
                }
                b'h' => {
                    let k = self.uint(1, "BINGET")?;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.uint(4, "LONG_BINGET")?;
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line("GLOBAL module")?;
                    let name = self.line("GLOBAL name")?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (module, name) = (
                        self.str_of(module, "STACK_GLOBAL module")?.to_string(),
                        self.str_of(name, "STACK_GLOBAL name")?.to_string(),
                    );
                    self.global(&module, &name)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let o = self.reduce(f, args)?;
                    self.push(o);
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(target, state)?;
                }
                other => {
                    return Err(self.err(
                        PickleErrorKind::Unsupported,
                        format!(
                            "opcode 0x{other:02x} ({}) is not supported by this reader",
                            opcode_name(other)
                        ),
                    ));
                }
            }
        }
    }

    fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("a dict built from an odd number of items"));
        }
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    fn extend_list(&mut self, l: Id, items: Vec<Id>) -> Result<(), PickleError> {
        match &mut self.arena[l] {
            Obj::List(v) => {
                v.extend(items);
                Ok(())
            }
            o => {
                let t = o.type_name();
                Err(self.malformed(format!("APPEND to a {t}, not a list")))
            }
        }
    }

    fn extend_dict(&mut self, d: Id, pairs: Vec<(Id, Id)>) -> Result<(), PickleError> {
        match &mut self.arena[d] {
            Obj::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            o => {
                let t = o.type_name();
                Err(self.malformed(format!("SETITEM on a {t}, not a dict")))
            }
        }
    }

    fn count_refs(&self, root: Id, refs: &mut [u32]) {
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            refs[id] += 1;
            if refs[id] > 1 {
                continue;
            }
            match &self.arena[id] {
                Obj::List(v) | Obj::Tuple(v) => todo.extend(v),
                Obj::Dict(v) => v.iter().for_each(|&(k, x)| todo.extend([k, x])),
                _ => {}
            }
        }
    }

    /// Builds the output value of `id`. Arrays referenced once, on a path with no shared
    /// container, are moved out (they are the bulk of the data); anything reached twice is
    /// copied, and every copy is charged to the decoded-size budget.
    fn take_value(
        &mut self,
        id: Id,
        refs: &[u32],
        shared: bool,
        depth: usize,
    ) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(self.malformed(format!(
                "containers nested deeper than {MAX_DEPTH} levels (or a self-reference)"
            )));
        }
        let shared = shared || refs[id] > 1;
        const SLOT: usize = size_of::<Value>();
        let v = match &self.arena[id] {
            Obj::None => Value::None,
            Obj::Bool(b) => Value::Bool(*b),
            Obj::Int(i) => Value::Int(*i),
            Obj::Float(x) => Value::Float(*x),
            Obj::Str(s) => {
                let s = s.clone();
                self.charge(s.len())?;
                Value::Str(s)
            }
            Obj::Bytes(b) => {
                let b = b.clone();
                self.charge(b.len())?;
                Value::Bytes(b)
            }
            Obj::List(items) | Obj::Tuple(items) => {
                let is_list = matches!(self.arena[id], Obj::List(_));
                let items = items.clone();
                self.charge(items.len().saturating_mul(SLOT))?;
                // Exactly the capacity charged (collecting a `Result` would start at 4).
                let mut vals = Vec::with_capacity(items.len());
                for i in items {
                    vals.push(self.take_value(i, refs, shared, depth + 1)?);
                }
                if is_list {
                    Value::List(vals)
                } else {
                    Value::Tuple(vals)
                }
            }
            Obj::Dict(pairs) => {
                let pairs = pairs.clone();
                self.charge(pairs.len().saturating_mul(2 * SLOT))?;
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(pairs.len());
                // Python's dict: a repeated key keeps its first position and its last value.
                let mut index: HashMap<Key, usize> = HashMap::new();
                for (k, x) in pairs {
                    let key = self.take_value(k, refs, shared, depth + 1)?;
                    let value = self.take_value(x, refs, shared, depth + 1)?;
                    match dict_key(&key) {
                        Err(kind) => {
                            return Err(self.malformed(format!(
                                "a dict key that Python cannot hash ({kind})"
                            )));
                        }
                        Ok(None) => out.push((key, value)),
                        Ok(Some(k)) => match index.get(&k) {
                            Some(&at) => out[at].1 = value,
                            None => {
                                index.insert(k, out.len());
                                out.push((key, value));
                            }
                        },
                    }
                }
                Value::Dict(out)
            }
            Obj::Array(a) => {
                if shared {
                    let bytes = array_bytes(a);
                    let a = a.clone();
                    self.charge(bytes)?;
                    Value::Array(a)
                } else {
                    match std::mem::replace(&mut self.arena[id], Obj::Moved) {
                        Obj::Array(a) => Value::Array(a),
                        _ => unreachable!("matched above"),
                    }
                }
            }
            o @ (Obj::Global(_) | Obj::Dtype(_) | Obj::PendingArray | Obj::Moved) => {
                return Err(self.malformed(format!(
                    "a {} cannot appear as a value in a dataset",
                    o.type_name()
                )));
            }
        };
        Ok(v)
    }
}

/// A dict key as Python compares keys: `1`, `1.0` and `True` are one key.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    /// A float that is not a whole number in the `i64` range, by its bits (`-0.0` is `0`).
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Key>),
}

/// The key of `v`: `Ok(None)` for a key equal to no other (NaN), `Err` for a type Python
/// cannot hash (lists, dicts, arrays).
fn dict_key(v: &Value) -> Result<Option<Key>, &'static str> {
    Ok(Some(match v {
        Value::None => Key::None,
        Value::Bool(b) => Key::Int(i64::from(*b)),
        Value::Int(i) => Key::Int(*i),
        Value::Float(x) if x.is_nan() => return Ok(None),
        // Whole floats in range equal the int of the same value.
        Value::Float(x) if x.fract() == 0.0 && *x >= -(2f64.powi(63)) && *x < 2f64.powi(63) => {
            Key::Int(*x as i64)
        }
        Value::Float(x) => Key::Float(x.to_bits()),
        Value::Str(s) => Key::Str(s.clone()),
        Value::Bytes(b) => Key::Bytes(b.clone()),
        Value::Tuple(items) => {
            let mut keys = Vec::with_capacity(items.len());
            for it in items {
                match dict_key(it)? {
                    Some(k) => keys.push(k),
                    None => return Ok(None),
                }
            }
            Key::Tuple(keys)
        }
        Value::List(_) => return Err("a list"),
        Value::Dict(_) => return Err("a dict"),
        Value::Array(_) => return Err("a numpy array"),
    }))
}

/// The byte offset of every opcode the reader runs on `bytes`, up to where it stops.
#[cfg(test)]
fn opcode_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut vm = Vm::new(bytes, decode_budget(bytes.len()));
    vm.trace = Some(Vec::new());
    let _ = vm.run();
    vm.trace.unwrap_or_default()
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::numpy::reorder;
    use super::*;

    fn short_str(s: &str) -> Vec<u8> {
        let mut v = vec![0x8c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn plain_containers_and_memo() {
        // {'a': [1, -2, 3.5, None, True], 'b': (b'xy',), 'c': <memo of the list>}
        let mut p = vec![0x80, 4, b'}', 0x94, b'('];
        p.extend(short_str("a"));
        p.extend([b']', 0x94, b'(', b'K', 1, b'J']);
        p.extend((-2i32).to_le_bytes());
        p.push(b'G');
        p.extend(3.5f64.to_be_bytes());
        p.extend([b'N', 0x88, b'e']);
        p.extend(short_str("b"));
        p.extend([b'C', 2, b'x', b'y', 0x85]);
        p.extend(short_str("c"));
        p.extend([b'h', 1, b'u', b'.']);
        let v = read(&p).unwrap();
        let list = Value::List(vec![
            Value::Int(1),
            Value::Int(-2),
            Value::Float(3.5),
            Value::None,
            Value::Bool(true),
        ]);
        assert_eq!(v.get("a"), Some(&list));
        assert_eq!(v.get("c"), Some(&list));
        assert_eq!(
            v.get("b"),
            Some(&Value::Tuple(vec![Value::Bytes(b"xy".to_vec())]))
        );
    }

    #[test]
    fn refuses_unknown_globals_by_name() {
        let p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        let e = read(p).unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::RefusedGlobal);
        assert!(e.message.contains("`os.system`"), "{e}");
        assert_eq!(e.offset, 2);
    }

    #[test]
    fn truncation_and_self_reference() {
        let e = read(b"\x80\x04X\x10\x00\x00\x00abc").unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Truncated);
        // l = []; l.append(l)
        let e = read(b"\x80\x02]q\x00h\x00a.").unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Malformed);
        let e = read(b"\x80\x02\x81.").unwrap_err();
        assert_eq!(e.kind, PickleErrorKind::Unsupported);
        assert!(e.message.contains("NEWOBJ"), "{e}");
    }

    #[test]
    fn fortran_order_is_transposed() {
        // 2 x 3 array stored column-major: [[0,1,2],[3,4,5]] -> 0,3,1,4,2,5
        assert_eq!(
            reorder(vec![0, 3, 1, 4, 2, 5], &[2, 3], true),
            vec![0, 1, 2, 3, 4, 5]
        );
    }
}
