"""Per-point KLoM: KL(unlearned || oracle) between binned margin ensembles.

Four modes share one chunked, vectorized pipeline (no Python loop over points):

``"default"``
    The oracle-anchored estimator of docs/klom.md: margins cast to float64, clipped to
    ``[-clip, clip]``; ``bins`` equal-width bins over the *oracles'* range ``[min(O), max(O)]``
    (``[lo - 0.5, hi + 0.5]`` when that range is a single value) with ``numpy.histogram``
    semantics, plus an underflow bin (``v < lo``) and an overflow bin (``v > hi``); then
    ``sum_{p > 0} p * log(p / max(q, eps))``. The method under test cannot move the bins: a
    member pinned far outside the oracles' range costs it mass in a bin where q is empty.
``"combined"``
    The same, but the bins span ``[min(U | O), max(U | O)]`` (``[lo, lo + 1]`` for a single
    value) and there are no outer bins: the estimator the published code's binning implies,
    without its defects. Kept for comparison; a method can widen its bins by pinning members
    far out, which is why it is not the default.
``"easydub"``
    EasyDUB's published ``binned_kl_divergence``: ``np.digitize`` binning over the combined
    range that drops every value equal to the top edge, then renormalizes over what is left.
``"dub"``
    data-unlearning-bench's ``compute_binned_KL_div``: the same binning, then
    ``scipy.stats.entropy`` semantics (q floored at ``eps``, then renormalized; NaN where
    p is empty).

The compat modes compute in the margins' own float dtype (float32 margins give float32 bin
edges, as the published code does), so they reproduce the published numbers bit for bit.

>>> import numpy as np
>>> u = np.zeros((4, 3)); o = np.ones((5, 3))
>>> klom(u, o).shape
(3,)
"""

from __future__ import annotations

import math
import operator
import sys
from typing import Any

import numpy as np

#: The floor on q: the default ``eps`` of :func:`klom`.
DEFAULT_EPS = 1e-5
#: The largest value KLoM takes at the default ``eps``: all of p where q is empty.
KLOM_MAX = math.log(1.0 / DEFAULT_EPS)

KLOM_MODES: tuple[str, ...] = ("default", "combined", "easydub", "dub")
#: The modes that count every value over float64 edges (the others reproduce published code).
_EXACT_MODES = ("default", "combined")

# Margin values (models x points, both ensembles together) handled per chunk. The numpy
# engine keeps ~25 bytes of workspace per value, so 2**17 values is ~3.3 MiB: small enough
# to stay cache-resident, large enough to amortize the per-call overhead of the ~15 numpy
# passes per chunk (2**16..2**18 measured within 5% of each other on the 2-CPU dev box).
_CHUNK_VALUES = 1 << 17
# GPU kernels want big launches; 2**24 values is ~400 MiB of workspace at most.
_CHUNK_VALUES_TORCH = 1 << 24


def klom(
    unlearned: Any,
    oracle: Any,
    *,
    mode: str = "default",
    bins: int = 20,
    eps: float = DEFAULT_EPS,
    clip: float = 100.0,
) -> Any:
    """Per-point KLoM of an unlearned ensemble against an oracle ensemble.

    ``unlearned`` is ``(n_unlearned_models, points)``, ``oracle`` is
    ``(n_oracle_models, points)``; the two ensembles may differ in size. numpy (or
    array-like) in gives a numpy float64 array of shape ``(points,)``; a torch tensor in gives
    a torch float64 tensor on the same device (CPU tensors share the numpy engine, other
    devices run the same algorithm in torch on that device).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> u = rng.normal(size=(8, 5)); o = rng.normal(size=(6, 5))
    >>> klom(u, o).shape
    (5,)
    >>> float(klom(u, u).max())
    0.0
    >>> far, farther = u.copy(), u.copy()  # one member beyond the oracles' range...
    >>> far[0], farther[0] = 1e2, 1e6
    >>> bool((klom(far, o) == klom(farther, o)).all())  # ...cannot move the bins: same score
    True

    Raises ``ValueError`` on malformed shapes, empty ensembles, non-finite margins,
    ``bins < 1``, ``eps <= 0``, ``clip <= 0`` or an unknown ``mode``.
    """
    bins, eps, clip = _check_params(mode, bins, eps, clip)
    if _is_torch(unlearned) or _is_torch(oracle):
        return _klom_torch_input(unlearned, oracle, mode, bins, eps, clip)
    u = _as_margin_array(unlearned, "unlearned")
    o = _as_margin_array(oracle, "oracle")
    _check_shapes(u.shape, o.shape)
    return _klom_numpy(u, o, mode, bins, eps, clip)


