package handbook

import "slices"

// PublishArguments are the recipe keys that publish a run: transformers' push_to_hub family, the
// handbook's revision keys and its Weights & Biases keys.
type PublishArguments struct {
	// PushToHub pushes output_dir to the Hub (at the end, and on saves as HubStrategy says).
	PushToHub bool `mapstructure:"push_to_hub"`
	// HubModelID is the repository ("org/name" or "name", which goes under the token's user);
	// default: output_dir's folder name under the token's user.
	HubModelID string `mapstructure:"hub_model_id"`
	// HubStrategy is what is pushed when: "end" (the final model only), "every_save" (default:
	// also the model at each save, in the background), "checkpoint" (also the latest checkpoint
	// under last-checkpoint/), "all_checkpoints" (every checkpoint under its own folder).
	HubStrategy string `mapstructure:"hub_strategy"`
	// HubPrivateRepo makes a new repository private (nil: the Hub's default).
	HubPrivateRepo *bool `mapstructure:"hub_private_repo"`
	// HubToken is the token used to push (default: HF_TOKEN, else $HF_HOME/token).
	HubToken string `mapstructure:"hub_token"`
	// HubRevision is the branch pushed to (transformers' hub_revision; default main).
	HubRevision string `mapstructure:"hub_revision"`
	// HubAlwaysPush starts a save's push even while the previous one is still uploading.
	HubAlwaysPush bool `mapstructure:"hub_always_push"`
	// PushToHubRevision pushes to the branch HubModelRevision (the handbook's keys) when
	// HubRevision is not set.
	PushToHubRevision bool `mapstructure:"push_to_hub_revision"`
	// HubModelRevision is the branch of PushToHubRevision (default "main").
	HubModelRevision string `mapstructure:"hub_model_revision"`
	// WandbEntity, WandbProject and WandbRunGroup name the W&B run (the handbook's keys; when set
	// they override WANDB_ENTITY, WANDB_PROJECT and WANDB_RUN_GROUP, as the handbook's scripts do).
	WandbEntity   string `mapstructure:"wandb_entity"`
	WandbProject  string `mapstructure:"wandb_project"`
	WandbRunGroup string `mapstructure:"wandb_run_group"`
}

// hubStrategies are transformers' HubStrategy values.
var hubStrategies = []string{"end", "every_save", "checkpoint", "all_checkpoints"}

// Revision is the branch a push goes to.
func (p PublishArguments) Revision() string {
	switch {
	case p.HubRevision != "":
		return p.HubRevision
	case p.PushToHubRevision && p.HubModelRevision != "":
		return p.HubModelRevision
	}
	return "main"
}

// validatePublish checks hub_strategy.
func (l *loader) validatePublish() error {
	p := l.r.Training.Publish
	if !slices.Contains(hubStrategies, p.HubStrategy) {
		return l.fail("hub_strategy", "%q is not one of %v", p.HubStrategy, hubStrategies)
	}
	return nil
}
