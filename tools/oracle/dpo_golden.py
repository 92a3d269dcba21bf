#!/usr/bin/env python3
"""Goldens for dpo: TRL 1.16's DPOTrainer and (trl.experimental) ORPOTrainer on tiny fixtures.

Writes dpo/testdata/trl_dpo.json with
  - "pairs": six pre-tokenized preference pairs (prompt_ids, chosen_ids, rejected_ids; completions end in EOS 2),
  - "losses": for every TRL loss type (and two weighted combinations), the loss, the gradient's global norm and
    every logged metric of
    DPOTrainer.compute_loss on the collated batch of all six pairs, policy = testdata/models/llama_gqa and
    reference = testdata/models/qwen2_bias (another architecture with the same vocabulary, so Δ ≠ 0);
    "ref_logps" holds the reference's summed log-probs of that batch,
  - "steps": a 20-step fp32 DPO (sigmoid) run where the reference is the policy's starting copy (TRL's default for
    ref_model=None); every step sees the whole dataset as one batch so data order cannot differ,
  - "orpo": ORPOTrainer.get_batch_loss_metrics on the same batch with the policy (loss, metrics, gradient norm).
Regenerate only on purpose.
"""
import json
import math
import pathlib
import tempfile

import torch
from accelerate import Accelerator
from datasets import Dataset
from tokenizers import Tokenizer, models
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

import trl
import transformers
from trl import DPOConfig, DPOTrainer
from trl.experimental.orpo import ORPOTrainer

root = pathlib.Path(__file__).resolve().parents[2]
policy_dir = root / "testdata" / "models" / "llama_gqa"
ref_dir = root / "testdata" / "models" / "qwen2_bias"

g = torch.Generator().manual_seed(11)


def ids(lo, hi):
    return torch.randint(3, 128, (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g).tolist()


pairs = [{"prompt_ids": ids(3, 8), "chosen_ids": ids(2, 9) + [2], "rejected_ids": ids(2, 9) + [2]} for _ in range(6)]

vocab = {f"t{i}": i for i in range(128)}
tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")),
                              pad_token="t0", eos_token="t2", bos_token="t1")

# The pairs are already tokenized: TRL's own preparation (prompt extraction, EOS, tokenization) is data's job and
# has its own goldens, so it is bypassed here.
DPOTrainer._prepare_dataset = lambda self, dataset, *args, **kwargs: dataset


def load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")


def grad_norm(m):
    return math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in m.parameters() if p.grad is not None))


BETA, LABEL_SMOOTHING = 0.1, 0.1
LOSS_TYPES = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]
COMBOS = [(lt, [1.0]) for lt in LOSS_TYPES] + [("sigmoid,sft", [0.8, 0.2]), ("sigmoid,ipo,hinge", [1.0, 0.5, 0.25])]

out = {"versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
       "pairs": pairs, "pad_id": 0, "beta": BETA, "label_smoothing": LABEL_SMOOTHING, "discopop_tau": 0.05}

with tempfile.TemporaryDirectory() as tmp:
    # Loss types on a fixed batch, policy ≠ reference.
    policy, ref = load(policy_dir), load(ref_dir)
    cfg = DPOConfig(output_dir=tmp, report_to="none", beta=BETA, label_smoothing=LABEL_SMOOTHING, max_length=None,
                    pad_to_multiple_of=None, use_cpu=True, bf16=False, loss_type=["sigmoid"])
    trainer = DPOTrainer(model=policy, ref_model=ref, args=cfg, train_dataset=Dataset.from_list(pairs),
                         processing_class=tok)
    batch = trainer.data_collator(pairs)
    policy.eval()
    with torch.no_grad():
        ref_c, ref_r = trainer.compute_ref_log_probs(trainer.ref_model, batch)
    out["ref_logps"] = {"chosen": ref_c.tolist(), "rejected": ref_r.tolist()}
    out["batch"] = {k: batch[k].tolist() for k in ("input_ids", "attention_mask", "completion_mask")}
    losses = []
    for name, weights in COMBOS:
        trainer.loss_types, trainer.loss_weights = name.split(","), weights
        trainer._metrics["eval"].clear()
        policy.zero_grad()
        loss = trainer.compute_loss(policy, batch)
        loss.backward()
        metrics = {k: v[-1] if isinstance(v, list) else v for k, v in trainer._metrics["eval"].items() if k != "num_tokens"}
        losses.append({"loss_type": name.split(","), "loss_weights": weights, "loss": loss.item(), "metrics": metrics,
                       "grad_norm": grad_norm(policy)})
    out["losses"] = losses

    # ORPO on the same batch: TRL's own forward and loss, fed the layout its collator produces.
    orpo = ORPOTrainer.__new__(ORPOTrainer)
    orpo.beta, orpo.is_encoder_decoder, orpo.padding_value, orpo.aux_loss_enabled = BETA, False, 0, False
    orpo.accelerator = Accelerator(cpu=True)
    n = len(pairs)
    ob = {}
    for side, rows in (("chosen", slice(0, n)), ("rejected", slice(n, 2 * n))):
        ob[f"{side}_input_ids"] = batch["input_ids"][rows]
        ob[f"{side}_attention_mask"] = batch["attention_mask"][rows]
        ob[f"{side}_labels"] = batch["input_ids"][rows].masked_fill(batch["completion_mask"][rows] == 0, -100)
    policy.zero_grad()
    oloss, ometrics = orpo.get_batch_loss_metrics(policy, ob)
    oloss.backward()
    out["orpo"] = {"loss": oloss.item(), "metrics": ometrics, "grad_norm": grad_norm(policy)}

    # 20-step training, reference = the policy's starting copy.
    args = dict(learning_rate=1e-3, lr_scheduler_type="linear", warmup_steps=2, weight_decay=0.01, max_grad_norm=1.0,
                max_steps=20, per_device_train_batch_size=len(pairs), gradient_accumulation_steps=1,
                adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, seed=0)
    cfg = DPOConfig(output_dir=tmp, report_to="none", beta=BETA, max_length=None, pad_to_multiple_of=None,
                    use_cpu=True, bf16=False, logging_steps=1, save_strategy="no", dataloader_drop_last=False,
                    loss_type=["sigmoid"], **args)
    trainer = DPOTrainer(model=load(policy_dir), args=cfg, train_dataset=Dataset.from_list(pairs), processing_class=tok)
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    keys = ["loss", "grad_norm", "learning_rate", "num_tokens", "rewards/chosen", "rewards/rejected",
            "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "logits/chosen",
            "logits/rejected", "entropy", "mean_token_accuracy"]
    out["trl_args"] = args
    out["steps"] = [{k: h[k] for k in keys} for h in history]
    assert abs(history[0]["loss"] - math.log(2)) < 1e-6, history[0]

path = root / "dpo" / "testdata" / "trl_dpo.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(out, indent=1))
print(path, len(out["steps"]), "steps; first", out["steps"][0], "\norpo", out["orpo"])
