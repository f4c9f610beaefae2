"""Properties of the vectorized KLoM against plain per-point loops written from the spec."""

from __future__ import annotations

import importlib
import math
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_unlearn.metric import KLOM_MODES, klom

klom_module = importlib.import_module("pytest_unlearn.metric.klom")

MAX_KLOM = math.log(1 / 1e-5)  # the score of a point whose p sits where q has no mass


# --------------------------------------------------------------------- per-point references


def reference_klom(u: np.ndarray, o: np.ndarray, bins: int = 20, eps: float = 1e-5) -> np.ndarray:
    """The default (docs/klom.md), one point at a time: numpy.histogram over the oracles'
    range, plus an underflow and an overflow bin."""
    out = np.empty(u.shape[1])
    for i in range(u.shape[1]):
        a = np.clip(u[:, i].astype(np.float64), -100.0, 100.0)
        b = np.clip(o[:, i].astype(np.float64), -100.0, 100.0)
        lo, hi = b.min(), b.max()
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        inner_p = np.histogram(a, bins=bins, range=(lo, hi))[0]
        p = np.concatenate([[np.sum(a < lo)], inner_p, [np.sum(a > hi)]]) / a.size
        q = np.concatenate([[0], np.histogram(b, bins=bins, range=(lo, hi))[0], [0]]) / b.size
        has = p > 0
        out[i] = np.sum(p[has] * np.log(p[has] / np.maximum(q[has], eps)))
    return out


def reference_combined(
    u: np.ndarray, o: np.ndarray, bins: int = 20, eps: float = 1e-5
) -> np.ndarray:
    """``mode="combined"``, one point at a time: numpy.histogram over both ensembles' range."""
    out = np.empty(u.shape[1])
    for i in range(u.shape[1]):
        a = np.clip(u[:, i].astype(np.float64), -100.0, 100.0)
        b = np.clip(o[:, i].astype(np.float64), -100.0, 100.0)
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        if lo == hi:
            hi = lo + 1.0
        p = np.histogram(a, bins=bins, range=(lo, hi))[0] / a.size
        q = np.histogram(b, bins=bins, range=(lo, hi))[0] / b.size
        has = p > 0
        out[i] = np.sum(p[has] * np.log(p[has] / np.maximum(q[has], eps)))
    return out


def reference_compat(u: np.ndarray, o: np.ndarray, mode: str, eps: float = 1e-5) -> np.ndarray:
    """The published codes' behaviour as documented, one point at a time.

    np.digitize binning over float edges in the margins' dtype; values on the top edge are
    never counted. EasyDUB renormalizes over the counted values; data-unlearning-bench
    hands p and the floored q to scipy.stats.entropy, which renormalizes both.
    """
    bins = 20
    out = np.empty(u.shape[1])
    for i in range(u.shape[1]):
        a, b = np.clip(u[:, i], -100.0, 100.0), np.clip(o[:, i], -100.0, 100.0)
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        if lo >= hi:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, bins + 1)
        cp = np.bincount(np.digitize(a, edges), minlength=bins + 2)[1 : bins + 1]
        cq = np.bincount(np.digitize(b, edges), minlength=bins + 2)[1 : bins + 1]
        p = cp / cp.sum() if cp.sum() else np.zeros(bins)
        q = cq / cq.sum() if cq.sum() else np.zeros(bins)
        q = np.where(p > 0, np.maximum(q, eps), q)
        if mode == "dub":
            if p.sum() == 0:
                out[i] = np.nan
                continue
            p, q = p / p.sum(), q / q.sum()
        has = p > 0
        out[i] = np.sum(p[has] * np.log(p[has] / q[has]))
    return out


# ----------------------------------------------------------------------------- strategies

# float32-representable values: bin edges of any such range are distinct in float64, so the
# numpy.histogram reference never refuses a range. Small integers put many values exactly on
# bin edges; +-1e4 and +-1e30 lie beyond the clip.
VALUES = st.one_of(
    st.floats(-150, 150, width=32),
    st.integers(-4, 4).map(float),
    st.sampled_from([-1e30, -1e4, -100.0, 0.0, 100.0, 1e4, 1e30]),
)


