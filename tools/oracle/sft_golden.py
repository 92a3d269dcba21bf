#!/usr/bin/env python3
"""Golden for sft: TRL's SFTTrainer on the llama_gqa fixture with pre-tokenized completion data.

Every step sees the whole dataset as one batch (batch size = dataset size), so the data order
cannot differ between TRL and Go. Records per-step loss, grad_norm, learning_rate and
mean_token_accuracy into sft/testdata/trl_sft.json. Regenerate only on purpose.
"""
import json
import pathlib
import tempfile

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from trl import SFTConfig, SFTTrainer

root = pathlib.Path(__file__).resolve().parents[2]
fixture = root / "testdata" / "models" / "llama_gqa"

g = torch.Generator().manual_seed(7)
samples = []
for i in range(6):
    prompt = torch.randint(3, 128, (int(torch.randint(3, 8, (1,), generator=g)),), generator=g).tolist()
    completion = torch.randint(3, 128, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g).tolist() + [2]
    samples.append({"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + [1] * len(completion)})

vocab = {f"t{i}": i for i in range(128)}
tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")),
                              pad_token="t0", eos_token="t2", bos_token="t1")

args = dict(learning_rate=1e-3, lr_scheduler_type="linear", warmup_steps=2, weight_decay=0.01, max_grad_norm=1.0,
            max_steps=20, per_device_train_batch_size=len(samples), gradient_accumulation_steps=1,
            adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, seed=0)
model = AutoModelForCausalLM.from_pretrained(fixture, dtype=torch.float32, attn_implementation="eager")
with tempfile.TemporaryDirectory() as out:
    cfg = SFTConfig(output_dir=out, logging_steps=1, report_to="none", save_strategy="no", bf16=False,
                    completion_only_loss=True, packing=False, padding_free=False, max_length=None,
                    dataloader_drop_last=False, use_cpu=True, **args)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(samples), processing_class=tok)
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]

golden = {"trl_args": args, "samples": samples, "pad_id": 0,
          "steps": [{k: h[k] for k in ("loss", "grad_norm", "learning_rate", "mean_token_accuracy", "num_tokens")} for h in history]}
import trl, transformers
golden["versions"] = {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__}
path = root / "sft" / "testdata" / "trl_sft.json"
path.write_text(json.dumps(golden, indent=1))
print(path, len(history), "steps; first", history[0])