# ----------------------------------------------------------------------------- validation


def _check_params(mode: str, bins: Any, eps: Any, clip: Any) -> tuple[int, float, float]:
    if mode not in KLOM_MODES:
        valid = ", ".join(repr(m) for m in KLOM_MODES)
        raise ValueError(f"unknown KLoM mode {mode!r}; valid modes are {valid}")
    if isinstance(bins, bool):
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    try:
        n_bins = operator.index(bins)
    except TypeError:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}") from None
    if n_bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {n_bins}")
    eps_f, clip_f = float(eps), float(clip)
    if not (eps_f > 0 and math.isfinite(eps_f)):
        raise ValueError(f"eps must be a positive finite number (the floor on q), got {eps!r}")
    if not (clip_f > 0 and math.isfinite(clip_f)):
        raise ValueError(f"clip must be a positive finite number, got {clip!r}")
    return n_bins, eps_f, clip_f


def _as_margin_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise ValueError(
            f"{name} margins must be real numbers (float or int), got dtype {arr.dtype}"
        )
    return arr


def _check_shapes(u_shape: tuple[int, ...], o_shape: tuple[int, ...]) -> None:
    for name, shape in (("unlearned", u_shape), ("oracle", o_shape)):
        if len(shape) != 2:
            raise ValueError(
                f"{name} margins must be 2-D (models, points), got shape {tuple(shape)}"
            )
    for name, shape in (("unlearned", u_shape), ("oracle", o_shape)):
        if shape[0] == 0:
            raise ValueError(f"{name} ensemble is empty: shape {tuple(shape)} has 0 models")
        if shape[1] == 0:
            raise ValueError(f"{name} ensemble is empty: shape {tuple(shape)} has 0 points")
    if u_shape[1] != o_shape[1]:
        raise ValueError(
            "unlearned and oracle margins must cover the same points: unlearned has "
            f"{u_shape[1]} points (shape {tuple(u_shape)}), oracle has {o_shape[1]} "
            f"(shape {tuple(o_shape)})"
        )


def _non_finite_error(counts: dict[str, tuple[int, int, int, int]]) -> ValueError:
    """Build the error from ``{ensemble: (bad_models, models, bad_points, points)}``."""
    parts = [
        f"{name} ensemble has non-finite values in {bm} of {m} models and {bp} of {p} points"
        for name, (bm, m, bp, p) in counts.items()
        if bm
    ]
    return ValueError("non-finite margins (NaN or inf) are not allowed: " + "; ".join(parts))


def _raise_non_finite_numpy(u: np.ndarray, o: np.ndarray) -> None:
    counts = {}
    for name, x in (("unlearned", u), ("oracle", o)):
        bad = ~np.isfinite(x)
        counts[name] = (
            int(bad.any(axis=1).sum()),
            x.shape[0],
            int(bad.any(axis=0).sum()),
            x.shape[1],
        )
    raise _non_finite_error(counts)


# ------------------------------------------------------------------------- shared helpers


def _compat_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the published code would compute in: the margins' own float dtype."""
    return dtype if dtype.kind == "f" and dtype.itemsize <= 8 else np.dtype(np.float64)


