"""End to end: the log of a running train job is read by analysis.train_curve in other processes (HDF5 SWMR)."""
import json
import signal
import subprocess
import sys

from helpers import REPO, run, start, train_cmd, wait_for

SETS = ["train.iterations=1000", "train.checkpoint_every=1000"]  # runs far longer than the test watches it


def test_train_curve_reads_a_running_job(tiny_model_dir, tmp_path):
    out, log = tmp_path / "run", tmp_path / "train.log"
    curve = ["-m", "analysis.train_curve", str(out / "es_log.h5"), "--json"]
    proc = start(train_cmd(tiny_model_dir, out, SETS), log)
    try:
        wait_for(log, "iter      1", proc)  # printed once iteration 1's row is flushed
        readers = [subprocess.Popen([sys.executable, *curve], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]  # any number of readers at once
        results = [r.communicate(timeout=300) for r in readers]
        assert proc.poll() is None, "the job ended before its log was read"
        for r, (stdout, stderr) in zip(readers, results):
            assert r.returncode == 0, stderr
            assert json.loads(stdout)["iterations_logged"] >= 2
        proc.send_signal(signal.SIGTERM)  # checkpoint and stop, closing the log
        assert proc.wait(timeout=300) == 75, log.read_text()[-3000:]
    finally:
        proc.kill()
        proc.wait()
    final = json.loads(run(curve).stdout)
    assert final["iterations_logged"] >= max(json.loads(s)["iterations_logged"] for s, _ in results)
