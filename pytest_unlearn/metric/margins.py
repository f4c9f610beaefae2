"""Margins from logits: ``m = z_y - logsumexp_{j != y} z_j``.

>>> import numpy as np
>>> margins(np.array([[2.0, 0.0, 0.0]]), np.array([0])).round(4)
array([1.3069])
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

_F64_MAX = float(np.finfo(np.float64).max)


def margins(logits: Any, labels: Any) -> Any:
    """Margin of the labelled class over the log-sum-exp of all other classes.

    ``logits`` is ``(..., points, classes)`` (any leading ensemble dims), ``labels`` is
    ``(points,)`` of ints in ``[0, classes)``; the result is ``(..., points)`` in float64, a
    numpy array for numpy input and a tensor on the logits' device for torch input (torch
    keeps autograd). Computed in float64 with the maximum subtracted before ``exp``, so
    huge finite logits neither overflow nor give +-inf; non-finite logits propagate (KLoM
    rejects them with a count).

    >>> import numpy as np
    >>> z = np.zeros((7, 5, 3))  # 7 models, 5 points, 3 classes
    >>> margins(z, np.zeros(5, dtype=int)).shape
    (7, 5)
    >>> float(margins(np.array([[1e30, 0.0]]), np.array([0]))[0])
    1e+30
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(logits, torch.Tensor):
        return _margins_torch(logits, labels)
    z = np.asarray(logits)
    if z.dtype.kind not in "fiu":
        raise ValueError(f"logits must be real numbers, got dtype {z.dtype}")
    lab = np.asarray(labels)
    _check(tuple(z.shape), tuple(lab.shape), lab.dtype.kind in "iu")
    if lab.size and (lab.min() < 0 or lab.max() >= z.shape[-1]):
        raise ValueError(
            f"labels must lie in [0, {z.shape[-1]}), got values in [{lab.min()}, {lab.max()}]"
        )
    work = z.astype(np.float64)  # always a fresh copy: the true class is masked in place
    idx = np.broadcast_to(lab.astype(np.intp).reshape(-1, 1), (*z.shape[:-1], 1))
    z_y = np.take_along_axis(work, idx, axis=-1)[..., 0]
    np.put_along_axis(work, idx, -np.inf, axis=-1)
    top = work.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # only non-finite logits reach inf - inf here
        work -= top
    np.exp(work, out=work)
    lse = top[..., 0] + np.log(work.sum(axis=-1))
    with np.errstate(over="ignore"):
        m = z_y - lse
    return _saturate(np, m, z_y, lse)


def _check(z_shape: tuple[int, ...], lab_shape: tuple[int, ...], lab_is_int: bool) -> None:
    if len(z_shape) < 2:
        raise ValueError(f"logits must be (..., points, classes), got shape {z_shape}")
    if z_shape[-1] < 2:
        raise ValueError(f"margins need at least 2 classes, logits have {z_shape[-1]}")
    if len(lab_shape) != 1 or lab_shape[0] != z_shape[-2]:
        raise ValueError(
            f"labels must be (points,) = ({z_shape[-2]},) to match logits {z_shape}, "
            f"got shape {lab_shape}"
        )
    if not lab_is_int:
        raise ValueError("labels must be integers")


def _saturate(xp: Any, m: Any, z_y: Any, lse: Any) -> Any:
    # z_y - lse overflows only for float64 logits beyond ~8.9e307 of opposite sign; keep
    # such margins at the largest finite value so they stay "finite logits, finite margin".
    overflow = xp.isinf(m) & xp.isfinite(z_y) & xp.isfinite(lse)
    if bool(overflow.any()):
        m = xp.where(overflow, xp.sign(m) * _F64_MAX, m)
    return m


def _margins_torch(logits: Any, labels: Any) -> Any:
    import torch

    if logits.is_complex() or logits.dtype == torch.bool:
        raise ValueError(f"logits must be real numbers, got dtype {logits.dtype}")
    lab = torch.as_tensor(labels, device=logits.device)
    is_int = not (lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool)
    _check(tuple(logits.shape), tuple(lab.shape), is_int)
    if lab.numel() and bool((lab.min() < 0) | (lab.max() >= logits.shape[-1])):
        raise ValueError(
            f"labels must lie in [0, {logits.shape[-1]}), got values in "
            f"[{int(lab.min())}, {int(lab.max())}]"
        )
    z = logits.to(torch.float64)
    idx = lab.to(torch.int64).reshape(-1, 1).expand(*z.shape[:-1], 1)
    z_y = z.gather(-1, idx).squeeze(-1)
    # Out-of-place scatter: never writes into the caller's tensor, keeps autograd intact.
    others = z.scatter(-1, idx, float("-inf"))
    lse = torch.logsumexp(others, dim=-1)  # subtracts the max internally
    return _saturate(torch, z_y - lse, z_y, lse)