def _linspace_rows(xp: Any, lo: Any, hi: Any, bins: int) -> Any:
    """Row-wise ``np.linspace(lo[i], hi[i], bins + 1)``, bit-identical to numpy's own.

    numpy evaluates ``arange * (delta / div) + start`` in the inputs' dtype and writes ``stop``
    into the last slot; when ``delta / div`` underflows to 0 it uses
    ``arange / div * delta + start`` instead. Same operations, same order, so every edge
    rounds exactly as in the per-point reference.
    """
    delta = hi - lo
    step = delta / bins
    ramp = xp.arange(bins + 1, dtype=lo.dtype, **_device_kw(xp, lo))
    edges = ramp[None, :] * step[:, None]
    zero = step == 0
    if bool(zero.any()):
        ramp_div = ramp / bins
        edges[zero] = ramp_div[None, :] * delta[zero][:, None]
    edges += lo[:, None]
    edges[:, -1] = hi
    return edges


def _device_kw(xp: Any, ref: Any) -> dict[str, Any]:
    return {} if xp is np else {"device": ref.device}


def _kl_from_counts(xp: Any, cu: Any, co: Any, mode: str, n_u: int, n_o: int, eps: float) -> Any:
    """Per-point KL from float64 bin counts ``(points, bins)`` for either backend."""
    if mode in _EXACT_MODES:
        # Every value is counted, so the ensemble sizes are the totals.
        p, q = cu / n_u, co / n_o
    else:
        # The published code divides by what survived the top-edge drop (0 -> all-zero p).
        tot_u, tot_o = cu.sum(1)[:, None], co.sum(1)[:, None]
        p = xp.where(tot_u > 0, cu / xp.where(tot_u > 0, tot_u, 1.0), 0.0)
        q = xp.where(tot_o > 0, co / xp.where(tot_o > 0, tot_o, 1.0), 0.0)
    has_p = p > 0
    # q floored only where p has mass (elsewhere it does not enter the sum).
    q_safe = xp.where(has_p, q.clip(min=eps), q)
    if mode == "dub":
        # scipy.stats.entropy renormalizes both vectors; p.sum() == 0 gives NaN (0/0).
        p_sum = p.sum(1)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            p = p / p_sum
        q_safe = q_safe / q_safe.sum(1)[:, None]
    # Substitute 1 where p is 0 so log() never sees 0/0; those terms are p * ... = 0.
    ratio = xp.where(has_p, p, 1.0) / xp.where(has_p, q_safe, 1.0)
    kl = (p * xp.log(ratio)).sum(1)
    if mode == "dub":
        kl = xp.where(p_sum[:, 0] > 0, kl, math.nan)
    return kl


