//! The one error type a router returns.

use std::fmt;

/// What went wrong inside a router.
///
/// Every variant carries a human-readable message. The engine reports the variant as the
/// evaluation's error kind and the message verbatim, so say what was wrong and how to fix it.
/// The type is `#[non_exhaustive]`: new variants may be added in a minor SDK version.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterError {
    /// A parameter is unknown, has the wrong type or is out of range.
    InvalidParams(String),
    /// The data handed to the router cannot be used (wrong dimension, empty split, ...).
    InvalidInput(String),
    /// Training failed.
    Fit(String),
    /// Routing failed.
    Route(String),
    /// The router panicked; the message is the panic payload.
    Panic(String),
    /// Anything else.
    Other(String),
}

impl RouterError {
    /// A short, stable, snake_case name of the variant, used as `error.kind` in results.
    pub fn kind(&self) -> &'static str {
        match self {
            RouterError::InvalidParams(_) => "invalid_params",
            RouterError::InvalidInput(_) => "invalid_input",
            RouterError::Fit(_) => "fit_error",
            RouterError::Route(_) => "route_error",
            RouterError::Panic(_) => "panic",
            RouterError::Other(_) => "router_error",
        }
    }

    /// The [`RouterError::Panic`] a caught panic is: its payload's message (a `&str` or
    /// `String` payload; anything else reads "a panic without a message").
    ///
    /// ```
    /// use routereval_sdk::RouterError;
    /// let caught = std::panic::catch_unwind(|| panic!("index {} out of range", 3)).unwrap_err();
    /// assert_eq!(RouterError::from_panic(&*caught), RouterError::Panic("index 3 out of range".into()));
    /// ```
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> RouterError {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        RouterError::Panic(message)
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            RouterError::InvalidParams(m)
            | RouterError::InvalidInput(m)
            | RouterError::Fit(m)
            | RouterError::Route(m)
            | RouterError::Panic(m)
            | RouterError::Other(m) => m,
        }
    }
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            RouterError::InvalidParams(_) => "invalid parameters",
            RouterError::InvalidInput(_) => "invalid input",
            RouterError::Fit(_) => "fit failed",
            RouterError::Route(_) => "route failed",
            RouterError::Panic(_) => "router panicked",
            RouterError::Other(_) => "router error",
        };
        write!(f, "{what}: {}", self.message())
    }
}

impl std::error::Error for RouterError {}
