package handbook

import (
	"fmt"

	"handbook/model"
)

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
