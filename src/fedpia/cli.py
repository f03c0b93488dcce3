"""``fedpia`` command line: run, compare, demo, list, export, predict, data summary.

Thin layer over :mod:`fedpia.experiments`; every command is also a plain Python function there.
Help texts are plain text (no reStructuredText): ``fedpia --help`` prints them as written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

APP_HELP = (
    "Federated fine-tuning of vision-language models with adapters (FedPIA and baselines).\n\n"
    "Start with `fedpia demo`, list what is available with `fedpia list presets|strategies|backbones|peft`, "
    "run one experiment with `fedpia run --preset NAME` and several with `fedpia compare`; take a "
    "trained adapter out with `fedpia export RUN_DIR --out DIR` and use it with `fedpia predict DIR`."
)
# show_locals off: a crash must not dump tensors (thousands of lines) into the terminal
app = typer.Typer(add_completion=False, no_args_is_help=True, help=APP_HELP,
                  pretty_exceptions_show_locals=False)
data_app = typer.Typer(no_args_is_help=True, help="Inspect the data of a preset.")
app.add_typer(data_app, name="data")
console = Console()

DEFAULT_DATA_ROOT_ENV = "FEDPIA_DATA_ROOT"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, markup=False)],
        force=True,
    )
    for noisy in ("transformers", "urllib3", "matplotlib", "PIL", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# user errors (bad config, missing / unreadable files, an occupied --out, a logging backend whose
# package is missing): message + exit 2; with --verbose the traceback is shown instead (a
# ValueError may also be a bug deep in a run)
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError)
LOGGER_HELP = ("also log each round to tensorboard | mlflow | csv (repeatable; OUT/rounds.csv is "
               "always written unless logging.backends drops it)")


def _user_errors() -> tuple[type[Exception], ...]:
    from fedpia.experiments.loggers import LoggerUnavailable

    return (*USER_ERRORS, LoggerUnavailable)


def _user_error(exc: Exception, verbose: bool) -> None:
    if verbose:
        raise exc
    _fail(f"{exc}\n(--verbose shows where it was raised)")


def _fail(msg: str) -> None:
    console.print("[bold red]error:[/] ", end="")
    console.print(msg, markup=False, highlight=False)
    raise typer.Exit(code=2)


def _print_table(text: str) -> None:
    """Markdown tables unwrapped (wrapping at the terminal width breaks their rows)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _load_config(preset: str | None, config: Path | None, sets: list[str], data_root: Path | None,
                 engine: str | None, loggers: list[str] = ()) -> Any:  # noqa: B006 (never mutated)
    from fedpia.experiments import ExperimentConfig, get_preset

    if preset and config:
        _fail("give either --preset or --config, not both")
    cfg = ExperimentConfig.from_file(config) if config else get_preset(preset or "demo")
    extra = list(sets)
    root = data_root or os.environ.get(DEFAULT_DATA_ROOT_ENV)
    if root:
        extra.append(f"data_root={str(Path(root).resolve())!r}")
    if engine:
        extra.append(f"engine={engine!r}")
    cfg = cfg.with_overrides(extra)
    if loggers:  # added to the configured backends (rounds.csv stays on unless the config drops it)
        backends = list(dict.fromkeys([*cfg.logging.backends, *loggers]))
        cfg = cfg.with_overrides([f"logging.backends={backends!r}"])
    cfg.validate()
    return cfg


