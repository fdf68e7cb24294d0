"""An ensemble of table models as a B8 method: an experiment of issue 14 against the spread of
one recipe over training seeds (two seeds of the shipped recipe differ by 0.03 ARI on B8).

    python benchmarks/b8_tables.py --method table_ensemble:load \\
        --method-option checkpoints=builtin,runs/seed1.safetensors --out results/X.json

:class:`TableEnsemble` reads a table with each member and joins what they return: the row
embeddings side by side, each divided by its mean row norm (so that each member weighs the same
in the Euclidean geometry the clustering step uses), and the mean of the members' outlier
logits. It has the table learner's interface that `umeta.estimators` uses (``encode_table``,
``encode_rows``, ``standard_values``, ``clusters_on_values``), so `MetaClusterer` and
`MetaAnomalyDetector` run it unchanged; the rule for many clusters and the standardised values
are the first member's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from umeta.errors import UmetaError
from umeta.table_method import TableMethod


class TableEnsemble(nn.Module):
    """Table learners (each ``input_kind == "tables"``) read as one. Shapes: a table (N, D) ->
    embeddings (N, sum of the members' widths), logits (N,)."""

    input_kind = "tables"

    def __init__(self, members) -> None:
        super().__init__()
        members = list(members)
        if len(members) < 2 or any(getattr(m, "input_kind", None) != "tables" for m in members):
            raise UmetaError("an ensemble joins at least two table models")
        self.members = nn.ModuleList(members)

    def encode_table(self, x: Tensor, seed: int = 0):
        """A table x (N, D) -> (embeddings, logits, context): the context holds each member's
        own and the mean row norm of its embedding of this table, which new rows reuse."""
        outputs = [m.encode_table(x, seed) for m in self.members]
        scales = [o[0].norm(dim=-1).mean().clamp(min=1e-12) for o in outputs]
        z = torch.cat([o[0] / s for o, s in zip(outputs, scales)], -1)
        logit = torch.stack([o[1] for o in outputs]).mean(0)
        return z, logit, [(o[2], s) for o, s in zip(outputs, scales)]

    def encode_rows(self, x: Tensor, contexts):
        """Rows x (M, D) against the table's context -> (embeddings, logits), scaled as the
        table's own rows were."""
        outputs = [m.encode_rows(x, c) for m, (c, _) in zip(self.members, contexts)]
        z = torch.cat([o[0] / s for o, (_, s) in zip(outputs, contexts)], -1)
        return z, torch.stack([o[1] for o in outputs]).mean(0)

    def standard_values(self, x: Tensor, contexts) -> Tensor:
        return self.members[0].standard_values(x, contexts[0][0])

    def clusters_on_values(self, n_clusters: int | None) -> bool:
        return self.members[0].clusters_on_values(n_clusters)


def load(checkpoints: str, device: str = "cpu", seed: str | int = 0,
         algorithm: str = "auto") -> TableMethod:
    """B8's factory: ``checkpoints`` comma-separated (``builtin`` allowed). Its
    ``training_tables`` are every member's, so that B8 leaves out all of them."""
    paths = [p.strip() for p in checkpoints.split(",") if p.strip()]
    methods = [TableMethod(p, device, int(seed), algorithm) for p in paths]
    ensemble = methods[0]
    ensemble.learner = TableEnsemble([m.learner for m in methods])  # each on ``device``
    ensemble.training_tables = sorted({t for m in methods for t in m.training_tables})
    ensemble.training = f"ensemble of {len(methods)}: " + "; ".join(m.training for m in methods)
    return ensemble
