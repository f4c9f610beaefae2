"""The plugin's options, declared once in :data:`OPTIONS`, resolved into a typed :class:`Settings`.

Every option lives in pytest's ``unlearn`` group and can also be set as an ini key
(``unlearn_models = 50`` in ``[tool.pytest.ini_options]``) or an environment variable
(``PYTEST_UNLEARN_MODELS=50``); the command line wins over the environment, which wins over the
ini file, which wins over the default. Each entry of :data:`OPTIONS` gives an option's name, the
validator that turns its raw text into a value, its default (and how the docs show it) and its
meaning; the pytest option group, the ini keys, the :class:`Settings` fields, the ``--help``
text and the README's table (``python -m pytest_unlearn options``) all come from there.

>>> models = option("models")
>>> models.flag, models.ini, models.env, models.field
('--unlearn-models', 'unlearn_models', 'PYTEST_UNLEARN_MODELS', 'models')
>>> option("benchmark").field, option("param").field
('benchmarks', 'params')
>>> seconds()("2.5", None)
2.5
>>> choice(*PROFILES, what="profile")("slow", None)
Traceback (most recent call last):
    ...
pytest_unlearn.settings.Invalid: unknown profile 'slow' (known: full, quick)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable
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


class Invalid(ValueError):
    """A raw option value a validator refuses; the message leaves out where it was set."""


#: A validator: the raw text of a set option (and the run's config, which only ``path`` reads)
#: to its value, or :class:`Invalid`.
Validator = Callable[[str, pytest.Config], Any]


# -- validators ------------------------------------------------------------------------------


def text() -> Validator:
    """The raw text as it is.

    >>> text()("mymethod:unlearn", None)
    'mymethod:unlearn'
    """

    def parse(raw: str, config: pytest.Config) -> str:
        return raw

    return parse


def integer(
    minimum: int | None = None,
    maximum: int | Callable[[], int] | None = None,
    *,
    expected: str = "an integer",
    too_small: str = "must be at least {minimum}, got {raw!r}",
    too_large: str = "must be at most {maximum}, got {raw!r}",
) -> Validator:
    """An integer within ``[minimum, maximum]`` (``maximum`` may be computed when first needed).

    The messages are templates over ``raw``, ``value``, ``minimum`` and ``maximum``.

    >>> integer(minimum=1)("3", None)
    3
    >>> integer(minimum=1, expected="a number of threads")("two", None)
    Traceback (most recent call last):
        ...
    pytest_unlearn.settings.Invalid: expected a number of threads, got 'two'
    >>> integer(maximum=lambda: 9)("10", None)
    Traceback (most recent call last):
        ...
    pytest_unlearn.settings.Invalid: must be at most 9, got '10'
    """

    def parse(raw: str, config: pytest.Config) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise Invalid(f"expected {expected}, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise Invalid(too_small.format(raw=raw, value=value, minimum=minimum))
        if maximum is not None:
            bound = maximum() if callable(maximum) else maximum
            if value > bound:
                raise Invalid(too_large.format(raw=raw, value=value, maximum=bound))
        return value

    return parse


def seconds(
    *,
    out_of_range: str = "expected a positive, finite number of seconds, got {raw!r}",
) -> Validator:
    """A positive, finite number of seconds.

    >>> seconds()("60", None)
    60.0
    >>> seconds()("inf", None)
    Traceback (most recent call last):
        ...
    pytest_unlearn.settings.Invalid: expected a positive, finite number of seconds, got 'inf'
    """

    def parse(raw: str, config: pytest.Config) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise Invalid(f"expected a number of seconds, got {raw!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise Invalid(out_of_range.format(raw=raw))
        return value

    return parse


def choice(*choices: str, what: str = "value") -> Validator:
    """One of ``choices``, exactly.

    >>> choice("full", "quick", what="profile")("quick", None)
    'quick'
    """

    def parse(raw: str, config: pytest.Config) -> str:
        if raw not in choices:
            raise Invalid(f"unknown {what} {raw!r} (known: {', '.join(choices)})")
        return raw

    return parse


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def boolean() -> Validator:
    """A yes/no value: 1/0, true/false, yes/no, on/off (any case).

    >>> [boolean()(raw, None) for raw in ("1", "Off", "yes")]
    [True, False, True]
    """

    def parse(raw: str, config: pytest.Config) -> bool:
        value = raw.strip().lower()
        if value not in _TRUE | _FALSE:
            raise Invalid(f"expected a boolean (1/0, true/false), got {raw!r}")
        return value in _TRUE

    return parse


def path() -> Validator:
    """A path, ``~`` expanded, a relative one taken from the directory pytest was started in."""

    def parse(raw: str, config: pytest.Config) -> Path:
        value = Path(raw).expanduser()
        return value if value.is_absolute() else config.invocation_params.dir / value

    return parse


def device() -> Validator:
    """A torch device this machine can run a method on."""

    def parse(raw: str, config: pytest.Config) -> torch.device:
        import torch  # here, not at the top: an inert run never gets this far

        try:
            value = torch.device(raw)
        except RuntimeError as error:
            raise Invalid(f"{raw!r} is not a torch device ({error})") from None
        if value.type == "meta":
            raise Invalid(
                f"{raw!r} is not a device a method can run on (meta tensors hold no data)"
            )
        if value.type == "cuda" and not torch.cuda.is_available():
            raise Invalid(f"device {raw!r} requested but CUDA is not available")
        try:  # other device types (mps, xpu, ...) are only known to work once used
            torch.empty(0, device=value)
        except (RuntimeError, AssertionError) as error:
            raise Invalid(f"device {raw!r} is not usable here ({error})") from None
        return value

    return parse


def benchmarks() -> Validator:
    """Comma-separated known benchmark names, or ``all``: every one this run can build (GPU
    benchmarks only with ``--unlearn-device=cuda``)."""

    def parse(raw: str, config: pytest.Config) -> tuple[str, ...]:
        from .benchmarks import available_benchmarks, get_benchmark

        known = available_benchmarks()
        if raw.strip() == "all":  # buildable here; a GPU benchmark by name, or on a GPU run
            on_gpu = option("device").value(config).type == "cuda"
            return tuple(
                name
                for name in known
                if get_benchmark(name).buildable and (on_gpu or not get_benchmark(name).gpu)
            )
        chosen = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
        unknown = [name for name in chosen if name not in known]
        if unknown or not chosen:
            raise Invalid(
                f"unknown benchmark {', '.join(unknown) or repr(raw)} (known: {', '.join(known)})"
            )
        return chosen

    return parse


_PARAM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def params() -> Validator:
    r"""``KEY=VALUE`` entries (lines or ';'-separated) as ``(key, value)`` pairs, in order; a
    value is read as JSON when it parses, else kept as a string.

    >>> params()("lr=0.05; name=scrub\nlayers=[1, 2]", None)
    (('lr', 0.05), ('name', 'scrub'), ('layers', [1, 2]))
    """

    def parse(raw: str, config: pytest.Config) -> tuple[tuple[str, Any], ...]:
        pairs: dict[str, Any] = {}
        for entry in (part.strip() for line in raw.splitlines() for part in line.split(";")):
            if not entry:
                continue
            key, sep, value_text = entry.partition("=")
            key = key.strip()
            if not sep or not _PARAM_KEY.fullmatch(key):
                raise Invalid(f"expected KEY=VALUE (a name, then '='), got {entry!r}")
            if key in pairs:
                raise Invalid(f"parameter {key!r} is given twice")
            value_text = value_text.strip()
            try:
                value: Any = json.loads(value_text)
            except ValueError:
                value = value_text
            pairs[key] = value
        return tuple(pairs.items())

    return parse


# -- computed defaults -----------------------------------------------------------------------


def _max_models() -> int:
    from .store.builder import MAX_MODELS

    return MAX_MODELS


def _default_models(config: pytest.Config) -> int:
    return QUICK_MODELS if option("profile").value(config) == "quick" else DEFAULT_MODELS


def _default_cache_dir(config: pytest.Config) -> Path:
    from .store import default_cache_dir

    return default_cache_dir()


def _default_device(config: pytest.Config) -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# -- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One ``--unlearn-NAME`` option; its ini key and environment variable follow from the name.

    ``help`` and ``shown`` are Markdown (code in backticks, ``**`` for emphasis); ``--help``
    shows them without the marks.

    >>> entry = Option("retries", integer(minimum=0), default=3, help="how often to retry")
    >>> entry.usage, entry.default_text
    ('--unlearn-retries=VALUE', '3')
    """

    name: str  # the part after "--unlearn-"
    parse: Validator
    #: The value when the option is set nowhere: a value, or a function of the config.
    default: Any = None
    help: str = ""
    #: How the docs show the default; None: derived from a plain ``default``.
    shown: str | None = None
    metavar: str | None = "VALUE"  # how the value is written in docs; None: a flag, no value
    #: Its :class:`Settings` field when not the name with underscores.
    field_name: str | None = None
    repeatable: bool = False  # given once per value on the command line
    docs: str | None = None  # the page of docs/ that says more

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

    @property
    def field(self) -> str:
        return self.field_name or self.name.replace("-", "_")

    @property
    def usage(self) -> str:
        """How the option is written on the command line, e.g. ``--unlearn-models=N``."""
        return self.flag if self.metavar is None else f"{self.flag}={self.metavar}"

    @property
    def default_text(self) -> str:
        """The default as the docs show it (Markdown)."""
        if self.shown is not None:
            return self.shown
        if callable(self.default):
            raise TypeError(f"option {self.name}: a computed default needs a shown text")
        if self.default is None or self.default == ():
            return "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)

    def value(self, config: pytest.Config) -> Any:
        """The option's resolved value; a bad one is a ``pytest.UsageError`` naming its source."""
        raw, source = _raw(config, self.name)
        if raw is None:
            return self.default(config) if callable(self.default) else self.default
        try:
            return self.parse(raw, config)
        except Invalid as error:
            raise pytest.UsageError(f"{source}: {error}") from None


