//! The routers the engine can run by name: the built-in baselines, plus any a program embedding
//! the engine registers.

use routereval_sdk::{About, Describe, Params, Queries, Router, RouterError, Routing, Split};

use crate::eval::bounds::BOUND_NAMES;

/// An object-safe router, as the engine drives it.
pub trait DynRouter: Send {
    /// See [`Router::fit`].
    ///
    /// # Errors
    /// As the router's.
    fn fit(&mut self, train: &Split<'_>, val: &Split<'_>) -> Result<(), RouterError>;
    /// See [`Router::route`].
    ///
    /// # Errors
    /// As the router's.
    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError>;
}

impl<R: Router + Send> DynRouter for R {
    fn fit(&mut self, train: &Split<'_>, val: &Split<'_>) -> Result<(), RouterError> {
        Router::fit(self, train, val)
    }
    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        Router::route(self, queries)
    }
}

/// Builds a router from its parameters.
pub type Factory = fn(&Params) -> Result<Box<dyn DynRouter>, RouterError>;

fn factory<R: Router + Send + 'static>(p: &Params) -> Result<Box<dyn DynRouter>, RouterError> {
    Ok(Box::new(R::new(p)?))
}

/// One router the engine knows by name.
#[derive(Clone, Debug)]
pub struct RouterInfo {
    /// The name used with `--router`.
    pub name: String,
    /// One line on what it does.
    pub summary: String,
    /// Its parameters and their defaults, one line.
    pub params: String,
    /// Builds it.
    pub factory: Factory,
    /// Its card, when it has one: each parameter's default and meaning.
    pub about: Option<About>,
    /// Whether a run without `--router` includes it (routers that take minutes per pool with
    /// their defaults, such as MLPR, are run only when asked for).
    pub in_default_run: bool,
}

/// The routers available by name.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    routers: Vec<RouterInfo>,
}

/// Whether `name` can name a router: letters, digits, `-`, `_` and `.`, not empty.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The built-in routers.
    pub fn builtin() -> Self {
        let mut r = Registry::new();
        // Each router's name, summary and parameters come from its crate's card.
        r.register_described::<routereval_plugin_knn::Knn>();
        r.register_described::<routereval_plugin_best_on_train::BestOnTrain>();
        r.register_described::<routereval_plugin_cluster::Cluster>();
        r.register_described::<routereval_plugin_linear::Linear>();
        r.register_described::<routereval_plugin_logreg::LogReg>();
        r.register_described::<routereval_plugin_mf::Mf>();
        r.register_described::<routereval_plugin_mlp::Mlp>();
        r.register_described::<routereval_plugin_mlc::Mlc>();
        r.set_in_default_run("mlp", false);
        // Needs a model directory (model=DIR) and fine-tunes an encoder: minutes to hours.
        r.set_in_default_run("mlc", false);
        // About a third of a second per pool: it would take the default run past its 3 s.
        r.set_in_default_run("logreg", false);
        r.set_in_default_run("mf", false);
        r
    }

    /// Includes or leaves out the router `name` from runs without `--router` (no effect when
    /// there is no such router).
    pub fn set_in_default_run(&mut self, name: &str, yes: bool) {
        if let Some(r) = self.routers.iter_mut().find(|r| r.name == name) {
            r.in_default_run = yes;
        }
    }

    /// Adds a router under `name`.
    ///
    /// # Errors
    /// When the name is taken, reserved for a bound, or not made of letters, digits, `-`, `_`
    /// and `.`.
    pub fn register<R: Router + Send + 'static>(
        &mut self,
        name: &str,
        summary: &str,
        params: &str,
    ) -> Result<(), String> {
        if !is_valid_name(name) {
            return Err(format!(
                "router name `{name}` must be letters, digits, `-`, `_` or `.`"
            ));
        }
        if BOUND_NAMES.contains(&name) || self.get(name).is_some() {
            return Err(format!("router name `{name}` is already taken"));
        }
        self.routers.push(RouterInfo {
            name: name.to_string(),
            summary: summary.to_string(),
            params: params.to_string(),
            factory: factory::<R>,
            about: None,
            in_default_run: true,
        });
        Ok(())
    }

    /// Adds a router under the name its card ([`Describe`]) gives, with the card's summary and
    /// parameters. For the built-in routers, whose names are known to be valid and distinct.
    ///
    /// # Panics
    /// When the card's name is taken or invalid (a programming error).
    pub fn register_described<R: Router + Describe + Send + 'static>(&mut self) {
        let about = R::ABOUT;
        self.register::<R>(about.name, about.summary, &about.params_line())
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(info) = self.routers.last_mut() {
            info.about = Some(about);
        }
    }

    /// The router called `name`.
    pub fn get(&self, name: &str) -> Option<&RouterInfo> {
        self.routers.iter().find(|r| r.name == name)
    }

    /// All routers, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &RouterInfo> {
        self.routers.iter()
    }
}
