package modelcard

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Card is what a model card says.
type Card struct {
	// BaseModel is the Hub id the run started from; "" for a local directory (TRL then writes no
	// base_model and its text names "None").
	BaseModel string
	// ModelName is the card's title (TRL: hub_model_id's last part, else output_dir's name).
	ModelName string
	// HubModelID is the repository the quick-start snippet loads.
	HubModelID string
	// Datasets are the Hub ids of the training data (local paths are left out).
	Datasets []string
	// Tags follow "generated_from_trainer": the handbook's are alignment-handbook, trl and the
	// task.
	Tags []string
	// License, when known, is written as license.
	License string
	// TrainerName is TRL's trainer name: "SFT", "DPO", "ORPO".
	TrainerName string
	// Hyperparameters are the training hyperparameters, listed in order.
	Hyperparameters [][2]string
	// Results are the final metrics (train_loss, eval_loss, …), listed in order.
	Results [][2]string
	// Versions are the framework version lines ("handbook: v1.2.3", …).
	Versions []string
	// Adapter, when set, makes this a PEFT adapter's card.
	Adapter *Adapter
}

// Adapter is what PEFT adds to an adapter's card.
type Adapter struct {
	// BaseModel is the adapter's base_model_name_or_path.
	BaseModel string
	// PEFTVersion is the PEFT version the adapter files match.
	PEFTVersion string
	// ModelTags are the model's tags PEFT keeps (TRL adds "trl" and the task to the model).
	ModelTags []string
}

// Write writes dir/README.md.
func Write(dir string, c Card) error {
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(c.Markdown()), 0o644); err != nil {
		return fmt.Errorf("model card: %w", err)
	}
	return nil
}

// Markdown renders the card.
func (c Card) Markdown() string {
	var b strings.Builder
	b.WriteString("---\n")
	if c.BaseModel != "" {
		field(&b, "base_model", c.BaseModel)
	}
	if c.Adapter != nil && c.BaseModel == "" && c.Adapter.BaseModel != "" {
		field(&b, "base_model", c.Adapter.BaseModel)
	}
	switch len(c.Datasets) {
	case 0:
	case 1:
		field(&b, "datasets", c.Datasets[0])
	default:
		list(&b, "datasets", c.Datasets)
	}
	library, tags := "transformers", append([]string{"generated_from_trainer"}, c.Tags...)
	if c.Adapter != nil {
		library = "peft"
		tags = slices.Clone(c.Adapter.ModelTags)
		tags = append(tags, "transformers", "lora")
		if c.Adapter.BaseModel != "" {
			tags = append(tags, "base_model:adapter:"+c.Adapter.BaseModel)
		}
		slices.Sort(tags)
		tags = slices.Compact(tags)
	}
	field(&b, "library_name", library)
	if c.License != "" {
		field(&b, "license", c.License)
	}
	field(&b, "model_name", c.ModelName)
	list(&b, "tags", tags)
	field(&b, "licence", "license") // sic: TRL's ModelCardData(licence="license")
	if c.Adapter != nil {
		field(&b, "pipeline_tag", "text-generation")
	}
	b.WriteString("---\n\n")

	base := c.BaseModel
	if base == "" {
		base = "None"
	}
	fmt.Fprintf(&b, "# Model Card for %s\n\n", c.ModelName)
	fmt.Fprintf(&b, "This model is a fine-tuned version of [%s](https://huggingface.co/%s)", base, base)
	if len(c.Datasets) > 0 {
		d := strings.Join(c.Datasets, ", ")
		fmt.Fprintf(&b, " on the [%s](https://huggingface.co/datasets/%s) dataset", d, d)
	}
	b.WriteString(".\nIt has been trained using [TRL](https://github.com/huggingface/trl).\n\n")
	b.WriteString("## Quick start\n\n```python\nfrom transformers import pipeline\n\n")
	b.WriteString(`question = "If you had a time machine, but could only go to the past or the future once and never return, which would you choose and why?"` + "\n")
	fmt.Fprintf(&b, "generator = pipeline(\"text-generation\", model=\"%s\", device_map=\"auto\")\n", c.HubModelID)
	b.WriteString(`output = generator([{"role": "user", "content": question}], max_new_tokens=128, return_full_text=False)[0]` + "\n")
	b.WriteString("print(output[\"generated_text\"])\n```\n\n")
	b.WriteString("## Training procedure\n\n \n\n\n\n")
	fmt.Fprintf(&b, "This model was trained with %s.\n\n", c.TrainerName)
	if len(c.Hyperparameters) > 0 {
		b.WriteString("### Training hyperparameters\n\nThe following hyperparameters were used during training:\n")
		for _, h := range c.Hyperparameters {
			fmt.Fprintf(&b, "- %s: %s\n", h[0], h[1])
		}
		b.WriteString("\n")
	}
	if len(c.Results) > 0 {
		b.WriteString("### Training results\n\n")
		for _, r := range c.Results {
			fmt.Fprintf(&b, "- %s: %s\n", r[0], r[1])
		}
		b.WriteString("\n")
	}
	b.WriteString("### Framework versions\n\n")
	if c.Adapter != nil && c.Adapter.PEFTVersion != "" {
		fmt.Fprintf(&b, "- PEFT %s\n", c.Adapter.PEFTVersion)
	}
	for _, v := range c.Versions {
		fmt.Fprintf(&b, "- %s\n", v)
	}
	b.WriteString("\n## Citations\n\n\n\nCite TRL as:\n    \n```bibtex\n" + trlCitation + "\n```")
	return b.String()
}

const trlCitation = `@software{vonwerra2020trl,
  title   = {{TRL: Transformers Reinforcement Learning}},
  author  = {von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallouédec, Quentin},
  license = {Apache-2.0},
  url     = {https://github.com/huggingface/trl},
  year    = {2020}
}`

// plainScalar matches strings PyYAML writes without quotes.
var plainScalar = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./@+-]*(:[A-Za-z0-9_./@+-]+)*$`)

// scalar quotes a YAML string when PyYAML would.
func scalar(s string) string {
	switch strings.ToLower(s) {
	case "", "null", "true", "false", "yes", "no", "on", "off", "~":
		return "'" + s + "'"
	}
	if plainScalar.MatchString(s) && strings.ContainsAny(s[:1], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func field(b *strings.Builder, key, value string) {
	fmt.Fprintf(b, "%s: %s\n", key, scalar(value))
}

func list(b *strings.Builder, key string, values []string) {
	fmt.Fprintf(b, "%s:\n", key)
	for _, v := range values {
		fmt.Fprintf(b, "- %s\n", scalar(v))
	}
}
