"""Deep-learning fusion: a small additive neural network over everything the pool knows.

Inputs per (user, item), all read from the pool: for every fused base model its z-score, its
reciprocal rank and whether it had signal for the user (``avail``); the context columns of the
run's modalities (only those of ``FitInput.context``); and, when a content context column is used,
a learnt embedding of the item's category (``item_category``, 0: unknown; a category not seen in
training maps to a zero vector). Numeric inputs are standardised with the training rows' mean and
std (constant columns: std 1) and clipped to ±``CLIP``.

The network is additive, so each modality's contribution is exact::

    logit = f_behavior(x_behavior, c) + f_content(x_content, c) + f_social(x_social, c) + f_cross(x)

``x_g`` are the features of the base models of modality group g (``group_of``) plus that
modality's context columns (and, for content, the category embedding), ``c`` the behaviour
context (user activity, item popularity), and ``f_cross`` a small subnet over every input: the
cross-modal interactions (a base model whose own group is ``cross`` feeds only this subnet).
Each subnet is one ReLU hidden layer and a linear output. A subnet exists only when its modality
has a base model or a context column in the fit that varies over the training rows (a modality with
no data at the origin has none, and contributes nothing). Published contributions are centred:
``contribution_<g> = f_g - mean_g`` (the mean of f_g over the training rows), and
``contribution_context`` is the sum of those means (the network's overall bias); they sum to the
score, which is the logit, to float precision.

Trained on the validation folds' pools only (like stacking): every positive and sampled negatives
(``sample_rows``), binary cross-entropy plus L2 on the kernels, Adam, early stopping on a seeded
random validation split (the best epoch's weights are kept); deterministic for a given seed.

The fit is an ensemble of ``members`` such networks, each with its own seed: its own sample of negatives,
initial weights, batch order and early-stopping split. The score is the mean of the members' logits and each
contribution the mean of theirs, so the contributions still sum to the score. One network's holdout NDCG moved
by up to a third between seeds on the same pools; three were better on the folds of every world measured and on
the holdouts of three synthetic worlds, and within the noise of one Ciao date's holdout (``bench/NOTES.md``,
"Deep fusion: one network or three"). The network and its traced training epoch are made once per architecture
in a process and reset for every fit (weights drawn from the seed, optimiser state zeroed), so a run's
leave-one-fold-out fits share one trace; the category embedding's size is rounded up to a power of two to keep
their architecture alike. TensorFlow is imported only by ``fit``; the fit is plain JSON (under ``members``, each
network's spec and every layer's weights as nested lists under ``layers``; no ``weights`` key, which means the
weighted sum's per-model weights in ``metrics.json``), and ``scores`` and ``contributions`` run a numpy forward
pass.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import catalogue
from fusion_tasks.fusion.base import FitInput, FusionMethod, empty_contributions, group_of
from fusion_tasks.fusion.candidates import CONTEXT_FEATURES
from fusion_tasks.fusion.stacking import sampled_frame

MODEL_FEATURES = ("z", "rr", "avail")  # per model: <feature>:<model>
MODALITIES = catalogue.modalities()  # one subnet per modality whose models are fused
BEHAVIOUR_CONTEXT = tuple(c for c, m in CONTEXT_FEATURES.items() if m == "behavior")
CLIP = 8.0


class DeepFusion(FusionMethod):
    name = "deep_fusion"
    simplicity = 2

    def __init__(self, hidden: int = 24, cross_hidden: int = 16, embedding_dim: int = 4,
                 negatives_per_positive: int = 30, max_rows: int = 30_000, epochs: int = 12, patience: int = 2,
                 batch_size: int = 1024,
                 learning_rate: float = 0.005, l2: float = 1e-5, validation_share: float = 0.15,
                 members: int = 3, verify_forward: bool = False) -> None:
        if members < 1:
            raise ValueError(f"deep fusion needs at least one member network, got members={members}")
        self.hidden = hidden
        self.cross_hidden = cross_hidden
        self.embedding_dim = embedding_dim
        self.negatives_per_positive = negatives_per_positive
        self.max_rows = max_rows  # rows sampled from the folds at most: the fit's cost stays bounded
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.validation_share = validation_share
        self.members = members
        self.verify_forward = verify_forward  # compare Keras' and the numpy forward on the training rows

    def fit(self, data: FitInput) -> dict[str, Any]:
        gaps: list[float] = []  # each member's largest gap between the Keras and the numpy forward
        members = [self._fit_member(data, np.random.default_rng([data.seed, m]), gaps)
                   for m in range(self.members)]
        if self.verify_forward:
            self.forward_gap_ = max(gaps, default=0.0)
        return {"models": list(data.models), "context": list(data.context), "columns": members[0]["columns"],
                "members": members, "training_rows": sum(m["training_rows"] for m in members),
                "positives": sum(m["positives"] for m in members),
                "epochs_trained": [m["epochs_trained"] for m in members]}

    def _fit_member(self, data: FitInput, rng: np.random.Generator, gaps: list[float]) -> dict[str, Any]:
        """One network of the ensemble, from its own sample of the fold rows and its own initial weights."""
        train = sampled_frame(data, self.negatives_per_positive, rng, self.max_rows)
        y = train["label"].to_numpy().astype("float32")
        spec: dict[str, Any] = {"models": list(data.models), "context": list(data.context)}
        raw, columns = features(train, spec)
        mean, std = raw.mean(axis=0), raw.std(axis=0)
        varies = std > 1e-9
        std[~varies] = 1.0
        categories = _categories(train) if _uses_category(spec) else None
        n_categories = int(categories.max()) + 1 if categories is not None and len(categories) else 1
        n_categories = 1 << (n_categories - 1).bit_length()  # a power of two: fits of one run share a network
        spec.update(columns=columns, mean=mean.tolist(), std=std.tolist(),
                    architecture=_architecture(spec, columns, varies, self, n_categories))
        x = _standardise(raw, spec)
        arch = spec["architecture"]
        subnets = arch["subnets"]
        if not subnets or not len(y):  # nothing to learn from: a constant score
            prior = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if len(y) else 0.5
            return {**spec, "layers": {}, "offsets": {}, "bias": float(np.log(prior / (1 - prior))),
                    "training_rows": int(len(y)), "positives": int(y.sum()), "epochs_trained": 0}

        import tensorflow as tf  # heavy: imported only when the method is fitted

        _single_threaded(tf)
        trainer = _trainer(tf, arch, self)
        trainer.reset(np.random.default_rng(rng.integers(2**63)))
        model = trainer.model
        inputs = _keras_inputs(x, categories, arch)
        epochs_trained = self._train(trainer, inputs, y, rng)
        weights = _export_weights(model, arch)
        if categories is not None:  # categories never seen in training: a zero embedding
            seen = np.zeros(n_categories, dtype=bool)
            seen[categories] = True
            table = np.array(weights["category_embedding"]["embeddings"])
            table[~seen] = 0.0
            weights["category_embedding"]["embeddings"] = table.tolist()
        fitted = {**spec, "layers": weights, "offsets": {}, "bias": 0.0}
        outputs = _subnet_outputs(fitted, x, categories)
        if not all(np.isfinite(v).all() for v in outputs.values()):
            raise ValueError("deep fusion training diverged: non-finite outputs on the training rows")
        fitted["offsets"] = {g: float(v.mean()) for g, v in outputs.items()}
        fitted["bias"] = float(sum(fitted["offsets"].values()))
        fitted.update(training_rows=int(len(y)), positives=int(y.sum()), epochs_trained=epochs_trained)
        if self.verify_forward:
            keras_logits = model([tf.constant(a) for a in inputs], training=False).numpy().ravel().astype("float64")
            numpy_logits = sum(outputs.values())
            gap = float(np.max(np.abs(keras_logits - numpy_logits)))
            gaps.append(gap)
            if not gap < 1e-4:
                raise AssertionError(f"numpy forward differs from Keras by {gap}")
        return fitted

    def _train(self, trainer: _Trainer, inputs: list[np.ndarray], y: np.ndarray, rng: np.random.Generator) -> int:
        """Adam on binary cross-entropy (plus L2 on the kernels), a step per batch; early stopping
        on a random validation share of the rows, keeping the best epoch's weights. Returns the number of
        epochs run."""
        order = rng.permutation(len(y))
        n_val = int(round(len(y) * self.validation_share)) if len(y) >= 50 else 0
        val, rows = order[:n_val], order[n_val:]
        if len(np.unique(y[val])) < 2:  # too few rows to tell: train on all, for every epoch
            val, rows = val[:0], order
        train_x, train_y = [a[rows] for a in inputs], y[rows][:, None]
        val_x, val_y = [a[val] for a in inputs], y[val][:, None]
        model = trainer.model
        best, best_weights, waited, epochs_run = np.inf, None, 0, 0
        while epochs_run < self.epochs:
            epochs_run += 1
            trainer.epoch(*train_x, train_y, rng.permutation(len(rows)).astype("int32"))
            if not len(val):
                continue
            loss = float(trainer.loss(*val_x, val_y))
            if loss < best - 1e-6:
                best, best_weights, waited = loss, model.get_weights(), 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_weights is not None:
            model.set_weights(best_weights)
        return epochs_run

    def scores(self, fitted: dict[str, Any], pool: pd.DataFrame) -> np.ndarray:
        return self.contributions(fitted, pool).to_numpy(dtype="float64").sum(axis=1)

    def scores_and_contributions(self, fitted: dict[str, Any], pool: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        parts = self.contributions(fitted, pool)  # the numpy forward of every member, once
        return parts.to_numpy(dtype="float64").sum(axis=1), parts

    def contributions(self, fitted: dict[str, Any], pool: pd.DataFrame) -> pd.DataFrame:
        members = fitted.get("members", [fitted])  # a fit of one network, as written before ensembles
        x = _checked_features(pool, fitted)
        out = empty_contributions(pool)
        for member in members:
            categories = _categories(pool) if member["architecture"]["category_embedding"] else None
            for group, value in _subnet_outputs(member, _standardise(x, member), categories).items():
                out[f"contribution_{group}"] += (value - member["offsets"][group]) / len(members)
            out["contribution_context"] += member["bias"] / len(members)
        return out


_TRAINERS: dict[str, _Trainer] = {}


def _trainer(tf, arch: dict[str, Any], method: DeepFusion) -> _Trainer:
    """One network and traced training epoch per architecture in a process: tracing costs more than the
    training of such a small network, and the leave-one-fold-out fits of a run share their architecture."""
    key = json.dumps([arch, method.learning_rate, method.l2, method.batch_size], sort_keys=True)
    if key not in _TRAINERS:
        if not _TRAINERS:  # once per process: enabling it again drops every traced function
            tf.config.experimental.enable_op_determinism()
        _TRAINERS[key] = _Trainer(tf, arch, method.learning_rate, method.l2, method.batch_size)
    return _TRAINERS[key]


class _Trainer:
    """The Keras model of an architecture, its Adam optimizer, and the traced training epoch and validation
    loss (inputs as arguments, so one trace serves every fit). ``reset`` starts a fit from fresh weights."""

    def __init__(self, tf, arch: dict[str, Any], learning_rate: float, l2: float, batch_size: int) -> None:
        self.model = model = _keras_model(tf, arch)
        self.optimizer = optimizer = tf.keras.optimizers.Adam(learning_rate)
        optimizer.build(model.trainable_variables)
        kernels = [layer.kernel for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
        loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)
        signature = [tf.TensorSpec([None, len(s["inputs"])], tf.float32) for s in arch["subnets"]]
        if arch["category_embedding"]:
            signature.append(tf.TensorSpec([None], tf.int32))
        signature.append(tf.TensorSpec([None, 1], tf.float32))

        # A graph loop written out (no AutoGraph, which needs the source file as it was imported)
        @tf.function(input_signature=[*signature, tf.TensorSpec([None], tf.int32)], autograph=False)
        def epoch(*args):  # one call per epoch: a step per batch of ``order``
            xs, y, order = list(args[:-2]), args[-2], args[-1]

            def step(start):
                batch = order[start:start + batch_size]
                with tf.GradientTape() as tape:
                    loss = loss_fn(tf.gather(y, batch), model([tf.gather(a, batch) for a in xs], training=True))
                    loss += l2 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
                optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                              model.trainable_variables, strict=True))
                # the next step starts after this one's updates (the loop counter alone does not wait for them)
                with tf.control_dependencies([tf.identity(optimizer.iterations)]):
                    return (start + batch_size,)

            tf.while_loop(lambda start: start < tf.shape(order)[0], step, (tf.constant(0),), parallel_iterations=1)

        @tf.function(input_signature=signature, autograph=False)
        def loss(*args):
            return loss_fn(args[-1], model(list(args[:-1]), training=False))

        self.epoch, self.loss = epoch, loss

    def reset(self, rng: np.random.Generator) -> None:
        """Initial weights drawn from ``rng`` (Glorot-uniform kernels, zero biases, N(0, 0.05²) category
        embeddings, as Keras would) and a fresh optimizer state (its learning rate kept)."""
        weights = []
        for variable in self.model.weights:
            shape = tuple(variable.shape)
            if variable.name == "kernel":
                limit = np.sqrt(6.0 / (shape[0] + shape[1]))
                weights.append(rng.uniform(-limit, limit, shape))
            elif variable.name == "embeddings":
                weights.append(rng.normal(0.0, 0.05, shape))
            else:
                weights.append(np.zeros(shape))
        self.model.set_weights([w.astype("float32") for w in weights])
        for variable in self.optimizer.variables:
            if not variable.path.endswith("learning_rate"):
                variable.assign(np.zeros(tuple(variable.shape), dtype=variable.dtype))


def _single_threaded(tf) -> None:
    """One TensorFlow thread: the network is small (threads cost more than they save), and float
    sums in one order make refits in one process bit-identical. Only possible before TensorFlow's
    first operation in the process; later calls keep whatever was set first."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def features(pool: pd.DataFrame, spec: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The raw numeric inputs (models' z, reciprocal rank, availability; context) and their names."""
    columns, values = [], []
    for m in spec["models"]:
        columns += [f"{feature}:{m}" for feature in MODEL_FEATURES]
        values += [pool[f"z_{m}"].to_numpy(dtype="float64"),
                   1.0 / np.maximum(pool[f"rank_{m}"].to_numpy(dtype="float64"), 1.0),
                   pool[f"avail_{m}"].to_numpy(dtype="float64")]
    for c in spec["context"]:
        columns.append(c)
        values.append(pool[c].to_numpy(dtype="float64"))
    x = np.column_stack(values) if values else np.zeros((len(pool), 0))
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), columns