#: Every option, in the order ``--help`` and the README list them.
OPTIONS: tuple[Option, ...] = (
    Option(
        "method",
        text(),
        shown="none: the plugin stays inert",
        help="the unlearning method to evaluate",
        metavar="MODULE:FUNCTION",
    ),
    Option(
        "models",
        integer(
            2,
            _max_models,
            expected="an integer number of models",
            too_small="an ensemble needs at least {minimum} models, got {value}",
            too_large="at most {maximum} models per ensemble, got {value} (a store of that size "
            "trains 2 x N oracles per forget set and holds them all in memory; the measured "
            "verdicts go up to N=100)",
        ),
        default=_default_models,
        shown=f"{DEFAULT_MODELS} ({QUICK_MODELS} with `--unlearn-profile=quick`)",
        help="ensemble size used (at least 2); a store built for more models serves fewer",
        metavar="N",
    ),
    Option(
        "profile",
        choice(*PROFILES, what="profile"),
        default="full",
        shown="`full`",
        help="`full`: every forget set at the full ensemble size; `quick`: subpopulation and "
        f"sequential forget sets only, N={QUICK_MODELS} unless `--unlearn-models` says otherwise "
        "(the smallest measured N at which every benchmark's quick forget cases are "
        "conclusive), for gating pull requests",
        metavar="|".join(PROFILES),
        docs="docs/verdicts.md",
    ),
    Option(
        "benchmark",
        benchmarks(),
        default=DEFAULT_BENCHMARKS,
        shown=f"`{','.join(DEFAULT_BENCHMARKS)}`",
        help="comma-separated benchmarks to run, or `all` for every one this run can build "
        "(GPU ones, cifar10-resnet9, only with `--unlearn-device=cuda`; `python -m "
        "pytest_unlearn list` lists them)",
        metavar="A,B",
        field_name="benchmarks",
    ),
    Option(
        "cache-dir",
        path(),
        default=_default_cache_dir,
        shown="the user cache dir (`~/.cache/pytest-unlearn` on Linux)",
        help="where ensembles are built and reused",
        metavar="DIR",
    ),
    Option(
        "device",
        device(),
        default=_default_device,
        shown="`cuda` if available, else `cpu`",
        help="torch device where the method runs and ensembles are built",
        metavar="DEVICE",
    ),
    Option(
        "store",
        text(),
        shown="none: build locally",
        help="a published store to use instead of building locally: a directory, `file://` or "
        "`http(s)://` URL, or a Hugging Face dataset pinned to a commit, "
        "`hf://datasets/ORG/NAME@COMMIT` (needs `pytest-unlearn[hub]`); its benchmark's "
        "ensembles are fetched once, sha256-verified, cached",
        metavar="SOURCE",
        docs="docs/store.md",
    ),
    Option(
        "offline",
        boolean(),
        default=False,
        help="never touch the network: a `--unlearn-store` must already be cached",
        metavar=None,
    ),
    Option(
        "download-stall",
        seconds(),
        default=60.0,
        help="seconds without progress (under 1 KiB) after which a `--unlearn-store` download "
        "is given up as stalled",
        metavar="SECONDS",
    ),
    Option(
        "download-deadline",
        seconds(),
        default=3600.0,
        help="seconds one `--unlearn-store` file may take to download, all attempts together",
        metavar="SECONDS",
    ),
    Option(
        "timeout",
        seconds(
            out_of_range="the timeout must be a positive, finite number of seconds, got {raw!r} "
            "(leave the option out for no limit)"
        ),
        shown="none: no limit",
        help="seconds one method call may take: a call taking longer fails its forget set's "
        "tests; the run goes on",
        metavar="SECONDS",
    ),
    Option(
        "threads",
        integer(
            1,
            expected="a number of threads",
            too_small="the number of threads must be at least {minimum}, got {raw!r}",
        ),
        shown="the cores divided among the xdist workers",
        help="torch CPU threads per process; a fixed value makes CPU results bit-identical "
        "whatever `-n` is",
        metavar="N",
    ),
    Option(
        "seed",
        integer(expected="an integer seed"),
        default=0,
        help="salt for the seeds methods receive: rerun with fresh randomness",
        metavar="S",
    ),
    Option(
        "param",
        params(),
        default=(),
        help="a setting for the method, repeatable: it receives them as `context.params` (a "
        "value is read as JSON when it parses, e.g. `lr=0.05`, else as a string) and the JSON "
        "report records them; env and ini: one per line or `;`-separated",
        metavar="KEY=VALUE",
        field_name="params",
        repeatable=True,
    ),
    Option(
        "xfail-file",
        path(),
        help="conformance test ids expected to fail, `ID: reason` per line; strict (an "
        "unexpected pass fails)",
        metavar="PATH",
    ),
    Option(
        "baseline",
        path(),
        help="an earlier run's JSON report (`--unlearn-report`) of the same store and N: each "
        "test fails only on a **regression** beyond noise against its record there (the "
        "absolute verdict stays in the table and the report)",
        metavar="REPORT.json",
        docs="docs/ci.md",
    ),
    Option(
        "report",
        path(),
        help="write a JSON report of every conformance test to this file",
        metavar="REPORT.json",
        docs="docs/reports.md",
    ),
    Option(
        "plots",
        path(),
        help="write one PNG per benchmark/forget set/request into this directory (needs "
        "matplotlib)",
        metavar="DIR",
    ),
)
_BY_NAME = {entry.name: entry for entry in OPTIONS}


