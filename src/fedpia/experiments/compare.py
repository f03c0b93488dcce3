"""``fedpia compare``: a grid of methods x seeds on one preset, with a summary, table and plots."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedpia.experiments.config import ExperimentConfig
from fedpia.experiments.plots import plot_compare
from fedpia.experiments.report import NOTE, STD_NOTE, compare_table, curves, per_client
from fedpia.experiments.resume import check_resume_config, refuse_existing_run
from fedpia.experiments.runner import provenance, run_experiment
from fedpia.experiments.variants import apply_variant


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def run_compare(
    base: ExperimentConfig,
    *,
    methods: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every (method, seed) into ``out_dir/<method>/seed<k>/`` and summarise.

    Writes ``summary.json`` (config, provenance, mean ± std over seeds per method and per client,
    curves),
    ``summary.md`` (markdown tables) and PNG plots. Returns the summary.
    """
    if not methods:
        raise ValueError("compare needs at least one method")
    if not seeds:
        raise ValueError("compare needs at least one seed")
    out = Path(out_dir)
    configs = {m: apply_variant(base, m) for m in methods}  # validate every name before running
    for what, items in (("method", methods), ("seed", seeds)):
        repeated = sorted({str(x) for x in items if list(items).count(x) > 1})
        if repeated:
            raise ValueError(f"compare: {what}(s) {repeated} given more than once")
    # refuse an occupied folder now, not after hours of earlier runs
    refuse_existing_run(out, resume=resume, overwrite=overwrite, markers=("summary.json",))
    seeded = {(m, s): cfg.with_overrides([f"sim.seed={int(s)}"]) for m, cfg in configs.items()
              for s in seeds}  # also checks every seed
    for m in methods:
        for seed in seeds:
            run_dir = out / _slug(m) / f"seed{seed}"
            refuse_existing_run(run_dir, resume=resume, overwrite=overwrite)
            if resume:
                check_resume_config(run_dir, seeded[m, seed])
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for m in methods:
        for seed in seeds:
            if on_event:
                on_event("run_start", {"method": m, "seed": seed})
            runs[m].append(
                run_experiment(seeded[m, seed], out_dir=out / _slug(m) / f"seed{seed}", resume=resume,
                               overwrite=overwrite, on_event=on_event)
            )
    summary = {
        "preset": base.name,
        "methods": list(methods),
        "seeds": list(seeds),
        "config": base.to_dict(),
        "provenance": provenance(),
        "std": "over seeds, population (ddof=0)",
        "results": {},
        "per_client": {view: per_client(runs, view=view) for view in ("personalized", "global")},
        "curves": {"personalized": curves(runs, view="personalized"), "global": curves(runs, view="global")},
    }
    for m, rs in runs.items():
        entry: dict[str, Any] = {}
        for view in ("personalized", "global"):
            means = [r["summary"]["mean"].get(view) for r in rs if view in r["summary"]["mean"]]
            if means:
                entry[view] = {"mean": float(np.mean(means)), "std": float(np.std(means)), "per_seed": means}
        entry["wall_time"] = [r["summary"]["wall_time"] for r in rs]
        entry["bytes_communicated"] = rs[0]["summary"]["bytes_communicated"]
        summary["results"][m] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    md = [
        f"# compare: {base.name} ({base.setting}), seeds {list(seeds)}",
        "",
        "## Personalized (each client's adapter after local training), % ",
        "",
        compare_table(runs, view="personalized"),
        "",
        "## Global adapter with each client's head, %",
        "",
        compare_table(runs, view="global"),
        "",
        STD_NOTE + " " + NOTE,
        "",
    ]
    (out / "summary.md").write_text("\n".join(md))
    summary["table"] = "\n".join(md)
    title = f"compare: {base.name} (setting {base.setting}), seeds {list(seeds)}"
    summary["plots"] = [str(p) for p in plot_compare(runs, out, title=title)]
    return summary
