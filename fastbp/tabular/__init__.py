"""Tabular estimators with the scikit-learn API: ``TabMClassifier`` and
``TabMRegressor`` (fastbp/tabular/tabm.py), ``RealMLPClassifier`` and
``RealMLPRegressor`` (fastbp/tabular/realmlp.py), on tables with numeric, categorical
and missing values (fastbp/tabular/_columns.py); what they share is in
fastbp/tabular/_base.py. Needs scikit-learn (and pandas for DataFrames):
``pip install "fastbp[sklearn]"``."""
from __future__ import annotations

from fastbp.tabular.realmlp import RealMLPClassifier, RealMLPRegressor
from fastbp.tabular.tabm import TabMClassifier, TabMRegressor

__all__ = ["TabMClassifier", "TabMRegressor", "RealMLPClassifier", "RealMLPRegressor"]

#: the estimators by class name (what a saved file's "estimator" names)
ESTIMATORS = {cls.__name__: cls for cls in (TabMClassifier, TabMRegressor, RealMLPClassifier,
                                            RealMLPRegressor)}
