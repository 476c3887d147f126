"""RouterEval's kNN router in Python: for each test query, the k training queries of highest
cosine similarity; each candidate's predicted correctness is the mean of its scores over
those neighbours. Choice: the argmax (first on ties); belief: the softmax of the means.

It gives the engine's built-in `knn` numbers. The matrices never become Python floats: the
neighbour search, the means and the softmax run in the engine's kernels, by handle.
"""

from routereval_sdk import (
    InvalidInput,
    InvalidParams,
    Router,
    Routing,
    argmax_rows,
    gather_mean,
    l2_normalise_rows,
    softmax_rows,
    top_k_dot,
)


class Knn(Router):
    name = "knn-py"
    defaults = {"k": 5}

    def __init__(self, params):
        super().__init__(params)
        if self.params.k < 1:
            raise InvalidParams("`k` must be at least 1")

    def fit(self, train, val):
        if len(train) == 0:
            raise InvalidInput("the training split is empty")
        if self.params.k > len(train):
            raise InvalidParams(f"`k` = {self.params.k} exceeds the {len(train)} training queries")
        self.embeddings = l2_normalise_rows(train.embeddings)
        self.scores = train.scores

    def route(self, queries):
        if queries.dim != self.embeddings.cols:
            raise InvalidInput(
                f"queries have {queries.dim}-d embeddings, the training split had {self.embeddings.cols}-d"
            )
        neighbours = top_k_dot(l2_normalise_rows(queries.embeddings), self.embeddings, self.params.k)
        means = gather_mean(self.scores, neighbours)
        return Routing(softmax_rows(means), argmax_rows(means))
