//! Router hyperparameters: typed values by name, plus the run's seed.

use std::collections::BTreeMap;
use std::fmt;

use crate::RouterError;

/// One parameter value. Command-line values (`k=5`) and TOML values map onto these.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Anything else, as text.
    Str(String),
}

impl ParamValue {
    /// Reads a command-line value: `true`/`false`, an integer, a float, else a string (quotes,
    /// single or double, are stripped and force a string).
    pub fn parse(text: &str) -> ParamValue {
        let t = text.trim();
        if t.len() >= 2
            && ((t.starts_with('"') && t.ends_with('"'))
                || (t.starts_with('\'') && t.ends_with('\'')))
        {
            return ParamValue::Str(t[1..t.len() - 1].to_string());
        }
        match t {
            "true" => return ParamValue::Bool(true),
            "false" => return ParamValue::Bool(false),
            _ => {}
        }
        if let Ok(i) = t.parse::<i64>() {
            return ParamValue::Int(i);
        }
        // `nan`, `inf` and the like stay strings: no router wants them as numbers by accident.
        if let Ok(f) = t.parse::<f64>()
            && f.is_finite()
        {
            return ParamValue::Float(f);
        }
        ParamValue::Str(t.to_string())
    }

    fn type_name(&self) -> &'static str {
        match self {
            ParamValue::Bool(_) => "a boolean",
            ParamValue::Int(_) => "an integer",
            ParamValue::Float(_) => "a number",
            ParamValue::Str(_) => "a string",
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

/// A router's parameters: named values plus the seed of the run.
///
/// Keys are kept sorted, so `Display` gives a canonical `k=5,p=0.5` form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    seed: u64,
    values: BTreeMap<String, ParamValue>,
}

impl Params {
    /// Empty parameters with the given seed.
    pub fn new(seed: u64) -> Self {
        Params {
            seed,
            values: BTreeMap::new(),
        }
    }

    /// Parses `key=value,key=value`. A `seed` key sets the seed instead of a value.
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] on an item without `=`, an empty key, a repeated key or a
    /// seed that is not a non-negative integer.
    pub fn parse(spec: &str, seed: u64) -> Result<Self, RouterError> {
        let mut params = Params::new(seed);
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(RouterError::InvalidParams(format!(
                    "`{item}` is not of the form key=value"
                )));
            };
            let k = k.trim();
            if k.is_empty() {
                return Err(RouterError::InvalidParams(format!(
                    "`{item}` has an empty key"
                )));
            }
            if params.values.contains_key(k) {
                return Err(RouterError::InvalidParams(format!("`{k}` is given twice")));
            }
            params = params.with(k, ParamValue::parse(v))?;
        }
        Ok(params)
    }

    /// Sets one value (a `seed` key sets the seed).
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] when `seed` is not a non-negative integer.
    pub fn with(mut self, key: &str, value: ParamValue) -> Result<Self, RouterError> {
        if key == "seed" {
            match value {
                ParamValue::Int(s) if s >= 0 => self.seed = s as u64,
                other => {
                    return Err(RouterError::InvalidParams(format!(
                        "`seed` must be a non-negative integer, got {other}"
                    )));
                }
            }
        } else {
            self.values.insert(key.to_string(), value);
        }
        Ok(self)
    }

    /// The seed every source of randomness in the router must derive from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.values.get(key)
    }

    /// Whether no values are set (the seed aside).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Iterates over `(key, value)` in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn wrong(&self, key: &str, want: &str) -> RouterError {
        let got = &self.values[key];
        RouterError::InvalidParams(format!(
            "`{key}` must be {want}, got {} `{got}`",
            got.type_name()
        ))
    }

    /// An integer `>= 0` (defaults to `default` when absent).
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] when present but not a non-negative integer.
    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize, RouterError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(ParamValue::Int(i)) if *i >= 0 => Ok(*i as usize),
            Some(_) => Err(self.wrong(key, "a non-negative integer")),
        }
    }

    /// An integer (defaults to `default` when absent).
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] when present but not an integer.
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64, RouterError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(ParamValue::Int(i)) => Ok(*i),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }

    /// A number; integers are accepted (defaults to `default` when absent).
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] when present but not a number.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, RouterError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(ParamValue::Float(x)) => Ok(*x),
            Some(ParamValue::Int(i)) => Ok(*i as f64),
            Some(_) => Err(self.wrong(key, "a number")),
        }
    }

    /// A boolean (defaults to `default` when absent).
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] when present but not a boolean.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, RouterError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(ParamValue::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    /// A string; any value is accepted and shown as text (defaults to `default` when absent).
    pub fn str_or(&self, key: &str, default: &str) -> String {
        self.values
            .get(key)
            .map_or_else(|| default.to_string(), ToString::to_string)
    }

    /// Fails on any key not in `known`, so a typo (`kk=5`) is an error, not a silent default.
    ///
    /// # Errors
    /// [`RouterError::InvalidParams`] naming the first unknown key and the accepted ones.
    pub fn expect_only(&self, known: &[&str]) -> Result<(), RouterError> {
        if let Some(k) = self.values.keys().find(|k| !known.contains(&k.as_str())) {
            let accepted = if known.is_empty() {
                "this router takes no parameters (besides seed)".to_string()
            } else {
                format!("accepted: {} (and seed)", known.join(", "))
            };
            return Err(RouterError::InvalidParams(format!(
                "unknown parameter `{k}`; {accepted}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_values() {
        let p = Params::parse("k=5, p=0.5,name=cos,flag=true,seed=7,q='3'", 0).unwrap();
        assert_eq!(p.seed(), 7);
        assert_eq!(p.usize_or("k", 1).unwrap(), 5);
        assert_eq!(p.f64_or("p", 0.0).unwrap(), 0.5);
        assert_eq!(p.f64_or("k", 0.0).unwrap(), 5.0);
        assert!(p.bool_or("flag", false).unwrap());
        assert_eq!(p.str_or("name", ""), "cos");
        assert_eq!(p.get("q"), Some(&ParamValue::Str("3".into())));
        assert_eq!(ParamValue::parse("nan"), ParamValue::Str("nan".into()));
        assert_eq!(ParamValue::parse("1e3"), ParamValue::Float(1000.0));
        assert_eq!(p.usize_or("absent", 9).unwrap(), 9);
        assert_eq!(p.to_string(), "flag=true,k=5,name=cos,p=0.5,q=3");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Params::parse("k", 0).is_err());
        assert!(Params::parse("=3", 0).is_err());
        assert!(Params::parse("k=1,k=2", 0).is_err());
        assert!(Params::parse("seed=-1", 0).is_err());
        let p = Params::parse("k=-1,kk=2", 0).unwrap();
        let e = p.usize_or("k", 5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameters: `k` must be a non-negative integer, got an integer `-1`"
        );
        let e = p.expect_only(&["k"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown parameter `kk`; accepted: k"),
            "{e}"
        );
    }
}
