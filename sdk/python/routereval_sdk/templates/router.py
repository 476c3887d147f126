"""template-router: a router for routereval-engine, written with routereval-sdk.

Edit `fit` and `route`, then:
    routereval-sdk check THIS_FILE.py                  # plain CPython, seconds
    routereval-sdk build THIS_FILE.py -o router.wasm   # the sandboxed component
    routereval-engine run --router knn --router best-on-train --router oracle --plugin router.wasm

What `fit` stores on `self` is there in `route` (one object per evaluation). The data are
Tensors the engine holds: hand them to the helpers (they run in the engine's native kernels),
or read them with `.values()` / `.row(i)` / `.tolist()` when you must (pure Python is slow on
big matrices: see the SDK's README). Raise InvalidParams / InvalidInput / FitError /
RouteError for a failure of that kind.
"""

from routereval_sdk import (
    InvalidInput,
    Router,
    Routing,
    argmax_rows,
    gather_mean,
    l2_normalise_rows,
    softmax_rows,
    top_k_dot,
)


class TemplateRouter(Router):
    # Shown in results.
    name = "template-router"
    # Every hyperparameter with its default; unknown keys are refused.
    defaults = {"k": 10}

    def fit(self, train, val):
        if len(train) == 0:
            raise InvalidInput("the training split is empty")
        self.embeddings = l2_normalise_rows(train.embeddings)
        self.scores = train.scores

    def route(self, queries):
        k = min(self.params.k, len(self.embeddings))
        neighbours = top_k_dot(l2_normalise_rows(queries.embeddings), self.embeddings, k)
        means = gather_mean(self.scores, neighbours)
        return Routing(softmax_rows(means), argmax_rows(means))
