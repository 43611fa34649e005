"""docs/reproduction.md: the claims table, the family, the figures, the stage times, the inputs and the commands."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from analysis.hdf5 import open_file

COMMANDS = """```bash
bash launch/reproduce.sh              # full plan -> runs/reproduce, report -> docs/reproduction.md (rerun: resumes)
bash launch/reproduce.sh --reduced    # small budgets -> runs/reproduce-reduced/report/ (what CI runs)
python -m analysis.reproduce runs/reproduce --report docs   # the report alone, from the stage files
```
Each stage by hand (the configs' headers): `python -m es_hpc probe --config configs/reproduce/best_of_n.yaml
--set model.path=embedded:tiny-xs --out DIR`, the same with `moments.yaml`; `python -m es_hpc train --config
configs/reproduce/rise_decay.yaml --set es.population=10 --out DIR`; `python -m es_hpc slq --config
configs/reproduce/slq.yaml --checkpoint embedded:tiny-l --out DIR`. `launch/reproduce.sh` runs them with
`torchrun --nproc_per_node=$NPROC` (default 2)."""


SCOPE = """What these models can and cannot say about the paper's claims:
- The family spans 15.5x in parameters (0.15M to 2.38M), as the paper's 0.5B to 7B span 14x, but it is four orders of
  magnitude smaller, with one task (2-digit addition, 0/1 exact-match reward, greedy decoding): a claim that holds
  here is consistent with the paper, not a test of it at its scale; one that does not hold is a finding about these
  models.
- The probe's rewards are means of P 0/1 answers (P = 64 in the full plan), so every dR is a multiple of 1/P and
  many candidates tie.
- Each training curve is one ES run (one seed per N): t_peak's interval is that of the smoothed curve, not across
  seeds.
- The spectra are of the answer cross-entropy's Hessian at the pretrained weights (the `hvp` operator) on a small
  prompt pool from a few Lanczos probes (configs/reproduce/slq.yaml): extreme Ritz values converge first, the bulk's
  shape is resolved only coarsely."""


REDUCED_NOTE = "; its budgets are small by design, so most verdicts are inconclusive"


def inputs(run: Path) -> list[tuple[str, str, str, str]]:
    """(path relative to the run, sha256, the es_hpc commit and world size that wrote it) of every HDF5 file the
    report read: the report is of these files."""
    rows = []
    for f in sorted(run.glob("*/*.h5")):
        if (f.parent / ".done").is_file():
            with open_file(f) as h:
                commit, world = str(h.attrs.get("git_commit", "?"))[:12], str(h.attrs.get("world_size", "?"))
            rows.append((str(f.relative_to(run)), hashlib.sha256(f.read_bytes()).hexdigest(), commit, world))
    return rows


def family(run: Path, m: dict) -> list[str]:
    """One table row per probed size: its model directory's recorded build facts and the probe's R0."""
    rows = ["| size | model | parameters | hidden x layers | pretraining steps | val / test accuracy | R0 (pool) |",
            "|---|---|---|---|---|---|---|"]
    for k, v in m["probe"].items():
        with open_file(run / f"probe-{k}" / "probe.h5") as f:
            model = str(f.attrs["model"])
        facts_file = run / "family" / f"{k}.json"  # the model's tiny_model.json, copied by the family stage
        facts = json.loads(facts_file.read_text()) if facts_file.is_file() else {}
        shape = f"{facts.get('hidden', '?')} x {facts.get('layers', '?')}"
        acc = f"{facts.get('val_accuracy', float('nan')):.3f} / {facts.get('test_accuracy', float('nan')):.3f}"
        rows.append(f"| {k} | {Path(model).name} | {v['parameters']:,} | {shape} | {facts.get('steps', '?')} "
                    f"| {acc} | {v['r0']:.3f} |")
    return rows


def moments_table(moments: dict) -> list[str]:
    """tr H, tr H^2, |g|^2 and eff_dim of the reward per size and sigma (analysis.curvature_moments), intervals
    from its bootstrap over candidates; `local`: tr H and tr H^2 agree with the smallest sigma's within 3 se."""
    rows = ["| size | sigma | pairs | tr H | tr H^2 | abs(g)^2 | eff_dim | local |",
            "|---|---|---|---|---|---|---|---|"]
    for k, v in moments.items():
        if "error" in v:
            rows.append(f"| {k} | | | not defined: {_cell(v['error'])} | | | | |")
            continue
        for r in v["per_sigma"]:
            q = [f"{r[n]['value']:.3g} [{r[n]['ci'][0]:.3g}, {r[n]['ci'][1]:.3g}]"
                 for n in ("tr_H", "tr_H2", "grad_sq", "eff_dim")]
            rows.append(f"| {k} | {r['sigma']:g} | {r['pairs']} | " + " | ".join(q) + f" | {r['local']} |")
    return rows + ["", "H is the Hessian of the reward (negative definite at a maximum): s = dR+ + dR- = sigma^2 "
                   "eps^T H eps to leading order. The reward is a mean of P 0/1 answers, so dR moves in steps of "
                   "1/P and only pairs that change an answer contribute."]


def _cell(text: str) -> str:
    """Text for one markdown table cell: pipes escaped, one line."""
    return text.replace("|", "\\|").replace("\n", " ")


def write(run: Path, report: Path, m: dict, claims: list[dict], figures: list[Path]) -> Path:
    """Write report/reproduction.md (figures linked relative to it) and return its path."""
    lines = [
        "# The paper's claims on the embedded model family", "",
        f"Written by `python -m analysis.reproduce` from the files `launch/reproduce.sh` wrote in `{run.name}/` "
        f"(plan: **{m['plan']}**{REDUCED_NOTE if m['plan'] == 'reduced' else ''}). "
        "Every number below is computed from those files; the inputs and their sha256 are listed at the end. "
        "Intervals are 95%: 1.96 standard errors across probe batches, or bootstrap percentiles over candidates.",
        "", "## Claims", "",
        "| claim | paper | measured | verdict | why |", "|---|---|---|---|---|",
        *[f"| {_cell(c['claim'])} | {c['figure']} | {_cell(c['measured'])} | **{c['verdict']}** | {_cell(c['why'])} |"
          for c in claims],
        "", "Rules (fixed before any run, in `analysis/reproduce/claims.py`):", "",
        *[f"- *{c['claim']}*: {c['rule']}." for c in claims],
        "", "## Scope", "", SCOPE,
        "", "## The family", "", *family(run, m), "",
        "## Curvature moments per size (antithetic probes)", "", *moments_table(m["moments"]), "",
        "## Figures", "",
        *[f"![{f.stem}]({os.path.relpath(f, report)})" for f in figures],
        "", "## Stages", "", "| stage | seconds | plan |", "|---|---|---|",
        *[f"| {name} | {sec:.0f} | {plan} |" for name, sec, plan in m["stages"]],
        f"| total | {sum(s for _, s, _ in m['stages']):.0f} | |",
        "", "## Commands", "", COMMANDS,
        "", "## Inputs", "", "| file | sha256 | written by es_hpc | ranks |", "|---|---|---|---|",
        *[f"| {name} | `{digest}` | {commit} | {world} |" for name, digest, commit, world in inputs(run)], "",
    ]
    report.mkdir(parents=True, exist_ok=True)
    path = report / "reproduction.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path
