"""Tabular estimators with the scikit-learn API: ``TabMClassifier`` and
``TabMRegressor`` (fastbp/tabular/tabm.py), on tables with numeric, categorical and
missing values (fastbp/tabular/_columns.py). Needs scikit-learn (and pandas for
DataFrames): ``pip install "fastbp[sklearn]"``."""
from __future__ import annotations

from fastbp.tabular.tabm import TabMClassifier, TabMRegressor

__all__ = ["TabMClassifier", "TabMRegressor"]