@st.composite
def ensembles(draw: st.DrawFn, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    points = draw(st.integers(1, 6))
    n_u, n_o = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    # A per-test alphabet: sometimes 1-2 values only, so constant and tied columns are common.
    alphabet = draw(st.lists(VALUES, min_size=1, max_size=12))
    elements = st.sampled_from(alphabet)
    u = draw(hnp.arrays(dtype, (n_u, points), elements=elements))
    o = draw(hnp.arrays(dtype, (n_o, points), elements=elements))
    return u, o


SETTINGS = settings(max_examples=80, deadline=None, database=None)


# -------------------------------------------------------------------- agreement with loops


EXACT_REFERENCES = {"default": reference_klom, "combined": reference_combined}


@pytest.mark.parametrize("mode", EXACT_REFERENCES)
@SETTINGS
@given(pair=ensembles(), bins=st.integers(1, 25))
def test_exact_mode_equals_per_point_histogram_loop(mode: str, pair: tuple, bins: int) -> None:
    u, o = pair
    want = EXACT_REFERENCES[mode](u, o, bins)
    np.testing.assert_allclose(klom(u, o, mode=mode, bins=bins), want, atol=1e-9)


@pytest.mark.parametrize("mode", EXACT_REFERENCES)
@SETTINGS
@given(pair=ensembles(np.float32))
def test_exact_mode_equals_loop_on_float32_margins(mode: str, pair: tuple) -> None:
    u, o = pair
    np.testing.assert_allclose(klom(u, o, mode=mode), EXACT_REFERENCES[mode](u, o), atol=1e-9)


@pytest.mark.parametrize("mode", EXACT_REFERENCES)
@SETTINGS
@given(
    u=hnp.arrays(np.float64, (7, 3), elements=st.floats(-1e3, 1e3)),
    o=hnp.arrays(np.float64, (4, 3), elements=st.floats(-1e3, 1e3)),
)
def test_exact_mode_equals_loop_on_arbitrary_float64(
    mode: str, u: np.ndarray, o: np.ndarray
) -> None:
    try:
        want = EXACT_REFERENCES[mode](u, o)
    except ValueError:
        reject()  # numpy.histogram refuses ranges a few ulps wide (edges collide)
    np.testing.assert_allclose(klom(u, o, mode=mode), want, atol=1e-9)


@pytest.mark.parametrize("mode", EXACT_REFERENCES)
def test_exact_mode_handles_ranges_too_narrow_for_distinct_edges(mode: str) -> None:
    # numpy.histogram refuses this range; the estimator still bins every value somewhere.
    u = np.array([[1.0], [np.nextafter(1.0, 2.0)]])
    o = np.array([[1.0], [np.nextafter(1.0, 2.0)]])
    with pytest.raises(ValueError, match="Too many bins"):
        EXACT_REFERENCES[mode](u, o)
    value = klom(u, o, mode=mode)
    assert np.isfinite(value).all() and (value >= 0).all()


@pytest.mark.parametrize("mode", ["easydub", "dub"])
@SETTINGS
@given(pair=ensembles(np.float32))
def test_compat_mode_equals_per_point_digitize_loop(mode: str, pair: tuple) -> None:
    u, o = pair
    got, want = klom(u, o, mode=mode), reference_compat(u, o, mode)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, atol=1e-9)  # NaN == NaN here


@pytest.mark.parametrize("mode", ["easydub", "dub"])
def test_compat_mode_exact_where_float32_edges_collide(mode: str) -> None:
    # A range of 3 float32 ulps: 21 float32 edges cannot all differ.
    base = np.float32(1.0)
    top = base + 3 * np.spacing(base)
    u = np.array([[base], [top], [base + np.spacing(base)]], dtype=np.float32)
    o = np.array([[base], [base + 2 * np.spacing(base)]], dtype=np.float32)
    edges = np.linspace(base, top, 21)
    assert len(np.unique(edges)) < 21
    np.testing.assert_allclose(klom(u, o, mode=mode), reference_compat(u, o, mode), atol=1e-9)


@pytest.mark.parametrize("mode", ["easydub", "dub"])
def test_compat_mode_exact_for_subnormal_ranges(mode: str) -> None:
    # delta / bins underflows to 0 in float32: numpy's linspace switches formula there.
    tiny = np.float32(1e-45)
    u = np.array([[0.0, 0.0], [tiny, 3 * tiny]], dtype=np.float32)
    o = np.array([[tiny, 0.0], [tiny, 2 * tiny]], dtype=np.float32)
    assert np.float32(tiny) / np.float32(20) == 0
    np.testing.assert_allclose(klom(u, o, mode=mode), reference_compat(u, o, mode), atol=1e-9)


