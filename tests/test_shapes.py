"""The rehearsal's model shapes are the published ones (benchmarks/shapes.py): a drifted value fails here, not after
an hour of rehearsing the wrong model."""

import inspect

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from benchmarks import shapes

# Written out from the config.json files benchmarks/shapes.py cites (the hub's Qwen/Qwen2.5-Math-1.5B and -7B as quoted
# by mlx-community, unsloth and litgpt), the fields that shape the model.
PUBLISHED = {
    "1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
             "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 4096, "rope_theta": 10000,
             "rms_norm_eps": 1e-06, "tie_word_embeddings": True, "hidden_act": "silu", "max_window_layers": 21,
             "use_sliding_window": False, "attention_dropout": 0.0, "initializer_range": 0.02,
             "bos_token_id": 151643, "eos_token_id": 151643},
    "7b": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
           "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 4096, "rope_theta": 10000,
           "rms_norm_eps": 1e-06, "tie_word_embeddings": False, "hidden_act": "silu", "max_window_layers": 28,
           "use_sliding_window": False, "attention_dropout": 0.0, "initializer_range": 0.02,
           "bos_token_id": 151643, "eos_token_id": 151643},
}


@pytest.mark.parametrize("name", ["1.5b", "7b"])
def test_shapes_are_the_published_configs(name):
    assert shapes.SHAPES[name] == PUBLISHED[name]


@pytest.mark.parametrize("name", ["1.5b", "7b", "tiny"])
def test_every_value_is_a_qwen2_config_field_and_is_kept(name):
    values = shapes.SHAPES[name]
    fields = inspect.signature(Qwen2Config.__init__).parameters
    assert set(values) - set(fields) == {"rope_theta"}  # a misspelt key would be kept as a stray attribute
    config = Qwen2Config(**values)
    assert config.rope_parameters["rope_theta"] == values["rope_theta"]  # transformers 5 moved it there
    assert {k: getattr(config, k) for k in values if k != "rope_theta"} == {
        k: v for k, v in values.items() if k != "rope_theta"}


@pytest.mark.parametrize("name, billions", [("1.5b", 1.54), ("7b", 7.62)])
def test_parameter_counts_by_hand_match_the_model_and_the_model_cards(name, billions):
    """The memory arithmetic counts parameters by hand; transformers' model of the config (on the meta device: no
    memory) must have as many, and the model cards say 1.54B and 7.61-7.62B."""
    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**shapes.SHAPES[name]))
    assert sum(p.numel() for p in model.parameters()) == shapes.param_count(shapes.SHAPES[name])
    assert round(shapes.param_count(shapes.SHAPES[name]) / 1e9, 2) == billions


def test_lora_count_by_hand_matches_peft():
    """r 64 on every linear layer: 161 M parameters at 7B (README), counted by hand and by peft on a 2-layer model."""
    from peft import LoraConfig, get_peft_model

    small = {**shapes.QWEN25_MATH_7B, "num_hidden_layers": 2}
    with torch.device("meta"):
        model = get_peft_model(Qwen2ForCausalLM(Qwen2Config(**small)), LoraConfig(
            r=64, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == shapes.lora_param_count(small, 64)
    assert shapes.lora_param_count(shapes.QWEN25_MATH_7B, 64) == 161_480_704
