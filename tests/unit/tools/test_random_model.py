"""build_random_model's families: each architecture as declared (attention heads, tied or untied head), saved
with the tiny model's tokenizer that the Auto classes load and that tokenizes as the trained one; qwen2 is
make_model's architecture and weights; init_std redraws the matrices only."""
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from es_hpc.tools.tiny_model import CHARS, FAMILIES, build_random_model, make_model, make_tokenizer

SHAPES = {"qwen2": (4, True, "Qwen2ForCausalLM"), "llama": (2, False, "LlamaForCausalLM"),
          "gemma": (1, True, "GemmaForCausalLM")}  # key/value heads, tied head, class


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_loads_with_the_auto_classes(family, tmp_path):
    facts = build_random_model(tmp_path / family, 64, 2, seed=1, family=family)
    model, tok = (auto.from_pretrained(tmp_path / family) for auto in (AutoModelForCausalLM, AutoTokenizer))
    c = model.config
    kv, tied, cls = SHAPES[family]
    assert type(model).__name__ == cls and c.model_type == family and facts["family"] == family
    assert (c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.num_attention_heads) == (64, 2, 256, 4)
    attn = model.model.layers[0].self_attn  # heads of 16: q 4 x 16 rows, k and v kv x 16
    assert (c.num_key_value_heads, c.vocab_size) == (kv, len(tok)) and attn.q_proj.weight.shape == (64, 64)
    assert attn.k_proj.weight.shape == attn.v_proj.weight.shape == (kv * 16, 64)
    assert (model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()) == tied
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())
    built = make_tokenizer()
    for text in ["".join(CHARS), "<|im_start|>user\n 12+7= ?<|im_end|>\n"]:
        assert tok(text, add_special_tokens=False)["input_ids"] == built(text, add_special_tokens=False)["input_ids"]
    msgs = [{"role": "user", "content": "7+35="}]
    assert tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) == \
        built.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    g = model.generation_config
    assert (g.do_sample, g.eos_token_id, g.pad_token_id) == (False, tok.eos_token_id, tok.pad_token_id)


def test_qwen2_is_make_models_model(tmp_path):
    build_random_model(tmp_path / "q", 64, 2, seed=3)
    torch.manual_seed(3)
    expected = make_model(make_tokenizer(), 64, 2).state_dict()
    got = AutoModelForCausalLM.from_pretrained(tmp_path / "q").state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_init_std_redraws_the_matrices_only(family, tmp_path):
    build_random_model(tmp_path / "a", 64, 2, family=family)
    build_random_model(tmp_path / "b", 64, 2, family=family, init_std=0.5)
    a, b = (dict(AutoModelForCausalLM.from_pretrained(tmp_path / d).named_parameters()) for d in "ab")
    for name, p in b.items():
        if p.dim() == 2:
            assert 0.45 < float(p.detach().std()) < 0.55, name
        else:
            assert torch.equal(p, a[name]), name  # norms (and biases) as the family initialises them


def test_an_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no model family 'gpt2'"):
        build_random_model(tmp_path / "x", 64, 2, family="gpt2")
    assert not (tmp_path / "x").exists()