# ----------------------------------------------------------------------------- properties


@SETTINGS
@given(ensembles())
def test_default_is_non_negative(pair: tuple) -> None:
    # Holds for ensembles smaller than 1 / (e * eps) ~ 36,788 models (p >= e * eps).
    assert (klom(*pair) >= 0.0).all()


@SETTINGS
@given(ensembles())
@pytest.mark.parametrize("mode", KLOM_MODES)
def test_identical_ensembles_score_exactly_zero(mode: str, pair: tuple) -> None:
    u, _ = pair
    value = klom(u, u.copy(), mode=mode)
    if mode == "dub":  # NaN where every value sits on the top edge (p empty)
        value = value[~np.isnan(value)]
    assert (value == 0.0).all()


@SETTINGS
@given(ensembles(), st.randoms(use_true_random=False))
@pytest.mark.parametrize("mode", KLOM_MODES)
def test_invariant_to_permuting_models(mode: str, pair: tuple, rnd) -> None:
    u, o = pair
    u_perm = u[rnd.sample(range(u.shape[0]), u.shape[0])]
    o_perm = o[rnd.sample(range(o.shape[0]), o.shape[0])]
    np.testing.assert_array_equal(klom(u_perm, o_perm, mode=mode), klom(u, o, mode=mode))


@SETTINGS
@given(ensembles())
def test_margins_beyond_clip_score_as_if_at_clip(pair: tuple) -> None:
    u, o = pair
    clipped = np.clip(u, -100.0, 100.0), np.clip(o, -100.0, 100.0)
    np.testing.assert_array_equal(klom(u, o), klom(*clipped))


def test_disjoint_constant_ensembles_score_max() -> None:
    u, o = np.full((5, 3), 2.0), np.full((8, 3), -1.0)
    np.testing.assert_allclose(klom(u, o), MAX_KLOM, rtol=0, atol=1e-12)


@SETTINGS
@given(ensembles())
def test_the_unlearned_ensemble_cannot_move_the_default_bins(pair: tuple) -> None:
    """Only the oracles place the bins: moving an unlearned value anywhere else below the
    oracles' range (or above it) leaves every point's score unchanged."""
    u, o = pair
    lo = np.clip(o, -100.0, 100.0).min(axis=0)
    hi = np.clip(o, -100.0, 100.0).max(axis=0)
    single = lo == hi  # a single oracle value: the bins span [lo - 0.5, hi + 0.5]
    lo, hi = np.where(single, lo - 0.5, lo), np.where(single, hi + 0.5, hi)
    clipped = np.clip(u, -100.0, 100.0)
    moved = u.copy()
    moved[(clipped < lo) & (lo > -100.0)] = -1e4
    moved[(clipped > hi) & (hi < 100.0)] = 1e4
    np.testing.assert_array_equal(klom(moved, o), klom(u, o))


@SETTINGS
@given(ensembles())
def test_default_bins_are_the_oracles_whatever_the_unlearned_range(pair: tuple) -> None:
    """A single unlearned model far beyond the oracles scores the maximum for its own mass:
    the default puts it in an outer bin, where q is empty."""
    _, o = pair
    far = np.full((1, o.shape[1]), 1e4)
    inside = np.clip(o, -100.0, 100.0).max(axis=0) < 100.0
    np.testing.assert_allclose(klom(far, o)[inside], MAX_KLOM, rtol=0, atol=1e-12)