def _chunk_points(n_models: int, n_points: int, budget: int) -> int:
    return max(1, min(n_points, budget // n_models))


# --------------------------------------------------------------------------- numpy engine


class _NumpyWorkspace:
    """Buffers reused across chunks: repeated large allocations cost page faults."""

    def __init__(self, n_rows: int, chunk: int, x_dtype: np.dtype, with_f: bool) -> None:
        size = n_rows * chunk
        self.n_rows = n_rows
        self.x = np.empty(size, dtype=x_dtype)
        self.f = np.empty(size if with_f else 0, dtype=np.float64)  # default mode only
        self.k = np.empty(size, dtype=np.intp)
        self.b = np.empty(size, dtype=bool)

    def views(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.n_rows * c
        shape = (self.n_rows, c)
        return (
            self.x[:n].reshape(shape),
            self.f[:n].reshape(shape) if self.f.size else self.f,
            self.k[:n].reshape(shape),
            self.b[:n].reshape(shape),
        )


def _klom_numpy(
    u: np.ndarray, o: np.ndarray, mode: str, bins: int, eps: float, clip: float
) -> np.ndarray:
    n_u, n_points = u.shape
    n_o = o.shape[0]
    chunk = _chunk_points(n_u + n_o, n_points, _CHUNK_VALUES)
    if mode in _EXACT_MODES:
        work = np.dtype(np.float64)
    else:
        work = _compat_dtype(np.result_type(u.dtype, o.dtype))
    ws = _NumpyWorkspace(n_u + n_o, chunk, work, with_f=mode in _EXACT_MODES)
    out = np.empty(n_points, dtype=np.float64)
    for start in range(0, n_points, chunk):
        stop = min(start + chunk, n_points)
        uc, oc = u[:, start:stop], o[:, start:stop]
        # Raw extremes serve twice: NaN/inf show up in them (min/max propagate both), and
        # clip/cast are monotone, so clip(cast(min)) is the min of the clipped margins.
        o_lo, o_hi = oc.min(axis=0), oc.max(axis=0)
        lo_raw = np.minimum(uc.min(axis=0), o_lo)
        hi_raw = np.maximum(uc.max(axis=0), o_hi)
        if not (np.isfinite(lo_raw).all() and np.isfinite(hi_raw).all()):
            _raise_non_finite_numpy(u, o)
        if mode == "default":
            cu, co = _anchored_counts_numpy(uc, oc, o_lo, o_hi, bins, clip, ws)
        elif mode == "combined":
            cu, co = _combined_counts_numpy(uc, oc, lo_raw, hi_raw, bins, clip, ws)
        else:
            cu, co = _digitize_counts_numpy(uc, oc, lo_raw, hi_raw, bins, clip, work, ws)
        out[start:stop] = _kl_from_counts(np, cu, co, mode, n_u, n_o, eps)
    return out


def _anchored_counts_numpy(
    uc: np.ndarray,
    oc: np.ndarray,
    o_lo_raw: np.ndarray,
    o_hi_raw: np.ndarray,
    bins: int,
    clip: float,
    ws: _NumpyWorkspace,
) -> tuple[np.ndarray, np.ndarray]:
    """Counts in ``bins + 2`` bins per point: underflow, ``numpy.histogram(values, bins,
    range=(lo, hi))`` over the oracles' range, overflow."""
    n_u, c = uc.shape
    lo = np.clip(o_lo_raw.astype(np.float64), -clip, clip)
    hi = np.clip(o_hi_raw.astype(np.float64), -clip, clip)
    single = lo == hi
    lo = np.where(single, lo - 0.5, lo)
    hi = np.where(single, hi + 0.5, hi)
    x, f, k, b = ws.views(c)
    _histogram_bins_numpy(uc, oc, lo, hi, bins, clip, x, f, k, b)
    # Re-key from the edge table's stride (bins + 1) to the counts' (bins + 2), one slot up
    # to make room for the underflow bin; then send what lies outside [lo, hi] outside.
    k += np.arange(1, c + 1)
    outer = np.arange(0, c * (bins + 2), bins + 2)
    np.less(x, lo, out=b)
    np.copyto(k, outer, where=b)
    np.greater(x, hi, out=b)
    np.copyto(k, outer + (bins + 1), where=b)
    return _split_bincount(np, k, n_u, c, bins + 2, keep=bins + 2)


def _combined_counts_numpy(
    uc: np.ndarray,
    oc: np.ndarray,
    lo_raw: np.ndarray,
    hi_raw: np.ndarray,
    bins: int,
    clip: float,
    ws: _NumpyWorkspace,
) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.histogram(values, bins, range=(lo, hi))`` counts over both ensembles' range."""
    n_u, c = uc.shape
    lo = np.clip(lo_raw.astype(np.float64), -clip, clip)
    hi = np.clip(hi_raw.astype(np.float64), -clip, clip)
    hi = np.where(lo == hi, lo + 1.0, hi)
    x, f, k, b = ws.views(c)
    _histogram_bins_numpy(uc, oc, lo, hi, bins, clip, x, f, k, b)
    return _split_bincount(np, k, n_u, c, bins + 1, keep=bins)


def _histogram_bins_numpy(
    uc: np.ndarray,
    oc: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    bins: int,
    clip: float,
    x: np.ndarray,
    f: np.ndarray,
    k: np.ndarray,
    b: np.ndarray,
) -> None:
    """Fill ``x`` with the clipped values and ``k`` with ``point * (bins + 1) + bin``, the
    bin ``numpy.histogram(values, bins, range=(lo, hi))`` gives every value in ``[lo, hi]``
    (values outside get the nearest end bin; callers that care re-key them)."""
    n_u, c = uc.shape
    edges = _linspace_rows(np, lo, hi, bins)
    denom = hi - lo
    # Upper-edge table with +inf for the last bin: that bin is closed, so nothing moves up
    # out of it (numpy's `indices != n_equal_bins - 1` test, without a separate pass).
    upper = np.empty_like(edges)
    upper[:, : bins - 1] = edges[:, 1:bins]
    upper[:, bins - 1 :] = np.inf
    lower_flat, upper_flat = edges.ravel(), upper.ravel()

    # Cast to float64 *before* clipping, as the spec says (matters for clip values that are
    # not representable in the margins' dtype); one fused pass per ensemble.
    np.clip(uc, -clip, clip, out=x[:n_u], dtype=np.float64)
    np.clip(oc, -clip, clip, out=x[n_u:], dtype=np.float64)
    # numpy.histogram's uniform-bin path: estimate ((x - lo) / (hi - lo)) * bins, truncate,
    # fold the top edge into the last bin, then correct by one bin against the real edges.
    np.subtract(x, lo, out=f)
    np.divide(f, denom, out=f)
    np.multiply(f, bins, out=f)
    # Into [0, bins - 1] before the cast: folds the top edge into the last bin, and keeps
    # values outside the range (anchored mode: possibly huge estimates) inside the row.
    np.clip(f, 0, bins - 1, out=f)
    np.copyto(k, f, casting="unsafe")
    k += np.arange(0, c * (bins + 1), bins + 1)  # flat index into this point's edge row
    np.take(lower_flat, k, out=f, mode="clip")  # indices are in range; "clip" skips a buffer
    np.less(x, f, out=b)
    np.subtract(k, b, out=k)
    np.take(upper_flat, k, out=f, mode="clip")
    np.greater_equal(x, f, out=b)
    np.add(k, b, out=k)


def _digitize_counts_numpy(
    uc: np.ndarray,
    oc: np.ndarray,
    lo_raw: np.ndarray,
    hi_raw: np.ndarray,
    bins: int,
    clip: float,
    work: np.dtype,
    ws: _NumpyWorkspace,
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``np.digitize(values, edges)`` in 1..bins (the published compat binning)."""
    n_u, c = uc.shape
    lo_b, hi_b = work.type(-clip), work.type(clip)  # the published np.clip rounds the bound
    lo = np.clip(lo_raw.astype(work), lo_b, hi_b)
    hi = np.clip(hi_raw.astype(work), lo_b, hi_b)
    hi = np.where(lo >= hi, lo + work.type(1.0), hi)
    edges = _linspace_rows(np, lo, hi, bins)

    x, _, k, b = ws.views(c)
    x[:n_u] = uc
    x[n_u:] = oc
    np.clip(x, lo_b, hi_b, out=x)
    # digitize(v) - 1 = number of edges[1:] <= v. Counting comparisons (a loop over edges,
    # not points) stays exact even when float32 edges collide in very narrow ranges, where
    # a +-1 corrected estimate would not. A value on the top edge gets index `bins`: the
    # published code's `range(1, bin_count + 1)` never counts it.
    k.fill(0)
    for j in range(1, bins + 1):
        np.greater_equal(x, edges[:, j], out=b)
        np.add(k, b, out=k)
    k += np.arange(0, c * (bins + 1), bins + 1)
    return _split_bincount(np, k, n_u, c, bins + 1, keep=bins)


def _split_bincount(
    xp: Any, k: Any, n_u: int, c: int, stride: int, *, keep: int
) -> tuple[Any, Any]:
    """Per-point counts of the flat keys ``point * stride + bin``, as float64, keeping the
    first ``keep`` bins of each point (the digitize modes drop the slot past the top edge)."""
    size = c * stride
    cu = xp.bincount(k[:n_u].reshape(-1), minlength=size)
    co = xp.bincount(k[n_u:].reshape(-1), minlength=size)
    if xp is np:
        cu, co = cu.astype(np.float64), co.astype(np.float64)
    else:
        cu, co = cu.to(xp.float64), co.to(xp.float64)
    return cu.reshape(c, stride)[:, :keep], co.reshape(c, stride)[:, :keep]


# --------------------------------------------------------------------------- torch engine


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch just to check
    return torch is not None and isinstance(x, torch.Tensor)


def _klom_torch_input(
    unlearned: Any, oracle: Any, mode: str, bins: int, eps: float, clip: float
) -> Any:
    import torch

    ref = unlearned if _is_torch(unlearned) else oracle
    device = ref.device
    tensors = []
    for name, x in (("unlearned", unlearned), ("oracle", oracle)):
        t = x if _is_torch(x) else torch.as_tensor(np.asarray(x), device=device)
        if t.device != device:
            raise ValueError(
                f"unlearned and oracle margins must be on the same device, got "
                f"{unlearned.device} and {oracle.device}"
            )
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(
                f"{name} margins must be real numbers (float or int), got dtype {t.dtype}"
            )
        tensors.append(t.detach())
    u, o = tensors
    _check_shapes(tuple(u.shape), tuple(o.shape))
    if device.type == "cpu":
        # Same engine as numpy input (zero-copy view); numpy has no bfloat16, and widening
        # it to float32 is exact.
        u_np, o_np = ((t.float() if t.dtype == torch.bfloat16 else t).numpy() for t in (u, o))
        return torch.from_numpy(_klom_numpy(u_np, o_np, mode, bins, eps, clip))
    return _klom_torch(u, o, mode, bins, eps, clip)


def _klom_torch(u: Any, o: Any, mode: str, bins: int, eps: float, clip: float) -> Any:
    """The numpy engine's algorithm in torch ops, for tensors on an accelerator.

    Works on any device (the tests run it on the CPU against the numpy engine).
    """
    import torch

    n_u, n_points = u.shape
    n_o = o.shape[0]
    chunk = _chunk_points(n_u + n_o, n_points, _CHUNK_VALUES_TORCH)
    if mode in _EXACT_MODES:
        work = torch.float64
    else:
        work = torch.promote_types(u.dtype, o.dtype)
        if not work.is_floating_point or work == torch.bfloat16:
            work = torch.float64
    out = torch.empty(n_points, dtype=torch.float64, device=u.device)
    for start in range(0, n_points, chunk):
        stop = min(start + chunk, n_points)
        uc, oc = u[:, start:stop], o[:, start:stop]
        o_lo, o_hi = oc.amin(0), oc.amax(0)
        lo_raw = torch.minimum(uc.amin(0), o_lo)
        hi_raw = torch.maximum(uc.amax(0), o_hi)
        if lo_raw.is_floating_point() and not bool(
            torch.isfinite(lo_raw).all() & torch.isfinite(hi_raw).all()
        ):
            _raise_non_finite_torch(u, o)
        if mode == "default":
            cu, co = _anchored_counts_torch(uc, oc, o_lo, o_hi, bins, clip)
        elif mode == "combined":
            cu, co = _combined_counts_torch(uc, oc, lo_raw, hi_raw, bins, clip)
        else:
            cu, co = _digitize_counts_torch(uc, oc, lo_raw, hi_raw, bins, clip, work)
        out[start:stop] = _kl_from_counts(torch, cu, co, mode, n_u, n_o, eps)
    return out


def _raise_non_finite_torch(u: Any, o: Any) -> None:
    import torch

    counts = {}
    for name, x in (("unlearned", u), ("oracle", o)):
        bad = ~torch.isfinite(x)
        counts[name] = (
            int(bad.any(dim=1).sum()),
            x.shape[0],
            int(bad.any(dim=0).sum()),
            x.shape[1],
        )
    raise _non_finite_error(counts)


def _anchored_counts_torch(
    uc: Any, oc: Any, o_lo_raw: Any, o_hi_raw: Any, bins: int, clip: float
) -> tuple[Any, Any]:
    import torch

    n_u, c = uc.shape
    lo = o_lo_raw.to(torch.float64).clamp(-clip, clip)
    hi = o_hi_raw.to(torch.float64).clamp(-clip, clip)
    single = lo == hi
    lo, hi = torch.where(single, lo - 0.5, lo), torch.where(single, hi + 0.5, hi)
    x, k = _histogram_bins_torch(uc, oc, lo, hi, bins, clip)
    k += torch.arange(1, c + 1, device=x.device)
    outer = torch.arange(0, c * (bins + 2), bins + 2, device=x.device).expand_as(k)
    k = torch.where(x < lo, outer, k)
    k = torch.where(x > hi, outer + (bins + 1), k)
    return _split_bincount(torch, k, n_u, c, bins + 2, keep=bins + 2)


def _combined_counts_torch(
    uc: Any, oc: Any, lo_raw: Any, hi_raw: Any, bins: int, clip: float
) -> tuple[Any, Any]:
    import torch

    n_u, _ = uc.shape
    lo = lo_raw.to(torch.float64).clamp(-clip, clip)
    hi = hi_raw.to(torch.float64).clamp(-clip, clip)
    hi = torch.where(lo == hi, lo + 1.0, hi)
    _, k = _histogram_bins_torch(uc, oc, lo, hi, bins, clip)
    return _split_bincount(torch, k, n_u, uc.shape[1], bins + 1, keep=bins)


def _histogram_bins_torch(
    uc: Any, oc: Any, lo: Any, hi: Any, bins: int, clip: float
) -> tuple[Any, Any]:
    """The numpy engine's :func:`_histogram_bins_numpy` in torch ops: (values, keys)."""
    import torch

    c = uc.shape[1]
    edges = _linspace_rows(torch, lo, hi, bins)
    denom = hi - lo
    upper = torch.empty_like(edges)
    upper[:, : bins - 1] = edges[:, 1:bins]
    upper[:, bins - 1 :] = math.inf
    x = torch.cat([uc, oc]).to(torch.float64).clamp_(-clip, clip)
    # Separate ops (no fused multiply-add) so the estimate rounds as numpy's does.
    f = torch.sub(x, lo).div_(denom).mul_(bins).clamp_(0, bins - 1)
    k = f.to(torch.int64)
    k += torch.arange(0, c * (bins + 1), bins + 1, device=x.device)
    # Keys of values outside [lo, hi] can step one slot out of their row here; clamped so the
    # gathers stay in the table (those keys are re-keyed by the anchored caller).
    last = edges.numel() - 1
    k -= (x < edges.reshape(-1).take(k.clamp(0, last))).to(torch.int64)
    k += (x >= upper.reshape(-1).take(k.clamp(0, last))).to(torch.int64)
    return x, k


def _digitize_counts_torch(
    uc: Any, oc: Any, lo_raw: Any, hi_raw: Any, bins: int, clip: float, work: Any
) -> tuple[Any, Any]:
    import torch

    n_u, c = uc.shape
    # Round the bounds to the working dtype first, like numpy's weak Python-float scalars.
    lo_b = float(torch.tensor(-clip, dtype=work))
    hi_b = float(torch.tensor(clip, dtype=work))
    lo = lo_raw.to(work).clamp(lo_b, hi_b)
    hi = hi_raw.to(work).clamp(lo_b, hi_b)
    hi = torch.where(lo >= hi, lo + 1.0, hi)
    edges = _linspace_rows(torch, lo, hi, bins)
    x = torch.cat([uc.to(work), oc.to(work)]).clamp_(lo_b, hi_b)
    k = torch.zeros(x.shape, dtype=torch.int64, device=x.device)
    for j in range(1, bins + 1):
        k += x >= edges[:, j]
    k += torch.arange(0, c * (bins + 1), bins + 1, device=x.device)
    return _split_bincount(torch, k, n_u, c, bins + 1, keep=bins)