def _checked_features(pool: pd.DataFrame, fitted: dict[str, Any]) -> np.ndarray:
    x, columns = features(pool, fitted)
    if columns != fitted["columns"]:
        raise ValueError(f"deep fusion was fitted on {fitted['columns']}, pool has {columns}")
    return x


def _standardise(x: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    return np.clip((x - np.array(spec["mean"])) / np.array(spec["std"]), -CLIP, CLIP)


def _uses_category(spec: dict[str, Any]) -> bool:
    return any(CONTEXT_FEATURES.get(c) == "content" for c in spec["context"])


def _categories(pool: pd.DataFrame) -> np.ndarray:
    if "item_category" not in pool:
        return np.zeros(len(pool), dtype="int64")
    return np.maximum(np.nan_to_num(pool["item_category"].to_numpy(dtype="float64")), 0).astype("int64")


def _column_group(column: str) -> str:
    feature, _, model = column.partition(":")
    return group_of(model) if feature in MODEL_FEATURES and model else CONTEXT_FEATURES[column]


def _architecture(spec: dict[str, Any], columns: list[str], varies: np.ndarray, method: DeepFusion,
                  n_categories: int) -> dict[str, Any]:
    """Which input columns (indices) and whether the category embedding feed each subnet.

    A modality gets a subnet only when one of its own columns varies over the training rows: one whose
    data is absent at this origin (every column constant) would otherwise learn from the behaviour
    context alone, and behaviour's signal would be published as that modality's contribution. Its
    constant columns (nothing to learn from; their kernel rows would stay at their random initial
    weights) are left out of its inputs too; the cross subnet still reads every column."""
    groups = [_column_group(c) for c in columns]
    embed = _uses_category(spec)
    behaviour_context = [j for j, c in enumerate(columns) if c in BEHAVIOUR_CONTEXT]
    subnets = []
    for g in MODALITIES:
        own = [j for j, group in enumerate(groups) if group == g and varies[j]]
        if own:
            inputs = sorted(set(own) | set(behaviour_context))
            subnets.append({"group": g, "inputs": inputs, "category": embed and g == "content",
                            "hidden": method.hidden})
    if columns:
        subnets.append({"group": "cross", "inputs": list(range(len(columns))), "category": embed,
                        "hidden": method.cross_hidden})
    return {"subnets": subnets, "activation": "relu",
            "category_embedding": {"n_categories": n_categories, "dim": method.embedding_dim} if embed else None}


def _keras_inputs(x: np.ndarray, categories: np.ndarray | None, arch: dict[str, Any]) -> list[np.ndarray]:
    inputs = [x[:, s["inputs"]].astype("float32") for s in arch["subnets"]]
    if arch["category_embedding"]:
        inputs.append(categories.astype("int32"))
    return inputs


def _keras_model(tf, arch: dict[str, Any]):
    """The additive network: one input per subnet (its columns) plus the item category."""
    layers = tf.keras.layers
    inputs = [layers.Input(shape=(len(s["inputs"]),), name=f"{s['group']}_x") for s in arch["subnets"]]
    embedded = None
    if arch["category_embedding"]:
        category = layers.Input(shape=(), dtype="int32", name="item_category")
        inputs.append(category)
        spec = arch["category_embedding"]
        embedded = layers.Embedding(spec["n_categories"], spec["dim"], name="category_embedding",
                                    embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.05))(category)
    outputs = []
    for s, x in zip(arch["subnets"], inputs, strict=False):
        h = layers.Concatenate(name=f"{s['group']}_concat")([x, embedded]) if s["category"] else x
        h = layers.Dense(s["hidden"], activation="relu", name=f"{s['group']}_hidden")(h)
        outputs.append(layers.Dense(1, name=f"{s['group']}_out")(h))
    logit = layers.Add(name="logit")(outputs) if len(outputs) > 1 else outputs[0]
    return tf.keras.Model(inputs, logit)


