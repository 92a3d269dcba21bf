package handbook

import (
	"fmt"
	"log/slog"

	"handbook/model"
)

// familyRules applies what a run's settings depend on in the model's family: the router
// load-balancing loss of a mixture of experts (routerAuxLoss), and a warning when SFT would train
// a model whose config asks for dropout (StarCoder2-15B's 0.1), which transformers applies in
// training and this decoder does not (TRL's DPO and ORPO disable dropout by default).
func familyRules(r *Recipe, m *model.Model, log *slog.Logger) error {
	if err := routerAuxLoss(r, m); err != nil {
		return err
	}
	c := m.Config
	if r.Task == TaskSFT && (c.AttentionDropout > 0 || c.ResidualDropout > 0 || c.EmbeddingDropout > 0) {
		log.Warn("the model config sets dropout, which transformers applies in training; this decoder applies none",
			"attention_dropout", c.AttentionDropout, "residual_dropout", c.ResidualDropout, "embedding_dropout", c.EmbeddingDropout)
	}
	return nil
}

// routerAuxLoss sets how much a mixture-of-experts model's router load-balancing loss weighs in
// training, as TRL 1.16's trainers decide it: SFTTrainer and DPOTrainer add it for every MoE
// model, weighted by router_aux_loss_coef (the recipe's, else the model config's; 0 turns it
// off), while ORPOTrainer adds the config's coefficient only when the config sets
// output_router_logits (model.NewDecoder's default). router_aux_loss_coef on a dense model is an
// error, as in TRL.
func routerAuxLoss(r *Recipe, m *model.Model) error {
	coef := r.Training.RouterAuxLossCoef
	if !m.Config.IsMoE() {
		if coef != nil && *coef != 0 {
			return fmt.Errorf("%s: router_aux_loss_coef is %g but %s is not a mixture-of-experts model: there is no router loss to weigh",
				r.Path, *coef, m.Config.ModelType)
		}
		return nil
	}
	switch {
	case r.Task == TaskORPO:
	case coef != nil:
		m.Decoder.RouterAuxLossCoef = *coef
	default:
		m.Decoder.RouterAuxLossCoef = m.Config.RouterAuxLossCoef
	}
	return nil
}
