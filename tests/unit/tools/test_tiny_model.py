"""The embedded tiny model: loads with the Auto classes, tokenizes like it was trained, answers as its build
recorded, and is refused when its files differ from the digests it records."""
import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from es_hpc import models, tasks
from es_hpc.backends import model_path
from es_hpc.config import ConfigError
from es_hpc.tools.tiny_model import CHARS, SIZES, TARGET, embedded_name, greedy_accuracy, make_tokenizer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Matmuls this small run far faster on one thread than split over a few busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_model_config(loaded):
    model, tok = loaded
    c = model.config
    assert c.model_type == "qwen2" and (c.hidden_size, c.num_hidden_layers, c.vocab_size) == (128, 4, len(tok))
    assert c.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    im_end, pad = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert (c.eos_token_id, c.pad_token_id, tok.eos_token_id, tok.pad_token_id) == (im_end, pad, im_end, pad)
    g = model.generation_config
    assert (g.do_sample, g.eos_token_id, g.pad_token_id) == (False, im_end, pad)


def test_chat_template(loaded):
    _, tok = loaded
    msgs = [{"role": "user", "content": "7+35="}]
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\n7+35=<|im_end|>\n<|im_start|>assistant\n"
    assert tok.apply_chat_template(msgs, tokenize=False) == "<|im_start|>user\n7+35=<|im_end|>\n"


def test_tokenizer_round_trip_and_matches_the_trained_one(loaded):
    _, tok = loaded
    built = make_tokenizer()
    texts = ["".join(CHARS), "  two  spaces\n\nand newlines ", "Q: 12+7=? A: 19.", "<|im_start|>user\nhi<|im_end|>\n"]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == built(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert len(tok("".join(CHARS), add_special_tokens=False)["input_ids"]) == len(CHARS)  # one token per char
    ids = tok("<|im_start|>12<|im_end|><|endoftext|>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 5 and tok.decode(ids, skip_special_tokens=True) == "12"


def test_build_facts(tiny_model_dir, loaded):
    facts = json.loads((tiny_model_dir / "tiny_model.json").read_text())
    assert facts["parameters"] == sum(p.numel() for p in loaded[0].parameters())
    assert TARGET[0] <= facts["val_accuracy"] <= TARGET[1]  # the recipe stops only inside its target window
    assert facts["steps"] > 0 and isinstance(facts["seed"], int) and 0.0 <= facts["test_accuracy"] <= 1.0
    assert set(facts["sha256"]) == {f.name for f in tiny_model_dir.iterdir() if f.name != "tiny_model.json"}


def test_the_family_ships_and_spans_the_papers_range():
    """Every size of `make-tiny-model --size` ships, records its shape and recipe, passes its digests and stopped
    inside the target window; together they span at least the 14x of the paper's 0.5B-7B."""
    params = {}
    for size, (hidden, layers) in SIZES.items():
        directory = models.HERE / embedded_name(size)
        facts = json.loads((directory / "tiny_model.json").read_text())
        config = json.loads((directory / "config.json").read_text())
        assert (facts["size"], facts["hidden"], facts["layers"]) == (size, hidden, layers)
        assert (config["hidden_size"], config["num_hidden_layers"]) == (hidden, layers)
        assert facts["recipe"] == json.loads((models.HERE / "tiny" / "tiny_model.json").read_text())["recipe"]
        assert TARGET[0] <= facts["val_accuracy"] <= TARGET[1]
        models.verify(directory)
        params[size] = facts["parameters"]
    assert list(params.values()) == sorted(params.values()) and params["l"] / params["xs"] >= 14
    assert embedded_name("m") == "tiny"  # the default model is the family's m


def test_greedy_accuracy_is_the_recorded_one(tiny_model_dir, loaded):
    """The loaded model answers the test split as the build measured it (within 1% for float differences)."""
    model, tok = loaded
    task = tasks.get("arithmetic")
    acc = greedy_accuracy(model, tok, task, task.rows("test"))
    assert acc == pytest.approx(json.loads((tiny_model_dir / "tiny_model.json").read_text())["test_accuracy"], abs=0.01)


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    return tmp_path / "m"


def test_embedded_resolves_and_passes_its_check(tiny_model_dir):
    assert "tiny" in models.names()
    assert model_path.resolve("embedded:tiny") == models.resolve("embedded:tiny")
    with pytest.raises(ConfigError, match=r"model.path: no embedded model 'nope' \(embedded models: .*tiny"):
        model_path.resolve("embedded:nope")


@pytest.mark.parametrize("damage, what", [("flip", "differs"), ("remove", "is missing"), ("add", "is not recorded")])
def test_a_changed_model_file_is_refused(model_copy, damage, what):
    weights = model_copy / "model.safetensors"
    if damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    elif damage == "remove":
        weights.unlink()
    else:
        (model_copy / "extra.json").write_text("{}")
    with pytest.raises(ConfigError, match=f"model.path: .* {what}: the model's files do not match the sha256"):
        model_path.resolve(str(model_copy))


def test_a_model_without_digests_loads_unchecked(model_copy):
    facts = model_copy / "tiny_model.json"
    facts.write_text(json.dumps({k: v for k, v in json.loads(facts.read_text()).items() if k != "sha256"}))
    (model_copy / "extra.json").write_text("{}")
    assert model_path.resolve(str(model_copy)) == str(model_copy)
