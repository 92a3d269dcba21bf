// Package lora adds LoRA, rsLoRA and QLoRA adapters to a model.Model in PEFT's format.
//
// An Adapter wraps the decoder's model.Linear seam: for each target module it adds
// s·B·(A·dropout(x)) to the base layer's output, with s = α/r (or α/√r with rsLoRA). Its weights
// live in the model's Weights map next to the base weights ("<module>.lora_A.weight" [r, in],
// "<module>.lora_B.weight" [out, r]), so train.Engine trains them like any weight. An Adapter is a
// train.Adapter: one field turns any trainer into a LoRA run —
//
//	a, _ := lora.Attach(m, lora.Config{R: 16, Alpha: 32, TargetModules: []string{lora.AllLinear}}, seed)
//	t := &dpo.Trainer{Model: m, Adapter: a, …} // or sft.Trainer, dpo.ORPOTrainer, train.Engine
//
// — the base is frozen (no gradient, no optimizer state), training graphs apply lora_dropout,
// checkpoints and the output directory hold adapter_config.json + adapter_model.safetensors, and
// DPO's reference is the base with the adapter disabled.
//
// On a mixture-of-experts model (Mixtral) the router and the stacked experts are not Linear layers
// in transformers 5; PEFT adapts them as target_parameters (its ParamWrapper: ΔW[e] from lora_A
// [r·E, in] and lora_B [out, r·E]), and so does the Adapter, through the decoder's
// model.WeightAdapter seam: "all-linear" and the transformers 4 names w1/w3/w2/gate select them as
// PEFT 0.21 does (w1+w3 fused into gate_up_proj at twice the rank and alpha).
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