class _Progress:
    """rich progress bars: one for rounds, one for the clients of the current round."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        )
        self.round_task = None
        self.client_task = None

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "run_start":
            console.print(f"[bold]{info['method']}[/] seed {info['seed']}")
            for task in (self.round_task, self.client_task):  # one set of bars at a time
                if task is not None:
                    self.bar.remove_task(task)
            self.round_task = self.client_task = None
        elif event == "encode":
            console.log(f"encoding data of client {info['client']}")
        elif event == "round_start":
            if self.round_task is None:
                self.round_task = self.bar.add_task("rounds", total=self.rounds)
            if self.client_task is not None:
                self.bar.remove_task(self.client_task)
            self.client_task = self.bar.add_task(f"  round {info['round']} clients", total=len(info["clients"]))
        elif event == "client_done":
            self.bar.advance(self.client_task)
        elif event == "round_end":
            self.bar.advance(self.round_task)
            means = _round_means(info)
            self.bar.console.log(f"round {info['round']}: {means}  ({info['round_time']:.1f} s)")


def _round_means(record: dict[str, Any]) -> str:
    import numpy as np

    parts = []
    for view in ("personalized", "global"):
        vals = [r[view].get("accuracy", r[view].get("f1_micro")) for r in record["eval"].values() if view in r]
        vals = [v for v in vals if v is not None]
        if vals:
            parts.append(f"{view} {100 * float(np.mean(vals)):.1f}%")
    return ", ".join(parts)


@app.command()
def run(
    preset: Annotated[str | None, typer.Option(help="preset name (see `fedpia presets`)")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML config file")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="override a config field, e.g. sim.rounds=3 (repeatable)")] = [],  # noqa: B006
    data_root: Annotated[Path | None, typer.Option(help="folder with vqa_rad/, medmnist/, ...")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/run"),
    engine: Annotated[str | None, typer.Option(help="inprocess | flower")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint in --out; with a larger sim.rounds, extend the run")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier run in --out")] = False,
    logger: Annotated[list[str], typer.Option(help=LOGGER_HELP)] = [],  # noqa: B006
    verbose: Annotated[bool, typer.Option(help="debug logs; tracebacks instead of short errors")] = False,
) -> None:
    """Run one experiment; writes OUT/results.json, OUT/report.md, OUT/rounds.csv, plots and checkpoints."""
    from fedpia.experiments import run_experiment

    _setup_logging(verbose)
    try:
        cfg = _load_config(preset, config, set_, data_root, engine, logger)
        with _Progress(cfg.sim.rounds) as prog:
            results = run_experiment(cfg, out_dir=out, resume=resume, overwrite=overwrite, on_event=prog)
    except _user_errors() as exc:
        _user_error(exc, verbose)
    _print_table((out / "report.md").read_text())
    console.print(f"results: {out / 'results.json'}  (elapsed {results['elapsed']:.1f} s)")
    if results.get("status") == "failed":  # every round skipped: results kept, exit code 1
        console.print(f"[bold red]run failed:[/] {results['failure']}", highlight=False)
        raise typer.Exit(code=1)


@app.command()
def compare(
    preset: Annotated[str | None, typer.Option(help="preset name")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML config file")] = None,
    strategies: Annotated[str, typer.Option(help="comma-separated methods")] = "fedpia,fedavg",
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "0",
    set_: Annotated[list[str], typer.Option("--set", help="override a config field, e.g. sim.rounds=3 (repeatable)")] = [],  # noqa: B006
    data_root: Annotated[Path | None, typer.Option(help="folder with vqa_rad/, medmnist/, ...")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/compare"),
    resume: Annotated[bool, typer.Option(help="continue runs from their checkpoints in --out; with a larger sim.rounds, extend them")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace earlier runs in --out")] = False,
    logger: Annotated[list[str], typer.Option(help=LOGGER_HELP)] = [],  # noqa: B006
    verbose: Annotated[bool, typer.Option(help="debug logs; tracebacks instead of short errors")] = False,
) -> None:
    """Run methods x seeds; writes OUT/summary.json, OUT/summary.md and plots."""
    from fedpia.experiments import run_compare

    _setup_logging(verbose)
    try:
        cfg = _load_config(preset, config, set_, data_root, None, logger)
        methods = [m.strip() for m in strategies.split(",") if m.strip()]
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            _fail(f"--seeds must be comma-separated integers (e.g. 0,1,2), got {seeds!r}")
        with _Progress(cfg.sim.rounds) as prog:
            summary = run_compare(cfg, methods=methods, seeds=seed_list, out_dir=out, resume=resume,
                                  overwrite=overwrite, on_event=prog)
    except _user_errors() as exc:
        _user_error(exc, verbose)
    _print_table(summary["table"])
    console.print(f"summary: {out / 'summary.json'}; plots: {', '.join(summary['plots'])}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/demo"),
    rounds: Annotated[int | None, typer.Option(help="override the number of rounds")] = None,
) -> None:
    """The embedded default: FedPIA vs FedAvg on synthetic medical VQA, CPU, a few minutes.

    Each call starts over in OUT (an earlier demo there is replaced)."""
    sets = [f"sim.rounds={rounds}"] if rounds else []
    compare(preset="demo", config=None, strategies="fedpia,fedavg", seeds="0", set_=sets,
            data_root=None, out=out, resume=False, overwrite=True, logger=[], verbose=False)


@app.command()
def presets() -> None:
    """List the presets with their setting and whether they need --data-root."""
    from fedpia.experiments import PRESETS

    table = Table("preset", "setting", "needs --data-root", "description")
    for p in PRESETS.values():
        table.add_row(p.name, p.config["setting"], "yes" if p.needs_data else "no", p.description)
    console.print(table)


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="presets | strategies | backbones | peft")],
) -> None:
    """List what can be chosen: presets, strategies (and compare's method variants), backbones, PEFT methods."""
    from fedpia.experiments.catalog import KINDS, catalog

    if what not in KINDS:
        _fail(f"fedpia list takes one of {', '.join(KINDS)}; got {what!r}")
    header = {"presets": "preset", "strategies": "strategy", "backbones": "backbone", "peft": "PEFT method"}
    table = Table(header[what], "description")
    for name, description in catalog(what):
        table.add_row(Text(name), Text(description))  # Text: "[CLS]" is not rich markup
    console.print(table, highlight=False)


def _version(value: bool) -> None:
    if value:
        from fedpia import __version__

        console.print(f"fedpia {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the fedpia version and exit")] = False,
) -> None:
    """Federated fine-tuning of vision-language models with adapters."""


