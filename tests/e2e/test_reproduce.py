"""`bash launch/reproduce.sh --reduced`: every stage runs with 2 torchrun ranks and writes its own HDF5 file, the
report and its figures are made from exactly those files (their sha256 are in it), a rerun skips what completed
and resumes what did not, and a directory of the other plan is refused."""
import hashlib
import re
import subprocess

from helpers import REPO

STAGES = (["family"] + [f"probe-{s}" for s in ("xs", "s", "m", "l")] + [f"moments-{s}" for s in ("xs", "s", "m", "l")]
          + [f"train-N{n}" for n in (10, 20, 30)] + [f"slq-{s}" for s in ("xs", "s", "m", "l")])
FIGURES = ("best_of_n", "sigma_window", "rise_decay", "spectra")


def reproduce(*args, check=True):
    proc = subprocess.run(["bash", "launch/reproduce.sh", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=1500)
    if check and proc.returncode:
        raise AssertionError(f"reproduce.sh {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def test_reduced_plan_report_resume(tmp_path):
    out = tmp_path / "run"
    reproduce("--reduced", "--out", str(out))
    report = (out / "report" / "reproduction.md").read_text()
    listed = dict(re.findall(r"^\| (\S+\.h5) \| `([0-9a-f]{64})` \| [0-9a-f]{12} \| 2 \|$", report, re.M))
    written = {str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest() for f in out.glob("*/*.h5")}
    assert listed == written and len(written) == len(STAGES) - 1  # every stage but family wrote one file: all read
    for name in FIGURES:
        png = out / "report" / "figures" / f"reproduce_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_mtime >= max(
            f.stat().st_mtime for f in out.glob("*/*.h5"))
        assert f"](figures/reproduce_{name}.png)" in report
    assert all(f"| {s} |" in report for s in STAGES) and "plan: **reduced**" in report
    verdicts = re.findall(r"\| \*\*(holds|does not hold|inconclusive)\*\* \|", report)
    assert len(verdicts) == 6

    (out / "train-N20" / ".done").unlink()  # as if interrupted after its last checkpoint
    again = reproduce("--reduced", "--out", str(out))
    skipped = set(re.findall(r"\[reproduce\] (\S+): complete, skipped", again.stdout))
    assert skipped == set(STAGES) - {"train-N20"}
    assert "resumed from" in again.stdout and (out / "train-N20" / ".done").is_file()

    wrong = reproduce("--out", str(out), check=False)
    assert wrong.returncode == 2 and "holds a reduced plan" in wrong.stderr.strip().splitlines()[-1]
