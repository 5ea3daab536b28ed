"""The published shapes of the GPU presets' base models, in one place: the rehearsal (benchmarks/rehearsal.py), the
update benchmark (benchmarks/gpu_step.py) and tests/test_shapes.py read them from here.

Values are the `config.json` of each model on the Hugging Face hub, as quoted (the hub is not reachable here) by:
- Qwen/Qwen2.5-Math-1.5B: mlx-community/Qwen2.5-Math-1.5B-bf16 (config.json, an unmodified copy: transformers 4.44.0,
  sliding_window 4096 as the original) and unsloth/Qwen2.5-Math-1.5B (config.json, "_name_or_path":
  "Qwen/Qwen2.5-Math-1.5B");
- Qwen/Qwen2.5-Math-7B: unsloth/Qwen2.5-Math-7B (config.json, "_name_or_path": "Qwen/Qwen2.5-Math-7B") and
  TIGER-Lab/Qwen2.5-Math-7B-CFT (a fine-tune that keeps the base's config);
- both: litgpt's litgpt/config.py (`qwen_2_5_math`, each entry citing huggingface.co/Qwen/<model>/blob/main/config.json:
  block_size 4096, padded_vocab_size 151936 / 152064, layers, heads, query groups, widths, rope_base 10000).
Left out: `torch_dtype` (bfloat16 in both), `use_mrope` (false; not a Qwen2Config field) and `sliding_window` (4096;
unused while use_sliding_window is false, and transformers 5 stores it as null then).
"""

QWEN25_MATH_1_5B = dict(  # tied embeddings: the LM head is the embedding matrix
    hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
    vocab_size=151936, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True, hidden_act="silu", max_window_layers=21, use_sliding_window=False,
    attention_dropout=0.0, initializer_range=0.02, bos_token_id=151643, eos_token_id=151643)

QWEN25_MATH_7B = dict(  # untied embeddings: a separate 152,064 x 3,584 LM head
    hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
    vocab_size=152064, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=False, hidden_act="silu", max_window_layers=28, use_sliding_window=False,
    attention_dropout=0.0, initializer_range=0.02, bos_token_id=151643, eos_token_id=151643)

# The same code paths in seconds: Qwen's real vocabulary and context, untied like the 7B, two narrow layers (head_dim
# 32: vLLM's CPU attention needs at least that); initializer 0.2 as the tests' model, so logits are not flat.
TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    vocab_size=151936, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=False, hidden_act="silu", max_window_layers=2, use_sliding_window=False,
    attention_dropout=0.0, initializer_range=0.2, bos_token_id=151643, eos_token_id=151643)

SHAPES = {"1.5b": QWEN25_MATH_1_5B, "7b": QWEN25_MATH_7B, "tiny": TINY}
NAMES = {"1.5b": "Qwen2.5-Math-1.5B", "7b": "Qwen2.5-Math-7B", "tiny": "tiny"}


def param_count(shape: dict) -> int:
    """Parameters of a Qwen2 causal LM of this shape, by hand: q, k, v with biases, o, the SwiGLU MLP, two norms a
    layer, the final norm, the embedding and (untied) the LM head."""
    h, inter, layers, vocab = (shape[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                  "vocab_size"))
    kv = shape["num_key_value_heads"] * h // shape["num_attention_heads"]
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h
    return layers * layer + h + vocab * h * (1 if shape["tie_word_embeddings"] else 2)


def lora_param_count(shape: dict, rank: int) -> int:
    """LoRA parameters with rank r on every linear layer of every block (A: r x in, B: out x r)."""
    h, inter, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = shape["num_key_value_heads"] * h // shape["num_attention_heads"]
    ins_outs = [(h, h), (h, kv), (h, kv), (h, h), (h, inter), (h, inter), (inter, h)]
    return layers * sum(rank * (i + o) for i, o in ins_outs)
