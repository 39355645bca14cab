"""``class_weight`` of fastbp.sklearn.MLPClassifier: checking it and turning it into
per-sample weights that multiply the sample weights.

The forms are scikit-learn's (its forests' for multilabel targets):

- ``None``: no class weights.
- ``{class: weight}`` (single-output targets): a class missing from the dict has weight 1.
- a list of one dict per column (multilabel indicator targets), each keyed by that
  column's labels 0 and 1; a sample's weight is the product over its columns.
- ``"balanced"``: ``compute_class_weight("balanced", ...)`` of the fitted data, i.e.
  ``n_samples / (n_classes · bincount(y))``, per column for multilabel targets. With
  sample weights the counts are weighted (scikit-learn 1.9's forests and
  LogisticRegression pass ``sample_weight`` to ``compute_class_weight`` too), so each
  class then carries the same total weight.

The scikit-learn functions compute "balanced"; a dict is a plain lookup, done here so
that labels are compared as they are (scikit-learn's dict branch turns numeric-looking
labels into ints first).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.class_weight import (  # type: ignore[import-untyped, unused-ignore]
    compute_class_weight)

from fastbp import _validation as check

__all__ = ["check_class_weight", "sample_class_weights"]

#: the labels of one column of a multilabel indicator target
_INDICATOR_LABELS = (0, 1)


def _check_dict(d: Any, known: list[Any], name: str) -> None:
    """A dict whose keys are all in ``known`` and whose values are finite reals >= 0."""
    if not isinstance(d, dict):
        raise TypeError(f"{name} must be a dict {{class: weight}}, got {type(d).__name__}")
    known_set = set(known)
    unknown = [k for k in d if k not in known_set]
    if unknown:
        raise ValueError(f"{name} has classes {unknown} that are not among the estimator's "
                         f"classes {known}")
    for key, value in d.items():
        check.finite_scalar(value, f"{name}[{key!r}]", low=0.0)


def check_class_weight(class_weight: Any, classes: np.ndarray, multilabel: bool) -> None:
    """Raise a TypeError/ValueError naming class_weight unless it fits these classes
    (``classes``: the estimator's ``classes_``; for multilabel targets the column indices)."""
    if class_weight is None or (isinstance(class_weight, str) and class_weight == "balanced"):
        return
    if isinstance(class_weight, dict):
        if multilabel:
            raise ValueError("class_weight for a multilabel target must be 'balanced' or a "
                             f"list of one dict per column ({len(classes)} columns), got a dict")
        _check_dict(class_weight, np.asarray(classes).tolist(), "class_weight")
        return
    if isinstance(class_weight, list):
        if not multilabel:
            raise ValueError("class_weight as a list of dicts is for multilabel targets (one "
                             "dict per column); for this target pass a dict {class: weight}")
        if len(class_weight) != len(classes):
            raise ValueError(f"class_weight must hold one dict per column of the multilabel "
                             f"target ({len(classes)}), got {len(class_weight)}")
        for j, d in enumerate(class_weight):
            _check_dict(d, list(_INDICATOR_LABELS), f"class_weight[{j}]")
        return
    raise TypeError("class_weight must be None, 'balanced', a dict {class: weight} or (for "
                    f"multilabel targets) a list of dicts, got {class_weight!r}")


def _balanced(labels: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """Per sample, scikit-learn's 'balanced' weight of its label (as compute_sample_weight
    computes it: the classes present in ``labels``)."""
    present, index = np.unique(labels, return_inverse=True)
    if sample_weight is not None:
        totals = np.bincount(index.ravel(), weights=sample_weight, minlength=len(present))
        if not np.all(totals > 0):   # its weight would be Σw / 0
            raise ValueError("class_weight='balanced' needs a positive total sample_weight "
                             "in every class present in y; a class has a total weight of 0")
        per_class = compute_class_weight("balanced", classes=present, y=labels,
                                         sample_weight=sample_weight)
    else:
        per_class = compute_class_weight("balanced", classes=present, y=labels)
    return np.asarray(per_class, dtype=np.float64)[np.searchsorted(present, labels)]


def _lookup(d: dict, labels: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Per sample, ``d``'s weight of its class (1 for classes not in d); ``labels`` are
    indices into ``classes``."""
    per_class = np.array([float(d.get(c, 1.0)) for c in classes], dtype=np.float64)
    return per_class[labels]


def sample_class_weights(class_weight: Any, Y: np.ndarray, classes: np.ndarray,
                         multilabel: bool, sample_weight: np.ndarray | None) -> np.ndarray:
    """The per-sample class weights (float64, (n_samples,)) for a checked class_weight
    (not None). ``Y``: the label-binarized target (n_samples, n_columns); ``sample_weight``
    only enters "balanced" (its weighted class counts)."""
    Y = np.asarray(Y)
    if multilabel:
        columns = Y.astype(np.intp)
        if class_weight == "balanced":
            factors = [_balanced(columns[:, j], sample_weight) for j in range(columns.shape[1])]
        else:
            factors = [_lookup(d, columns[:, j], list(_INDICATOR_LABELS))
                       for j, d in enumerate(class_weight)]
        # as compute_sample_weight: the product over the columns
        return np.prod(factors, axis=0, dtype=np.float64)
    # one column: binary (or a single class), else one-hot rows
    labels = (Y[:, 0] if Y.shape[1] == 1 else Y.argmax(axis=1)).astype(np.intp)
    if class_weight == "balanced":
        return _balanced(labels, sample_weight)
    return _lookup(class_weight, labels, np.asarray(classes).tolist())