def option(name: str) -> Option:
    """The entry of :data:`OPTIONS` named ``name`` (the part after ``--unlearn-``)."""
    return _BY_NAME[name]


def _plain(markdown: str) -> str:
    """Markdown text as ``--help`` shows it: no backticks, no bold."""
    return markdown.replace("`", "").replace("**", "")


def _help(entry: Option) -> str:
    see = f" (see {entry.docs})" if entry.docs else ""
    return f"{_plain(entry.help)}{see}; default: {_plain(entry.default_text)}"


def add_options(parser: pytest.Parser) -> None:
    """Register the ``unlearn`` option group and its ini keys."""
    group = parser.getgroup("unlearn", "machine-unlearning conformance (pytest-unlearn)")
    for entry in OPTIONS:
        extra: dict[str, object] = {}
        if entry.metavar is None:
            extra = {"action": "store_const", "const": "1"}
        else:
            extra = {"metavar": entry.metavar}
            if entry.repeatable:
                extra["action"] = "append"
        group.addoption(
            entry.flag,
            dest=entry.dest,
            default=None,
            help=f"{_help(entry)} [env {entry.env}]",
            **extra,
        )
        parser.addini(entry.ini, help=_help(entry), default=None)


def options_table() -> str:
    """The Markdown table of every option (the README's), one row per entry of :data:`OPTIONS`.

    >>> options_table().splitlines()[:2]
    ['| option | default | meaning |', '| --- | --- | --- |']
    """

    def cell(markdown: str) -> str:
        return markdown.replace("|", "\\|")

    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for entry in OPTIONS:
        meaning = entry.help + (f"; [{entry.docs}]({entry.docs})" if entry.docs else "")
        rows.append(f"| `{cell(entry.usage)}` | {cell(entry.default_text)} | {cell(meaning)} |")
    return "\n".join(rows) + "\n"


