//! numpy inside a pickle: the reconstructors (`_reconstruct`, `_frombuffer`, `dtype`,
//! `_codecs.encode`), dtype strings, and arrays rebuilt from their bytes (either byte order, C or
//! Fortran order), sizes computed with checked arithmetic and charged to the decode budget.

use super::*;

impl Vm<'_> {
    pub(super) fn reduce(&mut self, f: Id, args: Id) -> Result<Obj, PickleError> {
        let Obj::Global(c) = self.arena[f] else {
            return Err(self.malformed(format!(
                "REDUCE calls a {}, not a global",
                self.arena[f].type_name()
            )));
        };
        let a = self.tuple_of(args, "REDUCE arguments")?;
        match (c, a.as_slice()) {
            (Callable::Reconstruct, [cls, _shape, _code]) => {
                if !matches!(self.arena[*cls], Obj::Global(Callable::NdarrayClass)) {
                    return Err(self.malformed("_reconstruct of a class other than numpy.ndarray"));
                }
                Ok(Obj::PendingArray)
            }
            (Callable::DtypeClass, [spec, ..]) => {
                let spec = self.str_of(*spec, "a dtype name")?.to_string();
                Ok(Obj::Dtype(self.parse_dtype(&spec)?))
            }
            (Callable::FromBuffer, [buf, dtype, shape, order]) => {
                let Obj::Dtype(dt) = self.arena[*dtype] else {
                    return Err(self.malformed("_frombuffer without a dtype"));
                };
                let shape = self.shape_of(*shape)?;
                let fortran = self.str_of(*order, "the array order")? == "F";
                let raw = match &self.arena[*buf] {
                    Obj::Bytes(b) => b.as_slice(),
                    o => {
                        return Err(self
                            .malformed(format!("_frombuffer of a {}, not bytes", o.type_name())));
                    }
                };
                let arr = self.array_from_bytes(dt, shape, fortran, raw)?;
                Ok(Obj::Array(arr))
            }
            (Callable::CodecsEncode, [s, enc]) => {
                let enc = self.str_of(*enc, "the encoding")?;
                if enc != "latin1" && enc != "latin-1" {
                    return Err(self.err(
                        PickleErrorKind::Unsupported,
                        format!(
                            "_codecs.encode with encoding {enc:?} (only latin1 is used by pickle)"
                        ),
                    ));
                }
                let s = self.str_of(*s, "the encoded text")?;
                let mut out = Vec::with_capacity(s.len());
                for ch in s.chars() {
                    let c = u32::from(ch);
                    if c > 0xff {
                        return Err(self.malformed("latin1 text with a character above U+00FF"));
                    }
                    out.push(c as u8);
                }
                Ok(Obj::Bytes(out))
            }
            (Callable::Scalar, [dtype, raw]) => {
                let Obj::Dtype(dt) = self.arena[*dtype] else {
                    return Err(self.malformed("numpy scalar without a dtype"));
                };
                let Obj::Bytes(b) = &self.arena[*raw] else {
                    return Err(self.malformed("numpy scalar without its bytes"));
                };
                let arr = self.array_from_bytes(dt, vec![], false, b)?;
                Ok(match arr.data {
                    ArrayData::F32(v) => Obj::Float(f64::from(v[0])),
                    ArrayData::F64(v) => Obj::Float(v[0]),
                    ArrayData::I64(v) => Obj::Int(v[0]),
                    ArrayData::Bool(v) => Obj::Bool(v[0]),
                    ArrayData::Str(v) => Obj::Str(v[0].clone()),
                })
            }
            (c, a) => Err(self.malformed(format!("{c:?} called with {} arguments", a.len()))),
        }
    }

    pub(super) fn parse_dtype(&self, spec: &str) -> Result<Dtype, PickleError> {
        let (order, rest) = match spec.as_bytes().first() {
            Some(b'<' | b'=' | b'|') => (false, &spec[1..]),
            Some(b'>') => (true, &spec[1..]),
            _ => (false, spec),
        };
        let unsupported = || {
            self.err(
                PickleErrorKind::Unsupported,
                format!(
                    "numpy dtype {spec:?} is not supported (f4, f8, integers, b1, U and O are)"
                ),
            )
        };
        let (code, n) = rest.split_at(rest.len().min(1));
        let n: usize = if n.is_empty() {
            0
        } else {
            n.parse().map_err(|_| unsupported())?
        };
        let (kind, size) = match (code, n) {
            ("f", 4 | 8) => (Kind::Float, n),
            ("i", 1 | 2 | 4 | 8) => (Kind::Int, n),
            ("u", 1 | 2 | 4 | 8) => (Kind::Uint, n),
            ("b", 1) | ("?", 0) => (Kind::Bool, 1),
            ("U", _) => (Kind::Unicode, n.checked_mul(4).ok_or_else(unsupported)?),
            ("O", 0 | 8) => (Kind::Object, 8),
            _ => return Err(unsupported()),
        };
        Ok(Dtype {
            kind,
            size,
            big_endian: order,
        })
    }

    pub(super) fn build(&mut self, target: Id, state: Id) -> Result<(), PickleError> {
        match self.arena[target] {
            Obj::Dtype(mut dt) => {
                let st = self.tuple_of(state, "the dtype state")?;
                if let Some(&o) = st.get(1) {
                    dt.big_endian = self.str_of(o, "the dtype byte order")? == ">";
                }
                if dt.kind == Kind::Unicode
                    && let Some(&e) = st.get(5)
                {
                    let size = self.int_of(e, "the dtype item size")?;
                    dt.size = usize::try_from(size)
                        .ok()
                        .filter(|s| s % 4 == 0)
                        .ok_or_else(|| {
                            self.malformed(format!(
                                "a str dtype's item size of {size} bytes is not a whole number \
                                 of 4-byte characters"
                            ))
                        })?;
                }
                self.arena[target] = Obj::Dtype(dt);
                Ok(())
            }
            Obj::PendingArray => {
                let st = self.tuple_of(state, "the array state")?;
                // (version, shape, dtype, is_fortran, data); very old numpy omits the version.
                let st = match st.len() {
                    5 => &st[1..],
                    4 => &st[..],
                    n => return Err(self.malformed(format!("array state of {n} items"))),
                };
                let shape = self.shape_of(st[0])?;
                let Obj::Dtype(dt) = self.arena[st[1]] else {
                    return Err(self.malformed("array state without a dtype"));
                };
                let fortran = match self.arena[st[2]] {
                    Obj::Bool(b) => b,
                    Obj::Int(i) => i != 0,
                    _ => return Err(self.malformed("array order flag is not a bool")),
                };
                let arr = if dt.kind == Kind::Object {
                    self.object_array(shape, fortran, st[3])?
                } else {
                    let raw = match &self.arena[st[3]] {
                        Obj::Bytes(b) => b.as_slice(),
                        Obj::Str(s) => s.as_bytes(),
                        o => {
                            return Err(self.malformed(format!(
                                "array data is a {}, not bytes",
                                o.type_name()
                            )));
                        }
                    };
                    self.array_from_bytes(dt, shape, fortran, raw)?
                };
                self.arena[target] = Obj::Array(arr);
                Ok(())
            }
            ref o => Err(self.err(
                PickleErrorKind::Unsupported,
                format!(
                    "setting the state of a {} (BUILD) is not supported",
                    o.type_name()
                ),
            )),
        }
    }

    pub(super) fn count(&self, shape: &[usize]) -> Result<usize, PickleError> {
        shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.malformed(format!("array shape {shape:?} overflows")))
    }

    pub(super) fn object_array(
        &self,
        shape: Vec<usize>,
        fortran: bool,
        data: Id,
    ) -> Result<NdArray, PickleError> {
        let n = self.count(&shape)?;
        let Obj::List(items) = &self.arena[data] else {
            return Err(self.malformed("object array data is not a list"));
        };
        // Each element is a copy of a string the file may hold once (memo references).
        let cost = items
            .iter()
            .try_fold(0usize, |acc, &it| match &self.arena[it] {
                Obj::Str(s) => acc.checked_add(s.len() + STR_OVERHEAD),
                _ => Some(acc),
            });
        self.charge(cost.unwrap_or(usize::MAX))?;
        if items.len() != n {
            return Err(self.malformed(format!(
                "object array of shape {shape:?} holds {} items",
                items.len()
            )));
        }
        let mut out = Vec::with_capacity(n);
        for &it in items {
            match &self.arena[it] {
                Obj::Str(s) => out.push(s.clone()),
                o => {
                    return Err(self.err(
                        PickleErrorKind::Unsupported,
                        format!(
                            "object array holding a {} (only arrays of str are supported)",
                            o.type_name()
                        ),
                    ));
                }
            }
        }
        let data = ArrayData::Str(reorder(out, &shape, fortran));
        Ok(NdArray { shape, data })
    }

    pub(super) fn array_from_bytes(
        &self,
        dt: Dtype,
        shape: Vec<usize>,
        fortran: bool,
        raw: &[u8],
    ) -> Result<NdArray, PickleError> {
        let n = self.count(&shape)?;
        if dt.kind == Kind::Object {
            return Err(self.malformed("object array given as raw bytes"));
        }
        if dt.size == 0 && n > 0 {
            // numpy gives every array of strings at least one character per item; with 0-byte
            // items the shape alone would say how much to allocate.
            return Err(self.malformed(format!(
                "array of shape {shape:?} with 0-byte items (numpy never writes these)"
            )));
        }
        let want = n.checked_mul(dt.size);
        if want != Some(raw.len()) {
            return Err(self.malformed(format!(
                "array of shape {shape:?} with {}-byte items needs {} bytes, the file has {}",
                dt.size,
                want.map_or_else(|| "too many".to_string(), |w| w.to_string()),
                raw.len()
            )));
        }
        fn word<const N: usize>(c: &[u8], big: bool) -> [u8; N] {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            if big {
                a.reverse();
            }
            a
        }
        let per_item = match dt.kind {
            Kind::Float => dt.size,
            Kind::Int | Kind::Uint => 8,
            Kind::Bool => 1,
            Kind::Unicode => STR_OVERHEAD,
            Kind::Object => 0,
        };
        // Strings add their UTF-8 bytes, at most the file's 4 per character.
        let cost = n.checked_mul(per_item).and_then(|c| {
            c.checked_add(if dt.kind == Kind::Unicode {
                raw.len()
            } else {
                0
            })
        });
        self.charge(cost.unwrap_or(usize::MAX))?;
        let be = dt.big_endian;
        let data = match (dt.kind, dt.size) {
            (Kind::Float, 4) => ArrayData::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(word(c, be)))
                    .collect(),
            ),
            (Kind::Float, _) => ArrayData::F64(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(word(c, be)))
                    .collect(),
            ),
            (Kind::Int | Kind::Uint, size) => {
                let signed = dt.kind == Kind::Int;
                let mut v = Vec::with_capacity(n);
                for c in raw.chunks_exact(size) {
                    let mut a = [0u8; 8];
                    a[..size].copy_from_slice(c);
                    if be {
                        a[..size].reverse();
                    }
                    if signed && a[size - 1] & 0x80 != 0 {
                        a[size..].fill(0xff);
                    }
                    let x = i64::from_le_bytes(a);
                    if !signed && size == 8 && x < 0 {
                        return Err(self.err(
                            PickleErrorKind::Unsupported,
                            "uint64 value above the int64 range",
                        ));
                    }
                    v.push(x);
                }
                ArrayData::I64(v)
            }
            (Kind::Bool, _) => ArrayData::Bool(raw.iter().map(|&b| b != 0).collect()),
            (Kind::Unicode, size) => {
                let mut v = Vec::with_capacity(n);
                for c in raw.chunks(size.max(1)).take(n) {
                    let mut s = String::with_capacity(size / 4);
                    for w in c.chunks_exact(4) {
                        let cp = u32::from_le_bytes(word(w, be));
                        if cp == 0 {
                            break;
                        }
                        s.push(char::from_u32(cp).ok_or_else(|| {
                            self.malformed(format!("invalid code point {cp:#x} in a str array"))
                        })?);
                    }
                    v.push(s);
                }
                ArrayData::Str(v)
            }
            (Kind::Object, _) => unreachable!("handled above"),
        };
        let data = match data {
            ArrayData::F32(v) => ArrayData::F32(reorder(v, &shape, fortran)),
            ArrayData::F64(v) => ArrayData::F64(reorder(v, &shape, fortran)),
            ArrayData::I64(v) => ArrayData::I64(reorder(v, &shape, fortran)),
            ArrayData::Bool(v) => ArrayData::Bool(reorder(v, &shape, fortran)),
            ArrayData::Str(v) => ArrayData::Str(reorder(v, &shape, fortran)),
        };
        Ok(NdArray { shape, data })
    }
}

/// The memory an array's elements take.
pub(super) fn array_bytes(a: &NdArray) -> usize {
    match &a.data {
        ArrayData::F32(v) => v.len() * 4,
        ArrayData::F64(v) => v.len() * 8,
        ArrayData::I64(v) => v.len() * 8,
        ArrayData::Bool(v) => v.len(),
        ArrayData::Str(v) => v.iter().map(|s| s.len() + STR_OVERHEAD).sum(),
    }
}

/// Turns Fortran-ordered (column-major) elements into C order.
pub(super) fn reorder<T: Clone>(v: Vec<T>, shape: &[usize], fortran: bool) -> Vec<T> {
    let n = v.len();
    if !fortran || shape.len() < 2 || n == 0 {
        return v;
    }
    // Strides of the Fortran layout, indexed by axis.
    let mut fstride = vec![1usize; shape.len()];
    for a in 1..shape.len() {
        fstride[a] = fstride[a - 1] * shape[a - 1];
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let off: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        out.push(v[off].clone());
        for a in (0..shape.len()).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}
