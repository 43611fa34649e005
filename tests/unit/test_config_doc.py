"""The config's documentation: `config show` prints YAML that loads back to the same config, with each key's type
and help as its comment; the README's table of keys is the one generated from the declarations."""
import pytest
import yaml

from es_hpc import cli, config, config_doc
from es_hpc.config import ConfigError
from helpers import REPO

TINY = str(REPO / "configs" / "tiny.yaml")
# values whose YAML needs quoting or a flow style: a '#', a ': ', strings that read as a bool or null, small floats
AWKWARD = ["task.options={path: 'data #1.jsonl', splits: {val: null}, val_size: 0}", "es.params=['*mlp*', 'a: b']",
           "es.sigma=1e-5", "log.file='yes'", "model.path='null'", "clss.alphas=[1e-4, 0.5]"]


@pytest.mark.parametrize("path, sets", [(None, []), (TINY, []), (TINY, AWKWARD)])
def test_show_loads_back_to_the_same_config(tmp_path, path, sets):
    cfg = config.load(path, sets)
    shown = tmp_path / "shown.yaml"
    shown.write_text(config_doc.show(cfg, "test"))
    assert config.load(shown) == cfg


def test_show_comments_every_key_with_its_type_and_help():
    lines = config_doc.show(config.Config(), "the defaults").splitlines()
    keys, comments, section = [], [], None
    for line in lines:
        if line.startswith("#"):
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        key, _, comment = line.strip().partition("  # ")
        keys.append(f"{section}.{key.split(':')[0]}")
        comments.append(comment)
    rows = config_doc.describe()
    assert keys == [name for name, _, _, _ in rows]
    assert comments == [f"{typ}: {text}" for _, typ, _, text in rows]


def test_readme_table_is_the_generated_one():
    text = (REPO / "README.md").read_text()
    start, end = config_doc.readme_table(text, REPO / "README.md")
    assert text[start:end] == config_doc.table(), "run: python -m es_hpc config table --update README.md"


def test_update_readme_rewrites_the_table_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# intro\n\n{config_doc.TABLE_BEGIN}\n| stale |\n{config_doc.TABLE_END}\n\n## next\n")
    assert config_doc.update_readme(readme)
    assert readme.read_text() == f"# intro\n\n{config_doc.table()}\n\n## next\n"
    assert not config_doc.update_readme(readme)
    readme.write_text("# no table\n")
    with pytest.raises(ConfigError, match="has no"):
        config_doc.update_readme(readme)


def test_config_show_and_table_commands(capsys, tmp_path):
    assert cli.main(["config", "show", "--config", "tiny", "--set", "es.sigma=1e-3", "--job", "train"]) == 0
    shown = tmp_path / "shown.yaml"
    shown.write_text(capsys.readouterr().out)
    assert yaml.safe_load(shown.read_text())["es"]["sigma"] == 1e-3
    assert config.load(shown) == config.load(TINY, ["es.sigma=1e-3"])
    assert cli.main(["config", "show", "--set", "es.sigma=0"]) == 2
    assert capsys.readouterr().err == "error: es.sigma: must be > 0, got 0.0\n"
    assert cli.main(["config", "table"]) == 0
    assert capsys.readouterr().out == config_doc.table() + "\n"


def test_train_help_points_to_config_show(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "python -m es_hpc config show" in " ".join(capsys.readouterr().out.split())
