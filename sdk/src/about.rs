//! What a router says about itself, written once in its crate: its name, one line on what it
//! does, and its parameters with their defaults. `export_router!(MyRouter, about)` names the
//! plugin from it, the engine's registry and `routereval-engine routers` show it.

/// A router's card. See [`Describe`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct About {
    /// The name results show (letters, digits, `-`, `_`, `.`).
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Its parameters, in the order to show them.
    pub params: &'static [ParamDoc],
}

/// One parameter of a router: its key, its default as `key=value` would write it, and what it
/// means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamDoc {
    /// The key, as in `knn:k=7`.
    pub key: &'static str,
    /// The default, written as on the command line (`5`, `0.0001`, `true`).
    pub default: &'static str,
    /// What it means, one line.
    pub doc: &'static str,
}

impl About {
    /// The parameters with their defaults, one line: `k=5, iters=300`, or `none`.
    pub fn params_line(&self) -> String {
        if self.params.is_empty() {
            return "none".to_string();
        }
        self.params
            .iter()
            .map(|p| format!("{}={}", p.key, p.default))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The defaults as a parameter list, `k=5,iters=300` (what [`crate::Params::parse`] reads):
    /// building the router with it must mean the same as building it with no parameters.
    pub fn defaults_spec(&self) -> String {
        self.params
            .iter()
            .map(|p| format!("{}={}", p.key, p.default))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The parameter keys, for [`crate::Params::expect_only`].
    pub fn keys(&self) -> Vec<&'static str> {
        self.params.iter().map(|p| p.key).collect()
    }
}

/// A router that carries its card.
///
/// ```
/// use routereval_sdk::{About, Describe, ParamDoc};
/// struct Mine;
/// impl Describe for Mine {
///     const ABOUT: About = About {
///         name: "mine",
///         summary: "what it does, in one line",
///         params: &[ParamDoc { key: "k", default: "5", doc: "neighbours" }],
///     };
/// }
/// assert_eq!(Mine::ABOUT.params_line(), "k=5");
/// ```
pub trait Describe {
    /// The card.
    const ABOUT: About;
}
