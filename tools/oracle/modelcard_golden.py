"""Write model cards the way TRL (and PEFT, for an adapter) write them, for package modelcard's tests.

    python tools/oracle/modelcard_golden.py modelcard/testdata

trl_sft.md: TRL 1.16's generate_model_card for an SFT run of the handbook (tags alignment-handbook, trl, sft,
as SFTTrainer.create_model_card adds them). peft_sft.md: the same card after PEFT's create_or_update_model_card on
a LoRA adapter of a tiny Llama (library_name peft, base_model, adapter tags, pipeline_tag, "- PEFT x.y").
inputs.json holds the inputs, for the Go side to render the same cards.
"""

import json
import os
import sys
import tempfile

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
from trl.trainer.utils import generate_model_card

INPUTS = {
    "base_model": "HuggingFaceTB/SmolLM2-135M",
    "model_name": "tiny-sft",
    "hub_model_id": "alice/tiny-sft",
    "dataset_name": "HuggingFaceH4/ultrachat_200k",
    "tags": ["alignment-handbook", "trl", "sft"],
    "trainer_name": "SFT",
}


def trl_card():
    return generate_model_card(
        base_model=INPUTS["base_model"], model_name=INPUTS["model_name"], hub_model_id=INPUTS["hub_model_id"],
        dataset_name=INPUTS["dataset_name"], tags=INPUTS["tags"], wandb_url=None, trackio_url=None,
        trainer_name=INPUTS["trainer_name"], trainer_citation=None, paper_title=None, paper_id=None, comet_url=None)


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    trl_card().save(os.path.join(out, "trl_sft.md"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2)
    base = LlamaForCausalLM(cfg)
    base.config._name_or_path = INPUTS["base_model"]
    base.name_or_path = INPUTS["base_model"]
    base.add_model_tags(["trl", "sft"])  # as SFTTrainer does
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with tempfile.TemporaryDirectory() as d:
        trl_card().save(os.path.join(d, "README.md"))
        peft.create_or_update_model_card(d)
        with open(os.path.join(d, "README.md")) as f, open(os.path.join(out, "peft_sft.md"), "w") as g:
            g.write(f.read())
    with open(os.path.join(out, "inputs.json"), "w") as f:
        json.dump(INPUTS, f, indent=2)
        f.write("\n")
    print(f"wrote {out}/trl_sft.md, peft_sft.md, inputs.json")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: modelcard_golden.py OUT_DIR")
    main(sys.argv[1])
