// Package lora adds LoRA, rsLoRA and QLoRA adapters to a model.Model in PEFT's format.
//
// An Adapter wraps the decoder's model.Linear seam: for each target module it adds
// s·B·(A·dropout(x)) to the base layer's output, with s = α/r (or α/√r with rsLoRA). Its weights
// live in the model's Weights map next to the base weights ("<module>.lora_A.weight" [r, in],
// "<module>.lora_B.weight" [out, r]), so train.Engine trains them like any weight:
//
//	a, _ := lora.Attach(m, lora.Config{R: 16, Alpha: 32, TargetModules: []string{lora.AllLinear}}, seed)
//	e := &train.Engine{Model: m, Objective: a.TrainingObjective(train.CausalLM{}, seed),
//		Trainable: a.Trainable, // base frozen: no gradient, no optimizer state
//		Weights:   a}           // checkpoints hold adapter_config.json + adapter_model.safetensors
//
// Save writes what PEFT's save_pretrained writes; Load reads adapters PEFT (or handbook) wrote;
// BaseDecoder computes the base model alone from the same weights (PEFT's disable_adapter, the
// reference policy of DPO); Merge folds the adapter into a plain model that Save exports as a
// full Hugging Face checkpoint (merge_and_unload).
//
// QLoRA: QuantizeBase stores the base linear weights as 4-bit NormalFloat (NF4, blocks of 64 with
// one absmax each, optionally double-quantized in blocks of 256 as bitsandbytes does) and
// dequantizes them inside the Linear seam; attach the adapter afterwards. QuantizeNF4 and
// DequantizeNF4 are the host-side codec.
//
// FromRecipe maps the handbook's recipe keys (use_peft, lora_r, …, load_in_4bit) to a Config.
package lora
