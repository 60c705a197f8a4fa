"""The paper's experiments on a user's recordings (``leakhunter study``): the segmentation
grid (long segments x short frames), the model comparison (the mel CNN against MFCC with a
random forest, an SVM, XGBoost), sensor-grouped k-fold cross-validation, cached features
and resumable runs.

After ``tune`` in the layers: a study trains and scores models as ``train`` and
``evaluate`` do, and spreads over machines through the same Optuna storage as ``tune``.
"""
