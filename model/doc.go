// Package model is the decoder-only language model of the library: Hugging Face config.json for
// the llama, mistral, qwen2, qwen3, gemma, starcoder2, mixtral and smollm3 families, their weights by HF tensor name in
// safetensors (single file or sharded, f32/bf16/f16 read, f32/bf16 written), the forward graph,
// and KV-cache generation.
//
// The decoder is the project's own. GoMLX's layers.MultiHeadAttention scales scores twice and
// go-huggingface's transformer maps Llama onto Gemma's math and drops Qwen2's biases (see
// docs/ARCHITECTURE.md); neither can host LoRA. Here every linear layer goes through one seam,
// [Linear], that adapters wrap without touching the decoder, and weights come into graphs as
// [Params] so training, inference, adapters and sharding strategies share one graph builder.
//
// Numerics follow transformers: RoPE in the rotate-half layout with linear and llama3 scaling,
// RMSNorm in float32 (Gemma's 1+w), Gemma's √hidden embedding scale, GQA in repeat_kv order,
// causal + padding + packed-segment masks, Mistral's sliding window, Qwen2's q/k/v biases, Qwen3's
// q/k norms, tied or untied heads, StarCoder2's LayerNorm and biased GELU MLP, Mixtral's routed
// sparse mixture of experts (top-k renormalized, experts sorted into blocks so a layer costs about
// top-k experts per token; its load-balancing loss through LogitsAndAuxLoss), SmolLM3's NoPE layers.
// Weights a block uses whole (the MoE router and stacked experts) pass through the [WeightAdapter]
// seam. The tests compare logits, loss, gradients and greedy tokens with fixtures that
// tools/oracle/make_models.py recorded from transformers.
//
// Precision follows torch.autocast: with [Decoder].Autocast set to bf16, every Linear (each computes
// in its input's dtype), attention's two products and the LM head take bf16 operands, while
// softmax, RMSNorm statistics, RoPE tables and the loss stay float32 and the residual stream keeps
// the weights' dtype; train/bf16_test.go checks per-token values against PyTorch autocast.
// [Decoder].Attention selects eager attention or the backend's fused scaled-dot-product kernel
// (sdpa, flash_attention_2), falling back to eager with one log line per reason.
package model
