"""The lender's credit model: logistic regression on cash-flow features, exported to ONNX.

Trained with Newton's method (iteratively reweighted least squares) on
standardised features with a small L2 penalty, in numpy, so the demo needs no
machine-learning framework. The exported graph carries the standardisation,
so it takes the raw :data:`~cleanroom.cli.loan.features.FEATURES`::

    features[N,8] float32 -> score[N,1] float32     probability of repayment
                          -> decision[N,1] int64    1 approve, 0 decline
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from cleanroom.cli.loan.features import FEATURES

__all__ = ["CreditModel", "auc", "train_credit_model"]

_OPSET = 17
_IR_VERSION = 8


@dataclass(frozen=True)
class CreditModel:
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    bias: float
    threshold: float
    """Scores at or above it are approved."""

    def score(self, features: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Probability of repayment, computed in numpy (the reference for the ONNX graph)."""
        z = ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale) @ self.weights
        result: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-(z + self.bias)))
        return result

    def to_onnx(self) -> bytes:
        """The model as a serialised ONNX graph (opset 17), checked by ``onnx.checker``."""
        width = len(FEATURES)
        graph = helper.make_graph(
            nodes=[
                helper.make_node("Sub", ["features", "mean"], ["centred"]),
                helper.make_node("Div", ["centred", "scale"], ["standardised"]),
                helper.make_node("MatMul", ["standardised", "weights"], ["linear"]),
                helper.make_node("Add", ["linear", "bias"], ["logit"]),
                helper.make_node("Sigmoid", ["logit"], ["score"]),
                helper.make_node("GreaterOrEqual", ["score", "threshold"], ["approved"]),
                helper.make_node("Cast", ["approved"], ["decision"], to=TensorProto.INT64),
            ],
            name="CashFlowCredit",
            inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", width])],
            outputs=[
                helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
                helper.make_tensor_value_info("decision", TensorProto.INT64, ["N", 1]),
            ],
            initializer=[
                numpy_helper.from_array(self.mean.astype(np.float32), "mean"),
                numpy_helper.from_array(self.scale.astype(np.float32), "scale"),
                numpy_helper.from_array(
                    self.weights.reshape(width, 1).astype(np.float32), "weights"
                ),
                numpy_helper.from_array(np.array([self.bias], dtype=np.float32), "bias"),
                numpy_helper.from_array(np.array(self.threshold, dtype=np.float32), "threshold"),
            ],
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", _OPSET)],
            producer_name="cleanroom-loan-demo",
            doc_string="Cash-flow credit score: logistic regression on " + ", ".join(FEATURES),
        )
        model.ir_version = _IR_VERSION
        onnx.checker.check_model(model)
        serialised: bytes = model.SerializeToString()
        return serialised


def train_credit_model(
    features: npt.NDArray[np.floating],
    repaid: npt.NDArray[np.bool_],
    *,
    l2: float = 1.0,
    threshold: float = 0.6,
    iterations: int = 25,
) -> CreditModel:
    """Fit P(repaid | features) by Newton's method with an L2 penalty on the weights.

    Each step solves ``(XᵀWX + λI) Δ = Xᵀ(y - p) - λw`` with ``W = diag(p(1 - p))``;
    the penalty keeps the Hessian positive definite even on separable data.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(repaid, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or y.shape != (x.shape[0],):
        raise ValueError(f"need features[N,{len(FEATURES)}] and labels[N]")
    if y.min() == y.max():
        raise ValueError("the labels must contain both outcomes")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    design = np.hstack([(x - mean) / scale, np.ones((x.shape[0], 1))])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0  # the intercept is not shrunk
    theta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (y - p) - penalty * theta
        hessian = (design * (p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        theta += step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return CreditModel(
        mean=mean, scale=scale, weights=theta[:-1], bias=float(theta[-1]), threshold=threshold
    )


def auc(scores: npt.NDArray[np.floating], labels: npt.NDArray[np.bool_]) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(labels, dtype=bool).ravel()
    pos, neg = s[positive], s[~positive]
    if not len(pos) or not len(neg):
        raise ValueError("AUC needs both outcomes")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater) / (len(pos) * len(neg))