def _raw(config: pytest.Config, name: str) -> tuple[str | None, str]:
    """The winning raw value and where it came from, for error messages."""
    entry = _BY_NAME[name]
    value = config.getoption(entry.dest)
    if value is not None:
        if isinstance(value, list):  # a repeatable option: one value per line
            return "\n".join(str(v) for v in value), entry.flag
        return str(value), entry.flag
    value = os.environ.get(entry.env)
    if value:
        return value, entry.env
    try:
        value = config.getini(entry.ini)
    except (TypeError, ValueError) as error:  # e.g. a TOML integer in pytest 9's [tool.pytest]
        raise pytest.UsageError(
            f'ini {entry.ini}: write the value as a string, e.g. {entry.ini} = "..." ({error})'
        ) from None
    if value:
        return str(value), f"ini {entry.ini}"
    return None, "default"


def method_spec(config: pytest.Config) -> tuple[str | None, str]:
    """The configured ``MODULE:FUNCTION`` (or None) and where it was set, for messages.

    Read before the other options are validated, so an inert run never fails on them.
    """
    spec, source = _raw(config, "method")
    if source == option("method").flag and spec is not None:
        source = f"{source}={spec!r}"
    else:
        source = f"{source} ({spec!r})"
    return spec, source


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one pytest run: one field per entry of :data:`OPTIONS`,
    whose entries hold the defaults (the fields have none of their own).

    ``Settings.from_config(config)`` builds it once the plugin is active; a field left unset
    everywhere holds its option's default, e.g. ``models`` is 100 (50 with
    ``--unlearn-profile=quick``).

    >>> from dataclasses import fields
    >>> sorted(entry.field for entry in OPTIONS) == sorted(f.name for f in fields(Settings))
    True
    """

    method: str | None
    models: int
    cache_dir: Path
    device: torch.device
    benchmarks: tuple[str, ...]
    store: str | None
    offline: bool
    timeout: float | None
    xfail_file: Path | None
    profile: str
    seed: int
    report: Path | None
    plots: Path | None
    threads: int | None
    #: ``--unlearn-param KEY=VALUE``: what the method receives as ``context.params``.
    params: tuple[tuple[str, Any], ...]
    baseline: Path | None
    download_stall: float
    download_deadline: float

    def source_of(self, config: pytest.Config, name: str) -> str:
        """Where option ``name`` was set (flag, env variable, ini key), for messages."""
        return _raw(config, name)[1]

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Resolve every option; a bad value raises ``pytest.UsageError`` naming its source."""
        return cls(**{entry.field: entry.value(config) for entry in OPTIONS})

    @classmethod
    def for_this_process(cls, config: pytest.Config) -> Settings:
        """:meth:`from_config`, with this process set up to run (its torch threads and, for an
        xdist worker, its GPU: :func:`.workers.configure_worker`) and ``device`` the one it
        uses. The conformance run and the public fixtures both start from it."""
        from .workers import configure_worker

        settings = cls.from_config(config)
        device = configure_worker(config, settings.device, settings.threads)
        return dataclasses.replace(settings, device=device)
