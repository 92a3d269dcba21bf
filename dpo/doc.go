// Package dpo is preference optimization on the training engine, with TRL 1.16's numbers:
// DPOTrainer's fifteen loss types (sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair,
// sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sft, sigmoid_norm), alone or
// weighted together, and ORPOTrainer's odds-ratio objective (λ = beta, no reference).
//
// A batch is TRL's preference layout from data.CollatePreference: prompt+chosen rows, then
// prompt+rejected rows of the same pairs. The policy's log-probs are summed over completion
// tokens; the loss is averaged over the pairs of an optimizer step (gradient accumulation weighs
// every pair equally). Metrics carry TRL's names — rewards/chosen, rewards/rejected,
// rewards/accuracies, rewards/margins, logps/chosen, logps/rejected, logits/chosen,
// logits/rejected, entropy, mean_token_accuracy (ORPO: nll_loss, log_odds_ratio,
// log_odds_chosen) — and the engine logs them with an eval_ prefix in evaluation.
//
// The reference policy (see Trainer) is a separate frozen model scored in its own forward pass,
// a frozen copy of the policy's start, the policy's own weights through an adapter-disabled
// decoder inside the training graph, log-probs precomputed before training, or log-probs the
// dataset supplies. In every case it gets neither gradients nor optimizer state.
//
// Losses that use batch-level statistics are computed per micro-batch, as TRL computes them per
// device batch: aot and aot_unpaired sort the log-ratios across the micro-batch, and sft is the
// mean NLL over all chosen completion tokens of the micro-batch (counted once per pair). TRL
// 1.16's bco_pair has no running reward mean any more (it is −log σ(βρ_c) − log σ(−βρ_r)), so it
// needs no state. Not implemented: f_divergence_type other than reverse_kl, ld_alpha,
// use_weighting (WPO), sync_ref_model, padding_free.
package dpo
