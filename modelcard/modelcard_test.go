package modelcard

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type inputs struct {
	BaseModel   string   `json:"base_model"`
	ModelName   string   `json:"model_name"`
	HubModelID  string   `json:"hub_model_id"`
	DatasetName string   `json:"dataset_name"`
	Tags        []string `json:"tags"`
	TrainerName string   `json:"trainer_name"`
}

func golden(t *testing.T, name string) (front, body string) {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	parts := strings.SplitN(string(data), "---\n", 3)
	require.Len(t, parts, 3)
	return parts[1], parts[2]
}

func split(t *testing.T, card string) (front, body string) {
	parts := strings.SplitN(card, "---\n", 3)
	require.Len(t, parts, 3)
	require.Empty(t, parts[0], "the card starts with its front matter")
	return parts[1], parts[2]
}

// assertContainsInOrder checks that every line of want except TRL's framework versions appears
// in got, in order: the card is TRL's, with the hyperparameters and results added.
func assertContainsInOrder(t *testing.T, got, want string) {
	lines := strings.Split(got, "\n")
	i := 0
	for _, w := range strings.Split(want, "\n") {
		if strings.HasPrefix(w, "- TRL: ") || strings.HasPrefix(w, "- Transformers: ") || strings.HasPrefix(w, "- Pytorch: ") ||
			strings.HasPrefix(w, "- Datasets: ") || strings.HasPrefix(w, "- Tokenizers: ") {
			continue
		}
		for i < len(lines) && lines[i] != w {
			i++
		}
		require.Less(t, i, len(lines), "TRL's line %q is missing or out of order", w)
		i++
	}
}

func card(t *testing.T) Card {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs.json"))
	require.NoError(t, err)
	var in inputs
	require.NoError(t, json.Unmarshal(data, &in))
	return Card{BaseModel: in.BaseModel, ModelName: in.ModelName, HubModelID: in.HubModelID, Datasets: []string{in.DatasetName},
		Tags: in.Tags, TrainerName: in.TrainerName, Hyperparameters: [][2]string{{"learning_rate", "0.002"}, {"seed", "42"}},
		Results: [][2]string{{"train_loss", "1.25"}}, Versions: []string{"handbook: devel"}}
}

func TestCardIsTRLs(t *testing.T) {
	c := card(t)
	front, body := split(t, c.Markdown())
	wantFront, wantBody := golden(t, "trl_sft.md")
	assert.Equal(t, wantFront, front, "front matter byte for byte as TRL writes it")
	assertContainsInOrder(t, body, wantBody)
	assert.Contains(t, body, "### Training hyperparameters\n\nThe following hyperparameters were used during training:\n- learning_rate: 0.002\n- seed: 42\n")
	assert.Contains(t, body, "### Training results\n\n- train_loss: 1.25\n")
	assert.Contains(t, body, "- handbook: devel\n")

	var meta map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(front), &meta), "the front matter parses as YAML, as the Hub reads it")
	assert.Equal(t, "transformers", meta["library_name"])
	assert.Equal(t, []any{"generated_from_trainer", "alignment-handbook", "trl", "sft"}, meta["tags"])
}

func TestAdapterCardIsPEFTs(t *testing.T) {
	c := card(t)
	c.Adapter = &Adapter{BaseModel: c.BaseModel, PEFTVersion: "0.21.2", ModelTags: []string{"trl", "sft"}}
	front, body := split(t, c.Markdown())
	wantFront, wantBody := golden(t, "peft_sft.md")
	assert.Equal(t, wantFront, front)
	assertContainsInOrder(t, body, wantBody)
	assert.Contains(t, body, "- PEFT 0.21.2\n")
}

func TestLocalBaseAndManyDatasets(t *testing.T) {
	c := Card{ModelName: "m", HubModelID: "a/m", Datasets: []string{"a/x", "b/y"}, TrainerName: "DPO", Tags: []string{"dpo"}, License: "apache-2.0"}
	front, body := split(t, c.Markdown())
	var meta map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(front), &meta))
	assert.NotContains(t, meta, "base_model", "a local starting point is no Hub model")
	assert.Equal(t, []any{"a/x", "b/y"}, meta["datasets"])
	assert.Equal(t, "apache-2.0", meta["license"])
	assert.Contains(t, body, "fine-tuned version of [None](https://huggingface.co/None)", "what TRL writes without a Hub base model")
	dir := t.TempDir()
	require.NoError(t, Write(dir, c))
	assert.FileExists(t, filepath.Join(dir, "README.md"))
	assert.Equal(t, "'7b: x'", scalar("7b: x"))
	assert.Equal(t, "'true'", scalar("true"))
}
