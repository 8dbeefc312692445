"""Notebook 04's plan on a GPU (full: Mistral-7B; gpu-small: SmolLM2-360M): memory of its largest steps, host memory
of its float64 statistics, and times from the GPU benchmark's Mistral-7B measurements (helpers.planning).

The benchmark timed one Mistral-7B layer's calibration statistics and decompositions; another model's layer is
scaled by its shapes (statistics: the sum of in^2 over the layer's Linears per token; decompositions: the sum of
in^3 + in x out x min(in, out), the cost of an eigendecomposition of the input's second moment and an SVD): a stated
approximation, not a measurement of that model.
"""
from __future__ import annotations

import math

from ..memory import GiB, counts, inference_plan, training_plan
from ..models import llama_linear_shapes, mistral_config, smollm2_config
from ..planning import NotebookPlan, bench_case, train_seconds
from ..precision import precision_for

# the models a GPU profile compresses: their shapes (no download) and the GPU memory the plan assumes for the
# statistics' passes (the profile's card)
SHAPES = {"Open-Orca/Mistral-7B-OpenOrca": (mistral_config, 80), "HuggingFaceTB/SmolLM2-360M": (smollm2_config, 15)}


def _stats_cost(conf) -> float:
    """Second moments per token: q/k/v share one input, gate/up another, o and down have their own."""
    return 3 * conf.hidden_size ** 2 + conf.intermediate_size ** 2


def _basis_cost(conf, whiten: bool) -> float:
    return sum(a * b * min(a, b) + (a ** 3 if whiten else 0) for a, b in llama_linear_shapes(conf).values())


def full_plan(notebook: str, b: dict, cfg, bf16: bool = True) -> NotebookPlan:
    """The plan of notebook 04 in cfg's profile: teacher calibration statistics on the GPU in passes, bases, forward
    passes and healing. Weights are held as helpers.train.model_dtype holds them: bf16 on a card with bf16 (healing
    in pure bf16), fp32 on one without (healing in fp16 mixed precision)."""
    if cfg.model not in SHAPES:
        raise ValueError(f"no plan for 04's model '{cfg.model}'; planned: {', '.join(SHAPES)}")
    shape, gpu_gib = SHAPES[cfg.model]
    precision, weights = precision_for("pure-bf16", True, bf16), ("bf16" if bf16 else "fp32")
    conf, ref = shape(), mistral_config()
    n = counts(conf)["total"]
    h, L = conf.hidden_size, conf.num_hidden_layers
    stats_host = L * _stats_cost(conf) * 8                          # float64 second moments of 4 inputs per layer
    emb = conf.vocab_size * h * (1 if conf.tie_word_embeddings else 2)
    block_params = n - emb                                          # the Linears that get compressed
    # whiten bases keep V (out x min(in, out)) per Linear in float32, offloaded to the host
    v_elems = L * sum(b_ * min(a, b_) for a, b_ in llama_linear_shapes(conf).values())
    heal = cfg.heal
    student_trainable = round((1 - cfg.heal_reduction) * block_params)
    # healing: the student (factors trainable) alone on the GPU (the teacher waits on the CPU); with pure-bf16 the
    # AdamW states follow the parameters' dtype; host: one draw's float64 statistics (section f computes and frees
    # the draws one after another, releasing the notebook's own first: whitening.measure_draw) and the bases
    heal_plan = training_plan("04 healing (student)", conf, heal.batch_size, cfg.heal_block, precision,
                              trainable=student_trainable, checkpointing=bool(heal.gradient_checkpointing),
                              params=n - block_params + student_trainable)
    heal_plan.setting += ", teacher on the host meanwhile"
    # the control arm: the teacher itself, its same Linears trainable at full rank
    control_plan = training_plan("04 healing control (teacher)", conf, heal.batch_size, cfg.heal_block, precision,
                                 trainable=block_params, checkpointing=bool(heal.gradient_checkpointing))
    runs = len(cfg.heal_seeds or (0, 1))
    calib = inference_plan("04 calibration / evaluation (teacher)", conf, 4, cfg.block, weights,
                           host=stats_host + v_elems * 4)
    f_evals = cfg.center_draws * len(cfg.center_policies) * len(cfg.center_reductions)   # section f's evaluations
    tokens_fwd = (cfg.calib_blocks * cfg.center_draws + cfg.eval_blocks * (1 + f_evals) + 3 * len(cfg.reductions) *
                  len(cfg.groups) * cfg.sweep_eval_blocks + L * 2 * cfg.sens_eval_blocks) * cfg.block
    case = "04 Mistral-7B forward, batch 1"
    fwd = train_seconds(b, case, n, tokens_fwd, flops_per_param=2)
    layer = bench_case(b, "04 Mistral-7B layer: statistics and bases")
    # statistics accumulate on the GPU in passes of layers that fit half the memory the teacher leaves (calibrate);
    # each pass after the first repeats the calibration forward passes. Older records timed the CPU path only.
    passes = math.ceil(stats_host / (0.5 * (gpu_gib * GiB - calib.weights)))
    per_block = layer and layer.get("stats_s_per_layer_block_cuda", layer.get("stats_s_per_layer_block"))
    stats_s = layer and (per_block * _stats_cost(conf) / _stats_cost(ref) * L * cfg.calib_blocks * cfg.block
                         / layer["block_tokens"]
                         + (passes - 1) * (train_seconds(b, case, n, cfg.calib_blocks * cfg.block,
                                                         flops_per_param=2) or 0))
    bases_s = layer and L * (layer["whiten_bases_s_per_layer"] * _basis_cost(conf, True) / _basis_cost(ref, True)
                             * (2 + cfg.center_draws * len(cfg.center_policies))
                             + layer["svd_bases_s_per_layer"] * _basis_cost(conf, False) / _basis_cost(ref, False) * 2)
    heal_s = train_seconds(b, case, n, 2 * runs * heal.max_steps * heal.batch_size * heal.grad_accum * cfg.heal_block,
                           flops_per_param=6)
    scaled = "" if conf.hidden_size == ref.hidden_size else \
        "; its layer's statistics and bases scaled from Mistral-7B's measured layer by shape (module docstring)"
    stats_what = (f"calibration statistics (float64, on the GPU in {passes} passes): {cfg.center_draws} draws of "
                  f"{cfg.calib_blocks} blocks x {L} layers")
    bases_what = "bases (whiten and svd/scaled twice: sweep and healing; whiten per policy and draw)"
    # forward passes and healing run in 16-bit (bf16 weights, or fp16 autocast on a card without bf16); the
    # statistics' float64 matmuls run at the card's float64 rate (a T4's is 1/32 of its fp32); the bases at fp32,
    # their SVDs' precision (the whiten bases' float64 eigendecompositions of the inputs' covariances are counted
    # with them: small, latency-bound, and measured together on the benchmark's card)
    precision = {stats_what: ("fp64", "fp64"), bases_what: ("fp32", "fp32")}
    return NotebookPlan(notebook, [calib, heal_plan, control_plan], [
        (f"forward passes (calibration, teacher, sweeps, sensitivity, whitening): {tokens_fwd / 1e6:.1f}M tokens", fwd),
        (stats_what, stats_s and stats_s * cfg.center_draws),
        (bases_what, bases_s),
        (f"healing and its control, {runs} seeds each: {heal.max_steps} steps of {heal.batch_size * heal.grad_accum} x "
         f"{cfg.heal_block} tokens", heal_s),
    ], b.get("gpu"), "host memory: float64 statistics and offloaded bases live on the CPU (see 'host')" + scaled,
        precision=precision)
