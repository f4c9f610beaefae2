"""klom() rejects malformed input with a ValueError that says what is wrong."""

from __future__ import annotations

import importlib
import re
from unittest import mock

import numpy as np
import pytest
import torch

from pytest_unlearn.metric import KLOM_MODES, klom

klom_module = importlib.import_module("pytest_unlearn.metric.klom")


def _ok(models: int = 10, points: int = 20) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(models, points)).astype(np.float32)


def test_points_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"same points.*20 points.*\(10, 20\).*19.*\(8, 19\)"):
        klom(_ok(10, 20), _ok(8, 19))


def test_one_dimensional_margins_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unlearned margins must be 2-D.*\(20,\)"):
        klom(np.zeros(20), _ok())


def test_three_dimensional_margins_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"oracle margins must be 2-D.*\(2, 10, 20\)"):
        klom(_ok(), np.zeros((2, 10, 20)))


def test_ensemble_with_zero_models_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"oracle ensemble is empty.*0 models"):
        klom(_ok(), np.zeros((0, 20)))


def test_ensembles_with_zero_points_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unlearned ensemble is empty.*0 points"):
        klom(np.zeros((10, 0)), np.zeros((10, 0)))


def test_nan_margins_name_models_and_points_counts() -> None:
    u = _ok(10, 20)
    u[2, [1, 5]] = np.nan
    u[7, 9] = np.nan
    message = "unlearned ensemble has non-finite values in 2 of 10 models and 3 of 20 points"
    with pytest.raises(ValueError, match=re.escape(message)):
        klom(u, _ok(8, 20))


def test_inf_in_oracle_names_only_the_oracle_ensemble() -> None:
    o = _ok(8, 20)
    o[:, 4] = np.inf
    with pytest.raises(ValueError, match=r"oracle ensemble .* 8 of 8 models and 1 of 20") as info:
        klom(_ok(10, 20), o)
    assert "unlearned ensemble" not in str(info.value)


def test_non_finite_in_both_ensembles_reports_both() -> None:
    u, o = _ok(10, 20), _ok(8, 20)
    u[0, 0] = -np.inf
    o[3, 19] = np.nan
    with pytest.raises(ValueError) as info:
        klom(u, o)
    assert "unlearned ensemble has non-finite values in 1 of 10 models and 1 of 20" in str(
        info.value
    )
    assert "oracle ensemble has non-finite values in 1 of 8 models and 1 of 20" in str(info.value)


def test_non_finite_in_a_late_chunk_counts_the_whole_ensemble() -> None:
    u = _ok(10, 20)
    u[:3, 0] = np.nan  # first chunk
    u[4, 19] = np.nan  # last chunk
    with (
        mock.patch.object(klom_module, "_CHUNK_VALUES", 18),
        pytest.raises(ValueError, match="4 of 10 models and 2 of 20 points"),
    ):
        klom(u, _ok(8, 20))


@pytest.mark.parametrize("mode", ["easydub", "dub"])
def test_compat_modes_also_reject_non_finite_margins(mode: str) -> None:
    u = _ok()
    u[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        klom(u, _ok(), mode=mode)


def test_torch_input_rejects_non_finite_margins() -> None:
    u = torch.from_numpy(_ok())
    u[1, 2] = torch.nan
    with pytest.raises(ValueError, match="1 of 10 models and 1 of 20 points"):
        klom(u, torch.from_numpy(_ok()))


def test_accelerator_engine_rejects_non_finite_margins() -> None:
    u = torch.from_numpy(_ok())
    u[1, 2] = torch.inf
    with pytest.raises(ValueError, match="1 of 10 models and 1 of 20 points"):
        klom_module._klom_torch(u, torch.from_numpy(_ok()), "default", 20, 1e-5, 100.0)


def test_tensors_on_different_devices_are_rejected() -> None:
    with pytest.raises(ValueError, match="same device"):
        klom(torch.zeros(3, 4), torch.zeros(3, 4, device="meta"))


@pytest.mark.parametrize("bins", [0, -3])
def test_bins_below_one_are_rejected(bins: int) -> None:
    with pytest.raises(ValueError, match=rf"bins must be an integer >= 1, got {bins}"):
        klom(_ok(), _ok(), bins=bins)


@pytest.mark.parametrize("bins", [2.5, True])
def test_non_integer_bins_are_rejected(bins: object) -> None:
    with pytest.raises(ValueError, match="bins must be an integer"):
        klom(_ok(), _ok(), bins=bins)


@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan"), float("inf")])
def test_eps_must_be_positive_and_finite(eps: float) -> None:
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        klom(_ok(), _ok(), eps=eps)


@pytest.mark.parametrize("clip", [0.0, -100.0, float("inf")])
def test_clip_must_be_positive_and_finite(clip: float) -> None:
    with pytest.raises(ValueError, match="clip must be a positive finite number"):
        klom(_ok(), _ok(), clip=clip)


def test_unknown_mode_lists_the_valid_modes() -> None:
    with pytest.raises(ValueError, match="unknown KLoM mode 'spec'") as info:
        klom(_ok(), _ok(), mode="spec")
    for mode in KLOM_MODES:
        assert repr(mode) in str(info.value)


@pytest.mark.parametrize("dtype", [np.complex128, np.bool_])
def test_non_real_margins_are_rejected(dtype: type) -> None:
    with pytest.raises(ValueError, match="must be real numbers"):
        klom(_ok().astype(dtype), _ok())