def _pinned_do_nothing_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A shifted ensemble (do-nothing), the same with two members pinned at +-1e4, oracles."""
    rng = np.random.default_rng(11)
    oracle = rng.normal(0.0, 1.0, size=(30, 200))
    shifted = rng.normal(1.5, 1.0, size=(30, 200))
    pinned = shifted.copy()
    pinned[0], pinned[1] = 1e4, -1e4
    return shifted, pinned, oracle


def test_pinned_members_lower_the_combined_estimator() -> None:
    shifted, pinned, oracle = _pinned_do_nothing_case()
    before = np.percentile(klom(shifted, oracle, mode="combined"), 95)
    after = np.percentile(klom(pinned, oracle, mode="combined"), 95)
    assert after < 0.7 * before  # the exploit the default closes


def test_pinned_members_do_not_lower_the_default() -> None:
    shifted, pinned, oracle = _pinned_do_nothing_case()
    before = np.percentile(klom(shifted, oracle), 95)
    after = np.percentile(klom(pinned, oracle), 95)
    assert after >= before


# ----------------------------------------------------------- torch input, engines, chunking


def _random_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.normal(1.0, 3.0, size=(30, 257)).astype(np.float32)
    o = rng.normal(0.0, 3.0, size=(23, 257)).astype(np.float32)
    u[:, :40] = np.round(u[:, :40])  # ties on edges
    o[:, :40] = np.round(o[:, :40])
    u[:, 40:50] = 250.0  # beyond the clip, on the top edge
    o[:, 50:60] = 7.0  # constant oracle
    return u, o


@pytest.mark.parametrize("mode", KLOM_MODES)
def test_torch_input_gives_numpy_values_as_float64_tensor(mode: str) -> None:
    u, o = _random_pair()
    got = klom(torch.from_numpy(u), torch.from_numpy(o), mode=mode)
    assert isinstance(got, torch.Tensor)
    assert got.dtype == torch.float64 and got.device.type == "cpu"
    np.testing.assert_allclose(got.numpy(), klom(u, o, mode=mode), atol=1e-9)


@pytest.mark.parametrize("mode", KLOM_MODES)
def test_accelerator_engine_matches_numpy_engine(mode: str) -> None:
    # The torch engine serves CUDA tensors; run on the CPU it must agree bin for bin.
    u, o = _random_pair(1)
    ut, ot = torch.from_numpy(u), torch.from_numpy(o)
    with mock.patch.object(klom_module, "_CHUNK_VALUES_TORCH", 53 * 17):  # several chunks
        got = klom_module._klom_torch(ut, ot, mode, 20, 1e-5, 100.0)
    np.testing.assert_allclose(got.numpy(), klom(u, o, mode=mode), atol=1e-9)


@pytest.mark.parametrize("chunk_values", [1, 53 * 3 + 1, 53 * 100])
@pytest.mark.parametrize("mode", KLOM_MODES)
def test_chunk_size_does_not_change_results(mode: str, chunk_values: int) -> None:
    u, o = _random_pair(2)
    whole = klom(u, o, mode=mode)
    with mock.patch.object(klom_module, "_CHUNK_VALUES", chunk_values):
        chunked = klom(u, o, mode=mode)
    np.testing.assert_array_equal(chunked, whole)


# ------------------------------------------------------------------ the logit-scaling exploit


def _scaled_logits_case() -> tuple[np.ndarray, np.ndarray]:
    # Unlearned margins all far beyond the clip (a method that scaled its logits); oracle
    # margins spread normally, all below 100.
    rng = np.random.default_rng(3)
    oracle = np.clip(rng.normal(10.0, 5.0, size=(50, 40)), -99.0, 99.0).astype(np.float32)
    unlearned = np.full((50, 40), 1e4, dtype=np.float32)
    return unlearned, oracle


def test_logit_scaling_exploit_scores_max_klom_per_point() -> None:
    np.testing.assert_allclose(klom(*_scaled_logits_case()), MAX_KLOM, rtol=0, atol=1e-12)


def test_logit_scaling_exploit_scores_zero_in_easydub_mode() -> None:
    assert (klom(*_scaled_logits_case(), mode="easydub") == 0.0).all()


def test_logit_scaling_exploit_is_nan_in_dub_mode() -> None:
    assert np.isnan(klom(*_scaled_logits_case(), mode="dub")).all()


def test_easydub_drops_the_value_on_the_top_edge() -> None:
    # Per point: unlearned {0, 1}, oracle {0, 0}. The combined estimator counts the 1 (top
    # edge, last bin, where q has no mass); EasyDUB drops it and sees two identical
    # distributions.
    u, o = np.array([[0.0], [1.0]]), np.array([[0.0], [0.0]])
    want = 0.5 * math.log(0.5 / 1.0) + 0.5 * math.log(0.5 / 1e-5)
    assert klom(u, o, mode="combined")[0] == pytest.approx(want, abs=1e-12)
    assert klom(u, o, mode="easydub")[0] == 0.0