def _export_weights(model, arch: dict[str, Any]) -> dict[str, dict[str, list]]:
    names = [f"{s['group']}_{part}" for s in arch["subnets"] for part in ("hidden", "out")]
    out = {}
    for name in names:
        kernel, bias = model.get_layer(name).get_weights()
        out[name] = {"kernel": kernel.astype("float64").tolist(), "bias": bias.astype("float64").tolist()}
    if arch["category_embedding"]:
        table = model.get_layer("category_embedding").get_weights()[0]
        out["category_embedding"] = {"embeddings": table.astype("float64").tolist()}
    return out


def _subnet_outputs(fitted: dict[str, Any], x: np.ndarray, categories: np.ndarray | None) -> dict[str, np.ndarray]:
    """Each subnet's uncentred output f_g per row (numpy forward of the fitted weights)."""
    arch, weights = fitted["architecture"], fitted["layers"]
    embedded = None
    if arch["category_embedding"]:
        table = np.array(weights["category_embedding"]["embeddings"], dtype="float64")
        codes = np.where(categories < len(table), categories, 0)
        embedded = np.where((categories < len(table))[:, None], table[codes], 0.0)
    out = {}
    for s in arch["subnets"]:
        g = s["group"]
        h = x[:, s["inputs"]]
        if s["category"]:
            h = np.concatenate([h, embedded], axis=1)
        hidden, last = weights[f"{g}_hidden"], weights[f"{g}_out"]
        h = np.maximum(h @ np.array(hidden["kernel"]) + np.array(hidden["bias"]), 0.0)
        out[g] = (h @ np.array(last["kernel"]) + np.array(last["bias"]))[:, 0]
    return out