@app.command("export")
def export_(
    run_dir: Annotated[Path, typer.Argument(help="a run folder (the --out of fedpia run)")],
    out: Annotated[Path, typer.Option(help="the export folder to write")],
    adapter: Annotated[str, typer.Option(help="global, or a client name: its personalised adapter")] = "global",
    force: Annotated[bool, typer.Option(help="replace an earlier export in --out")] = False,
    verbose: Annotated[bool, typer.Option(help="debug logs; tracebacks instead of short errors")] = False,
) -> None:
    """Export a run's adapter, heads and their vocabularies to a self-describing folder (docs/export.md)."""
    from fedpia.export import MANIFEST, export_run

    _setup_logging(verbose)
    try:
        export_run(run_dir, out, adapter, force=force)
    except USER_ERRORS as exc:
        _user_error(exc, verbose)
    console.print(f"exported: {out / MANIFEST}", markup=False, highlight=False)


@app.command("predict")
def predict_(
    export_dir: Annotated[Path, typer.Argument(help="an export folder (fedpia export --out)")],
    image: Annotated[Path, typer.Option(help="image file")],
    question: Annotated[str, typer.Option(help="the question (VQA) or the text of a classification task")],
    top_k: Annotated[int, typer.Option(help="answers shown (VQA / multiclass)")] = 5,
    head: Annotated[str | None, typer.Option(help="which client's head (needed when the export has several)")] = None,
    threshold: Annotated[float | None, typer.Option(help="multi-label: show labels scoring at least this (default 0.5)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:n] | mps")] = "auto",
    verbose: Annotated[bool, typer.Option(help="debug logs; tracebacks instead of short errors")] = False,
) -> None:
    """Answer a question about an image with an exported adapter: labels with scores, best first."""
    from fedpia.export import MULTILABEL_THRESHOLD, load_exported, predict

    _setup_logging(verbose)
    try:
        exported = load_exported(export_dir, device=device)
        chosen = exported.head(head)
        answers = predict(exported, image, question, head=chosen.name, top_k=top_k, threshold=threshold)
    except USER_ERRORS as exc:
        _user_error(exc, verbose)
    console.print(f"head {chosen.name} ({chosen.task})", markup=False, highlight=False)
    table = Table("label" if chosen.task == "multilabel" else "answer", "score")
    for label, score in answers:
        table.add_row(Text(label), f"{score:.4f}")
    console.print(table, highlight=False)
    if not answers:
        best = predict(exported, image, question, head=chosen.name, threshold=float("-inf"))[0]
        cut = MULTILABEL_THRESHOLD if threshold is None else threshold
        console.print(f"no label scores {cut} or more (highest: {best[0]} "
                      f"{best[1]:.4f})", markup=False, highlight=False)


@data_app.command("summary")
def data_summary(
    preset: str,
    data_root: Annotated[Path | None, typer.Option(help="folder with vqa_rad/, medmnist/, ...")] = None,
) -> None:
    """Per-client splits, tasks and label histograms of a preset's data."""
    from fedpia.data import describe, get_setting

    try:
        cfg = _load_config(preset, None, [], data_root, None)
        fd = get_setting(cfg.setting, data_root=cfg.data_root, seed=cfg.sim.seed, **cfg.setting_options)
    except USER_ERRORS as exc:
        _fail(str(exc))
    console.print(describe(fd), markup=False, highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
