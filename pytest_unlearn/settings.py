"""The plugin's options, resolved once into a typed :class:`Settings`: CLI > env > ini > default.

Every option lives in pytest's ``unlearn`` group and can also be set as an ini key
(``unlearn_models = 50`` in ``[tool.pytest.ini_options]``) or an environment variable
(``PYTEST_UNLEARN_MODELS=50``).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch

DEFAULT_MODELS = 100
#: ``--unlearn-profile=quick``: the ensemble size and forget-set kinds a PR gate runs. 50 is the
#: smallest measured N at which every benchmark's quick-profile forget cases are conclusive
#: (docs/verdicts.md, ``benchmarks/bench_power.py``).
QUICK_MODELS = 50
PROFILES = ("full", "quick")
#: The embedded default benchmark: the one a plain run evaluates (`all` selects every one).
DEFAULT_BENCHMARKS = ("digits-mlp",)


@dataclass(frozen=True)
class _Option:
    name: str  # the part after "--unlearn-"
    help: str

    @property
    def flag(self) -> str:
        return f"--unlearn-{self.name}"

    @property
    def dest(self) -> str:
        return "unlearn_" + self.name.replace("-", "_")

    @property
    def ini(self) -> str:
        return self.dest

    @property
    def env(self) -> str:
        return "PYTEST_" + self.dest.upper()


OPTIONS = (
    _Option("method", "the unlearning method to evaluate, as MODULE:FUNCTION"),
    _Option(
        "models",
        f"ensemble size used (default {DEFAULT_MODELS}; {QUICK_MODELS} with the quick profile)",
    ),
    _Option(
        "profile",
        "full (default): every forget set at the full ensemble size; quick: subpopulation and "
        f"sequential forget sets only, N={QUICK_MODELS}, for gating pull requests",
    ),
    _Option("cache-dir", "where built ensembles are cached (default: the user cache dir)"),
    _Option("device", "torch device for the method and evaluation (default: cuda if available)"),
    _Option(
        "benchmark",
        f"comma-separated benchmarks to run, or 'all' (default: {','.join(DEFAULT_BENCHMARKS)})",
    ),
    _Option(
        "store",
        "a published store to use instead of building locally: a directory, file:// or "
        "http(s):// URL (its benchmark's ensembles come from there)",
    ),
    _Option("offline", "never touch the network: a --unlearn-store must already be cached"),
    _Option("seed", "salt for the seeds methods receive: rerun with fresh randomness (default 0)"),
    _Option("report", "write a JSON report of every conformance test to this file"),
    _Option(
        "plots",
        "write one PNG per benchmark/forget set/request into this directory (needs matplotlib)",
    ),
    _Option("xfail-file", "a file of conformance test ids expected to fail ('ID: reason' lines)"),
    _Option(
        "timeout", "seconds one method call may take before it fails its tests (default: none)"
    ),
    _Option(
        "param",
        "KEY=VALUE for the method, repeatable (context.params; the value is read as JSON when "
        "it parses, e.g. lr=0.05, else as a string); env and ini: one per line or ';'-separated",
    ),
    _Option(
        "baseline",
        "an earlier run's JSON report (--unlearn-report) of the same store and N: each test "
        "fails only on a regression beyond noise against its record there",
    ),
    _Option(
        "download-stall",
        "seconds without progress (under 1 KiB) after which a --unlearn-store download is "
        "given up as stalled (default 60)",
    ),
    _Option(
        "download-deadline",
        "seconds one --unlearn-store file may take to download, all attempts together "
        "(default 3600)",
    ),
    _Option(
        "threads",
        "torch CPU threads per process (default: the cores divided among the xdist workers); "
        "a fixed value makes CPU results bit-identical whatever -n is",
    ),
)
_FLAGS = {"offline"}  # options that take no value on the command line
_REPEATABLE = {"param"}  # options given once per value on the command line
_BY_NAME = {option.name: option for option in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    """Register the ``unlearn`` option group and its ini keys."""
    group = parser.getgroup("unlearn", "machine-unlearning conformance (pytest-unlearn)")
    for option in OPTIONS:
        extra: dict[str, object] = {}
        if option.name in _FLAGS:
            extra = {"action": "store_const", "const": "1"}
        elif option.name in _REPEATABLE:
            extra = {"action": "append"}
        group.addoption(
            option.flag,
            dest=option.dest,
            default=None,
            help=f"{option.help} [env {option.env}]",
            **extra,
        )
        parser.addini(option.ini, help=option.help, default=None)


def _raw(config: pytest.Config, name: str) -> tuple[str | None, str]:
    """The winning raw value and where it came from, for error messages."""
    option = _BY_NAME[name]
    value = config.getoption(option.dest)
    if value is not None:
        if isinstance(value, list):  # a repeatable option: one value per line
            return "\n".join(str(v) for v in value), option.flag
        return str(value), option.flag
    value = os.environ.get(option.env)
    if value:
        return value, option.env
    try:
        value = config.getini(option.ini)
    except (TypeError, ValueError) as error:  # e.g. a TOML integer in pytest 9's [tool.pytest]
        raise pytest.UsageError(
            f'ini {option.ini}: write the value as a string, e.g. {option.ini} = "..." ({error})'
        ) from None
    if value:
        return str(value), f"ini {option.ini}"
    return None, "default"


def method_spec(config: pytest.Config) -> tuple[str | None, str]:
    """The configured ``MODULE:FUNCTION`` (or None) and where it was set, for messages.

    Read before the other options are validated, so an inert run never fails on them.
    """
    spec, source = _raw(config, "method")
    if source == _BY_NAME["method"].flag and spec is not None:
        source = f"{source}={spec!r}"
    else:
        source = f"{source} ({spec!r})"
    return spec, source


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one pytest run.

    >>> settings = Settings.from_config(config)  # doctest: +SKIP
    >>> settings.models
    100
    """

    method: str | None
    models: int
    cache_dir: Path
    device: torch.device
    benchmarks: tuple[str, ...]
    store: str | None = None
    offline: bool = False
    timeout: float | None = None
    xfail_file: Path | None = None
    profile: str = "full"
    seed: int = 0
    report: Path | None = None
    plots: Path | None = None
    threads: int | None = None
    #: ``--unlearn-param KEY=VALUE``: what the method receives as ``context.params``.
    params: tuple[tuple[str, Any], ...] = ()
    baseline: Path | None = None
    download_stall: float = 60.0
    download_deadline: float = 3600.0

    def source_of(self, config: pytest.Config, name: str) -> str:
        """Where option ``name`` was set (flag, env variable, ini key), for messages."""
        return _raw(config, name)[1]

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Resolve every option; a bad value raises ``pytest.UsageError`` naming its source."""
        profile = _profile(config)
        return cls(
            method=method_spec(config)[0],
            models=_models(config, QUICK_MODELS if profile == "quick" else DEFAULT_MODELS),
            cache_dir=_cache_dir(config),
            device=_device(config),
            benchmarks=_benchmarks(config),
            store=_raw(config, "store")[0],
            offline=_offline(config),
            timeout=_timeout(config),
            xfail_file=_path(config, "xfail-file"),
            profile=profile,
            seed=_seed(config),
            report=_path(config, "report"),
            plots=_path(config, "plots"),
            threads=_threads(config),
            params=_params(config),
            baseline=_path(config, "baseline"),
            download_stall=_seconds(config, "download-stall", 60.0),
            download_deadline=_seconds(config, "download-deadline", 3600.0),
        )


def _profile(config: pytest.Config) -> str:
    raw, source = _raw(config, "profile")
    if raw is None:
        return "full"
    if raw not in PROFILES:
        raise pytest.UsageError(f"{source}: unknown profile {raw!r} (known: {', '.join(PROFILES)})")
    return raw


def _models(config: pytest.Config, default: int) -> int:
    raw, source = _raw(config, "models")
    if raw is None:
        return default
    try:
        models = int(raw)
    except ValueError:
        raise pytest.UsageError(
            f"{source}: expected an integer number of models, got {raw!r}"
        ) from None
    if models < 2:
        raise pytest.UsageError(f"{source}: an ensemble needs at least 2 models, got {models}")
    from .store.builder import MAX_MODELS

    if models > MAX_MODELS:
        raise pytest.UsageError(
            f"{source}: at most {MAX_MODELS} models per ensemble, got {models} (a store of that "
            "size trains 2 x N oracles per forget set and holds them all in memory; the "
            "measured verdicts go up to N=100)"
        )
    return models


def _path(config: pytest.Config, name: str) -> Path | None:
    """An option's path, relative ones taken from the directory pytest was started in."""
    raw, _ = _raw(config, name)
    if raw is None:
        return None
    path = Path(raw).expanduser()
    return path if path.is_absolute() else config.invocation_params.dir / path


