"""Dataset loading (es_hpc/tasks/data.py): local files, folders and save_to_disk offline, hub ids failing in one
line, split assignment, and the fixed evaluation pool (Appendix G.3) on dataset rows."""
import json
import pickle
from pathlib import Path

import datasets
import numpy as np
import pytest

from es_hpc import tasks
from es_hpc.config import ConfigError
from es_hpc.tasks.data import assign_splits, load_splits

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "datasets"
ROWS = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(20)]


def test_fixture_formats_load_offline():
    gsm = load_splits(str(FIXTURES / "gsm8k"))  # a folder of jsonl files, splits from the file names
    assert sorted(gsm) == ["test", "train"] and len(gsm["train"]) == 8
    assert gsm["train"][0]["question"].startswith("Mia buys 3 packs")  # the file's order
    arc = load_splits(str(FIXTURES / "arc_challenge"), "ARC-Challenge")  # parquet, `name` as the subfolder
    assert {k: len(v) for k, v in arc.items()} == {"train": 6, "validation": 2, "test": 3}
    assert arc["train"][2]["choices"] == {"text": ["a ruler", "a thermometer", "a balance", "a graduated cylinder"],
                                          "label": ["1", "2", "3", "4"]}
    assert load_splits(str(FIXTURES / "countdown"))["train"][0] == {"target": 46, "nums": [3, 7, 25]}  # save_to_disk


def test_single_files_and_saved_dataset(tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert load_splits(str(jsonl)) == {"train": ROWS}
    datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "rows.parquet"))
    assert load_splits(str(tmp_path / "rows.parquet")) == {"train": ROWS}
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))  # a Dataset, not a DatasetDict
    assert load_splits(str(tmp_path / "saved")) == {"train": ROWS}
    task = tasks.get("gsm8k", path=str(jsonl), splits={"test": None}, val_size=3, test_size=4)
    assert [len(task.rows(s)) for s in tasks.SPLITS] == [13, 3, 4]


def test_bad_paths_name_the_option(tmp_path):
    """A missing path or unknown format, and bad options, fail when the task is built; what only reading the data
    can tell fails on first use of its rows."""
    with pytest.raises(ConfigError, match=r"^task.options.path: no such file or folder"):
        tasks.get("gsm8k", path=str(tmp_path / "missing"))
    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"^task.options.path: .*rows.txt is not one of .jsonl"):
        tasks.get("gsm8k", path=str(tmp_path / "rows.txt"))
    with pytest.raises(ConfigError, match=r"^task.options.splits: unknown split"):
        tasks.get("gsm8k", path=str(FIXTURES / "gsm8k"), splits={"dev": "test"})
    with pytest.raises(ConfigError, match=r"^task.options.bogus: unknown option of gsm8k"):
        tasks.get("gsm8k", bogus=1)
    with pytest.raises(ConfigError, match=r"^task.options.val_size: expected an integer"):
        tasks.get("gsm8k", path=str(FIXTURES / "gsm8k"), val_size=-1)
    (tmp_path / "broken.jsonl").write_text('{"question": "q"\n')
    (tmp_path / "empty").mkdir()
    on_first_use = [
        (r"^task.options.splits.test: the dataset has no split 'test' \(it", dict(path=str(FIXTURES / "countdown"))),
        (r"^task.options.val_size/test_size: 500 \+ 0 rows derived from a train", dict(path=str(FIXTURES / "gsm8k"))),
        (r"^task.options.path: cannot read a dataset from .*broken.jsonl \(JSON",
         dict(path=str(tmp_path / "broken.jsonl"))),
        (r"^task.options.path: cannot read a dataset from .*empty \(The directory", dict(path=str(tmp_path / "empty"))),
        (r"^task.options.path: gsm8k needs columns question, answer; the test rows have target, nums",
         dict(path=str(FIXTURES / "countdown"), splits={"test": None}, val_size=1, test_size=1)),
    ]
    for message, options in on_first_use:
        task = tasks.get("gsm8k", **options)
        with pytest.raises(ConfigError, match=message):
            task.rows("train")