def _cache_dir(config: pytest.Config) -> Path:
    path = _path(config, "cache-dir")
    if path is None:
        from .store import default_cache_dir

        return default_cache_dir()
    return path


def _device(config: pytest.Config) -> torch.device:
    import torch  # here, not at the top: an inert run never gets this far

    raw, source = _raw(config, "device")
    if raw is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(raw)
    except RuntimeError as error:
        raise pytest.UsageError(f"{source}: {raw!r} is not a torch device ({error})") from None
    if device.type == "meta":
        raise pytest.UsageError(
            f"{source}: {raw!r} is not a device a method can run on (meta tensors hold no data)"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"{source}: device {raw!r} requested but CUDA is not available")
    try:  # other device types (mps, xpu, ...) are only known to work once used
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise pytest.UsageError(f"{source}: device {raw!r} is not usable here ({error})") from None
    return device


def _benchmarks(config: pytest.Config) -> tuple[str, ...]:
    raw, source = _raw(config, "benchmark")
    from .benchmarks import available_benchmarks, get_benchmark

    known = available_benchmarks()
    if raw is None:
        return DEFAULT_BENCHMARKS
    if raw.strip() == "all":  # every benchmark this machine can build (imported ones by name)
        return tuple(name for name in known if get_benchmark(name).buildable)
    chosen = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise pytest.UsageError(
            f"{source}: unknown benchmark {', '.join(unknown) or repr(raw)} "
            f"(known: {', '.join(known)})"
        )
    return chosen


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _offline(config: pytest.Config) -> bool:
    raw, source = _raw(config, "offline")
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise pytest.UsageError(f"{source}: expected a boolean (1/0, true/false), got {raw!r}")
    return value in _TRUE


def _timeout(config: pytest.Config) -> float | None:
    raw, source = _raw(config, "timeout")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{source}: expected a number of seconds, got {raw!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise pytest.UsageError(
            f"{source}: the timeout must be a positive, finite number of seconds, got {raw!r} "
            "(leave the option out for no limit)"
        )
    return seconds


def _seconds(config: pytest.Config, name: str, default: float) -> float:
    """A positive, finite number of seconds, or ``default`` when unset."""
    raw, source = _raw(config, name)
    if raw is None:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{source}: expected a number of seconds, got {raw!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise pytest.UsageError(
            f"{source}: expected a positive, finite number of seconds, got {raw!r}"
        )
    return seconds


def _threads(config: pytest.Config) -> int | None:
    raw, source = _raw(config, "threads")
    if raw is None:
        return None
    try:
        threads = int(raw)
    except ValueError:
        raise pytest.UsageError(f"{source}: expected a number of threads, got {raw!r}") from None
    if threads < 1:
        raise pytest.UsageError(f"{source}: the number of threads must be at least 1, got {raw!r}")
    return threads


def _seed(config: pytest.Config) -> int:
    raw, source = _raw(config, "seed")
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise pytest.UsageError(f"{source}: expected an integer seed, got {raw!r}") from None


_PARAM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def parse_params(raw: str, source: str) -> tuple[tuple[str, Any], ...]:
    r"""``KEY=VALUE`` entries (lines or ';'-separated) as ``(key, value)`` pairs, in order.

    >>> parse_params("lr=0.05; name=scrub\nepochs=10", "--unlearn-param")
    (('lr', 0.05), ('name', 'scrub'), ('epochs', 10))
    """
    pairs: dict[str, Any] = {}
    for entry in (part.strip() for line in raw.splitlines() for part in line.split(";")):
        if not entry:
            continue
        key, sep, text = entry.partition("=")
        key = key.strip()
        if not sep or not _PARAM_KEY.fullmatch(key):
            raise pytest.UsageError(
                f"{source}: expected KEY=VALUE (a name, then '='), got {entry!r}"
            )
        if key in pairs:
            raise pytest.UsageError(f"{source}: parameter {key!r} is given twice")
        text = text.strip()
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        pairs[key] = value
    return tuple(pairs.items())


def _params(config: pytest.Config) -> tuple[tuple[str, Any], ...]:
    raw, source = _raw(config, "param")
    return () if raw is None else parse_params(raw, source)