def test_rules_work_without_data(monkeypatch):
    """Building a dataset task reads nothing (not even from the hub's cache), so its reward works anywhere; the
    rows are read on first use, once, and a pickled task carries its rules but no rows."""
    reads = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: reads.append(a) or pytest.fail("read data"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    for name in ("gsm8k", "arc_challenge", "winogrande", "countdown"):
        tasks.get(name)  # their default paths are hub ids, not in this machine's cache
    gsm = tasks.get("gsm8k")
    assert gsm.reward("so 6 * 7 = 42. #### 42", {"question": "?", "answer": "... #### 42"}) == 1.0
    assert gsm.reward("#### 41", {"answer": "#### 42"}) == 0.0
    assert reads == []
    monkeypatch.undo()
    local = tasks.get("gsm8k", path=str(FIXTURES / "gsm8k"), val_size=2)
    train = local.rows("train")
    again = pickle.loads(pickle.dumps(local))
    assert again._splits is None and again.reward("#### 7", {"answer": "#### 7"}) == 1.0
    assert again.rows("train") == train  # read again where it is used


def test_hub_id_offline_is_one_line_naming_the_option(monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as err:
        tasks.get("gsm8k").rows("train")  # openai/gsm8k, not in this machine's cache
    msg = str(err.value)
    assert msg.startswith("task.options.path: cannot load dataset 'openai/gsm8k' from the hub") and "\n" not in msg
    assert "set task.options.path to local files" in msg


def test_derived_splits_are_disjoint_deterministic_and_keep_train_order():
    available = {"train": ROWS, "test": ROWS[:2]}
    mapping = {"train": "train", "val": None, "test": "test"}
    a = assign_splits(available, mapping, val_size=5, test_size=99, split_seed=0)
    assert a == assign_splits(available, mapping, val_size=5, test_size=99, split_seed=0)
    assert a["test"] == ROWS[:2] and len(a["val"]) == 5 and len(a["train"]) == 15
    assert sorted(a["val"] + a["train"], key=lambda r: int(r["question"][1:])) == ROWS
    assert a["train"] == [r for r in ROWS if r not in a["val"]]  # the dataset's own order
    assert a["val"] != assign_splits(available, mapping, 5, 99, split_seed=1)["val"]
    both = assign_splits({"train": ROWS}, {"train": "train", "val": None, "test": None}, 4, 6, 0)
    assert [len(both[s]) for s in tasks.SPLITS] == [10, 4, 6]
    order = np.random.default_rng(0).permutation(20)
    assert both["test"] == [ROWS[i] for i in order[:6]] and both["val"] == [ROWS[i] for i in order[6:10]]
    untouched = assign_splits(available, mapping, val_size=0, test_size=0, split_seed=0)
    assert untouched["train"] == ROWS and untouched["val"] == []


def test_empty_split_is_a_config_error():
    task = tasks.get("gsm8k", path=str(FIXTURES / "gsm8k"), val_size=0)
    assert len(task.rows("train")) == 8
    with pytest.raises(ConfigError, match="the gsm8k val split is empty"):
        task.rows("val")


def test_fixed_pool_on_dataset_rows_is_deterministic():
    rows = tasks.get("winogrande", path=str(FIXTURES / "winogrande"), val_size=0).rows("train")
    pool = tasks.fixed_pool(rows, 5, pool_seed=0)
    again = tasks.fixed_pool(tasks.get("winogrande", path=str(FIXTURES / "winogrande"), val_size=0).rows("train"), 5, 0)
    assert pool == again and len({r["sentence"] for r in pool}) == 5 and all(r in rows for r in pool)
    assert pool != tasks.fixed_pool(rows, 5, pool_seed=1)
    assert tasks.fixed_pool(rows, 3, 0) == pool[:3]  # a smaller pool is a prefix of the larger one
    with pytest.raises(ValueError, match="only 8 rows"):
        tasks.fixed_pool(rows, 9, 0)


def test_binary_fixtures_match_their_builder():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_fixtures", FIXTURES / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    arc = load_splits(str(FIXTURES / "arc_challenge"), "ARC-Challenge")
    assert arc == build.ARC
    assert load_splits(str(FIXTURES / "countdown"))["train"] == [{"target": t, "nums": n} for n, t in build.COUNTDOWN]
