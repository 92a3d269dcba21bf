package handbook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	gdtypes "github.com/gomlx/compute/dtypes"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/hub/hubtest"
	"handbook/model"
	"handbook/tokenizer"
	"handbook/zero"
)

// seedHubDir holds the model repositories tools/oracle/seed_hub.py wrote: per kind of model the
// seed's recipes load, a tiny config of its family, a tokenizer of the same kind and the
// repository's chat template.
const seedHubDir = "testdata/seed_hub"

// seedModels maps every model the seed's recipes load ("id", or "id@revision" for model_revision
// other than main) to its repository kind under seedHubDir.
var seedModels = map[string]string{
	"mistralai/Mistral-7B-v0.1":                            "mistral_base",
	"alignment-handbook/zephyr-7b-sft-full":                "mistral_zephyr",
	"alignment-handbook/zephyr-7b-sft-qlora":               "mistral_zephyr",
	"alignment-handbook/mistral-7b-sft-constitutional-ai":  "mistral_zephyr",
	"teknium/OpenHermes-2.5-Mistral-7B":                    "mistral_chatml",
	"mistral-community/Mixtral-8x22B-v0.1":                 "mixtral_base",
	"google/gemma-7b":                                      "gemma_base",
	"HuggingFaceH4/zephyr-7b-gemma-sft-v0.1":               "gemma_chatml",
	"bigcode/starcoder2-15b":                               "starcoder2_base",
	"HuggingFaceH4/starchat2-15b-sft-v0.1":                 "starcoder2_chatml",
	"HuggingFaceTB/SmolLM-360M":                            "smollm_base",
	"HuggingFaceTB/SmolLM2-1.7B":                           "smollm_base",
	"HuggingFaceTB/SmolLM2-360M":                           "smollm_base",
	"loubnabnl/smollm2-1.7B-sft":                           "smollm2_sft",
	"loubnabnl/smollm2-360M-sft":                           "smollm2_sft",
	"HuggingFaceTB/SmolLM3-3B-Base":                        "smollm3_base",
	"HuggingFaceTB/SmolLM3-3B-checkpoints@it-mid-training": "smollm3_checkpoints",
	"HuggingFaceTB/SmolLM3-3B-checkpoints@it-SFT":          "smollm3_checkpoints",
}

// seedLengthOverrides are the only overrides besides --max_steps and --output_dir: the SmolLM3
// SFT recipes pack rows of 32768 and 65536 tokens, whose attention a 2-core CI machine cannot
// hold; 512-token rows still pack several samples each.
var seedLengthOverrides = map[string][]string{
	"smollm3/sft/mid.yaml": {"--max_length=512"},
	"smollm3/sft/sft.yaml": {"--max_length=512"},
}

// TestSeedHubTokenizers: the seed hub's tokenizers (and rendered chat templates) encode as
// transformers' tokenizers do (check.json, written by tools/oracle/seed_hub.py).
func TestSeedHubTokenizers(t *testing.T) {
	kinds, err := os.ReadDir(seedHubDir)
	require.NoError(t, err)
	for _, k := range kinds {
		t.Run(k.Name(), func(t *testing.T) {
			dir := filepath.Join(seedHubDir, k.Name())
			var check struct {
				Text      string `json:"text"`
				IDs       []int  `json:"ids"`
				ChatText  string `json:"chat_text"`
				ChatIDs   []int  `json:"chat_ids"`
				VocabSize int    `json:"vocab_size"`
			}
			data, err := os.ReadFile(filepath.Join(dir, "check.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(data, &check))
			tok, err := tokenizer.Load(dir)
			require.NoError(t, err)
			ids, err := tok.Encode(check.Text, true)
			require.NoError(t, err)
			assert.Equal(t, check.IDs, ids)
			if check.ChatText != "" {
				ids, err := tok.Encode(check.ChatText, false)
				require.NoError(t, err)
				assert.Equal(t, check.ChatIDs, ids)
			}
			cfg, err := model.LoadConfig(dir)
			require.NoError(t, err)
			assert.Equal(t, check.VocabSize, cfg.VocabSize)
		})
	}
}

// TestSeedRecipesRunEndToEnd runs every recipe of recipes/ (the seed's, byte for byte) unchanged
// but for --max_steps=2 --output_dir=… (and seedLengthOverrides), against the local Hugging Face
// Hub of the hub tests (hub/hubtest) serving, under the recipe's own ids and revisions, a tiny random model of the family its
// model needs with a tokenizer and chat template of the same kind, and generated rows in each
// dataset's schema (enough for the recipe's test_split_size). Each run must train two steps,
// write its output (and push it, for the recipes with push_to_hub, to the same local Hub), and
// warn once about each key that has no effect here.
//
// It runs in the GOEXPERIMENT=simd pass of the suite only (.ci/run runs both passes): without the
// SIMD kernels the recipes' end-of-run evaluations (up to 3000 preference pairs) take about three
// times as long, and what the test checks — recipes, data, families and trainers wired together —
// does not depend on the kernels, which the other tests cover in both passes.
func TestSeedRecipesRunEndToEnd(t *testing.T) {
	if !simdBuild {
		t.Skip("runs in the GOEXPERIMENT=simd pass (see the doc comment)")
	}
	files := recipeFiles(t, "recipes")
	var seed []string
	for _, f := range files {
		if !strings.HasPrefix(f, filepath.Join("recipes", "tiny")+string(filepath.Separator)) {
			seed = append(seed, f)
		}
	}
	require.Len(t, seed, 22, "the seed's recipes")
	b, _, err := backend.New()
	require.NoError(t, err)
	defer b.Finalize()
	repoRoot := t.TempDir()
	weights := map[string]string{} // kind → its repository, weights drawn once
	for _, path := range seed {
		rel := strings.TrimPrefix(filepath.ToSlash(path), "recipes/")
		t.Run(rel, func(t *testing.T) {
			task := TaskFromPath(path)
			plain, err := LoadRecipe(path, task, nil)
			require.NoError(t, err)
			// The local Hub, logged in as the owner of the recipe's hub_model_id (push_to_hub).
			user := "alice"
			if owner, _, ok := strings.Cut(plain.Training.Publish.HubModelID, "/"); ok {
				user = owner
			}
			srv := hubtest.Start(t, user, "hf_"+user)
			addModel := func(id, revision string) {
				key := id
				if revision != "" && revision != "main" {
					key += "@" + revision
				}
				kind, ok := seedModels[key]
				require.True(t, ok, "no seed hub model for %s", key)
				if revision == "" {
					revision = "main"
				}
				srv.Seed("model", id, revision, dirFiles(t, seedModelRepo(t, b, repoRoot, kind, weights)))
			}
			addModel(plain.Model.ModelNameOrPath, plain.Model.ModelRevision)
			if tk := plain.Model.TokenizerNameOrPath; tk != "" && tk != plain.Model.ModelNameOrPath {
				addModel(tk, plain.Model.ModelRevision)
			}
			for id, dir := range seedDatasets(t, plain) {
				srv.Seed("dataset", id, "main", dirFiles(t, dir))
			}

			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"--max_steps=2", "--output_dir=" + out}, seedLengthOverrides[rel]...)
			r, err := LoadRecipe(path, task, args)
			require.NoError(t, err)
			var logs bytes.Buffer
			res, err := Run(context.Background(), r, RunOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			require.NoError(t, err, "log:\n%s", logs.String())
			assert.Equal(t, 2, res.Train.GlobalStep)
			assert.False(t, math.IsNaN(res.Train.TrainLoss), "train loss")
			weightsFile := "model.safetensors"
			if r.Model.UsePEFT {
				weightsFile = "adapter_model.safetensors"
			}
			assert.FileExists(t, filepath.Join(out, weightsFile))
			if pub := r.Training.Publish; pub.PushToHub {
				name := pub.HubModelID
				if name == "" {
					name = filepath.Base(out)
				}
				if !strings.Contains(name, "/") {
					name = user + "/" + name
				}
				assert.Contains(t, srv.Files(name, pub.Revision()), weightsFile, "pushed to %s@%s", name, pub.Revision())
			}
			// Keys with no effect here warn once each: the ignored keys, and typed keys such as
			// DPO's padding_free.
			for key := range r.Ignored {
				assert.Equal(t, 1, strings.Count(logs.String(), " "+key+" ignored"), "one warning for %s", key)
			}
			for _, w := range r.Warnings {
				q := strconv.Quote(w)
				assert.Equal(t, 1, strings.Count(logs.String(), q[1:len(q)-1]), "warned once: %s", w)
			}
			if task == TaskDPO && r.Training.PaddingFree {
				assert.Contains(t, logs.String(), "padding_free ignored")
			}
			t.Logf("%s: train rows %d, test rows %d, loss %.4f, %d warnings", rel, res.TrainRows, res.TestRows,
				res.Train.TrainLoss, strings.Count(logs.String(), "level=WARN"))
		})
	}
}

// dirFiles reads every file under dir by its slash-separated relative path.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	}))
	return files
}

// seedModelRepo returns a repository directory for kind: seedHubDir's files plus random weights
// for its config (drawn once per kind and test run).
func seedModelRepo(t *testing.T, b compute.Backend, root, kind string, drawn map[string]string) string {
	t.Helper()
	if dir, ok := drawn[kind]; ok {
		return dir
	}
	src := filepath.Join(seedHubDir, kind)
	dir := filepath.Join(root, kind)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	m, err := model.Init(b, src, gdtypes.Float32, 7)
	require.NoError(t, err)
	tmp := t.TempDir()
	require.NoError(t, m.Save(tmp, model.SaveOptions{}))
	data, err := os.ReadFile(filepath.Join(tmp, "model.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), data, 0o644))
	drawn[kind] = dir
	return dir
}

// seedDatasets writes, for every dataset split a recipe reads, Parquet files in that dataset's
// schema into a repository directory laid out as on the Hub (data/<split>-…, or
// data/<config>/<split>-… for named configs), with enough rows for the recipe's
// test_split_size and two optimizer steps. It returns the directories by dataset id.
func seedDatasets(t *testing.T, r *Recipe) map[string]string {
	t.Helper()
	type ref struct{ id, config, split string }
	var refs []ref
	weightSum := 0.0
	test := 0.0
	switch d := r.Data; {
	case d.Mixture != nil:
		for _, e := range d.Mixture.Datasets {
			refs = append(refs, ref{e.ID, e.Config, e.Split})
			w := 1.0
			if e.Weight != nil {
				w = *e.Weight
			}
			weightSum += w
		}
		if d.Mixture.TestSplitSize != nil && *d.Mixture.TestSplitSize >= 1 {
			test = *d.Mixture.TestSplitSize
		}
	case d.DatasetName != "":
		refs = append(refs, ref{d.DatasetName, d.DatasetConfig, d.DatasetTrainSplit})
		if d.DatasetTestSplit != "" {
			refs = append(refs, ref{d.DatasetName, d.DatasetConfig, d.DatasetTestSplit})
		}
		weightSum = 1
	case d.Legacy != nil:
		for _, id := range d.Legacy.Order {
			for _, s := range d.Legacy.Splits {
				refs = append(refs, ref{id, "", s})
			}
			weightSum += d.Legacy.Mixer[id]
		}
	}
	tc := r.Training
	need := test + float64(2*tc.PerDeviceTrainBatchSize*tc.GradientAccumulationSteps) + 8
	rows := max(40, int(math.Ceil(need/weightSum))+1)
	root := t.TempDir()
	out := map[string]string{}
	for _, rf := range refs {
		schema, ok := seedSchemas[rf.id]
		require.True(t, ok, "no schema for dataset %s", rf.id)
		dir := filepath.Join(root, strings.ReplaceAll(rf.id, "/", "--"))
		out[rf.id] = dir
		file := filepath.Join(dir, "data", rf.split+"-00000-of-00001.parquet")
		if rf.config != "" && rf.config != "default" {
			file = filepath.Join(dir, "data", rf.config, rf.split+"-00000-of-00001.parquet")
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
		require.NoError(t, schema(file, rows, rf.split), "%s %s", rf.id, rf.split)
	}
	return out
}

// Columns shared by the datasets' schemas (the Hub's Features: a message is {content, role}).
type seedMsg struct {
	Content string `parquet:"content"`
	Role    string `parquet:"role"`
}

type seedTemplateKwargs struct {
	CustomInstructions string   `parquet:"custom_instructions"`
	EnableThinking     bool     `parquet:"enable_thinking"`
	PythonTools        []string `parquet:"python_tools,list"`
	XMLTools           []string `parquet:"xml_tools,list"`
}

// seedQA is row i's question and answers (right, wrong): short, since a recipe's test split
// (up to 3000 rows) is evaluated at the end; every fifth answer is a sentence.
func seedQA(i int, split string) (q, right, wrong string) {
	a, b := i%17+2, (i*7)%23+3
	q = fmt.Sprintf("%d+%d?", a, b)
	right = fmt.Sprint(a + b)
	wrong = fmt.Sprint(a + b + 1 + i%3)
	if i%5 == 0 {
		q += " (" + split + ")"
		right = fmt.Sprintf("%d plus %d is %d.", a, b, a+b)
	}
	return q, right, wrong
}

func seedChat(q, answer string) []seedMsg {
	return []seedMsg{{Content: q, Role: "user"}, {Content: answer, Role: "assistant"}}
}

// seedMultiTurn is a two-exchange conversation ending with answer.
func seedMultiTurn(i int, q, first, answer string) []seedMsg {
	return []seedMsg{{Content: q, Role: "user"}, {Content: first, Role: "assistant"},
		{Content: fmt.Sprintf("x2 (%d)?", i), Role: "user"}, {Content: answer, Role: "assistant"}}
}

// writeRows builds n rows with gen and writes them as Parquet.
func writeRows[T any](gen func(i int, split string) T) func(path string, n int, split string) error {
	return func(path string, n int, split string) error {
		rows := make([]T, n)
		for i := range rows {
			rows[i] = gen(i, split)
		}
		return parquet.WriteFile(path, rows)
	}
}

// The schemas (dataset cards' dataset_info features) of the datasets the seed's recipes read.
type (
	ultrachatRow struct {
		Prompt   string    `parquet:"prompt"`
		PromptID string    `parquet:"prompt_id"`
		Messages []seedMsg `parquet:"messages,list"`
	}
	ultrafeedbackRow struct {
		Prompt        string    `parquet:"prompt"`
		PromptID      string    `parquet:"prompt_id"`
		Chosen        []seedMsg `parquet:"chosen,list"`
		Rejected      []seedMsg `parquet:"rejected,list"`
		Messages      []seedMsg `parquet:"messages,list"`
		ScoreChosen   float64   `parquet:"score_chosen"`
		ScoreRejected float64   `parquet:"score_rejected"`
	}
	caiRow struct {
		Index            int64     `parquet:"index"`
		Prompt           string    `parquet:"prompt"`
		InitPrompt       seedMsg   `parquet:"init_prompt"`
		InitResponse     seedMsg   `parquet:"init_response"`
		CriticPrompt     seedMsg   `parquet:"critic_prompt"`
		CriticResponse   seedMsg   `parquet:"critic_response"`
		RevisionPrompt   seedMsg   `parquet:"revision_prompt"`
		RevisionResponse seedMsg   `parquet:"revision_response"`
		Messages         []seedMsg `parquet:"messages,list"`
		Chosen           []seedMsg `parquet:"chosen,list"`
		Rejected         []seedMsg `parquet:"rejected,list"`
	}
	orcaRow struct {
		Chosen   []seedMsg `parquet:"chosen,list"`
		Rejected []seedMsg `parquet:"rejected,list"`
		Prompt   string    `parquet:"prompt"`
	}
	dpoMixRow struct {
		Dataset        string    `parquet:"dataset"`
		Chosen         []seedMsg `parquet:"chosen,list"`
		Rejected       []seedMsg `parquet:"rejected,list"`
		ChosenRating   float64   `parquet:"chosen_rating"`
		RejectedRating float64   `parquet:"rejected_rating"`
	}
	capybaraTurn struct {
		Input  string `parquet:"input"`
		Output string `parquet:"output"`
	}
	capybaraDPORow struct {
		Source                 string         `parquet:"source"`
		Conversation           []capybaraTurn `parquet:"conversation,list"`
		OriginalResponse       string         `parquet:"original_response"`
		GenerationPrompt       []string       `parquet:"generation_prompt,list"`
		RawGenerationResponses []string       `parquet:"raw_generation_responses,list"`
		NewGenerations         []string       `parquet:"new_generations,list"`
		Prompt                 string         `parquet:"prompt"`
		Chosen                 []seedMsg      `parquet:"chosen,list"`
		Rejected               []seedMsg      `parquet:"rejected,list"`
		RatingChosen           int64          `parquet:"rating_chosen"`
		RatingRejected         int64          `parquet:"rating_rejected"`
		ChosenModel            string         `parquet:"chosen_model"`
		RejectedModel          string         `parquet:"rejected_model"`
	}
	messagesRow struct {
		Messages []seedMsg `parquet:"messages,list"`
	}
	smoltalkRow struct {
		Messages []seedMsg `parquet:"messages,list"`
		Source   string    `parquet:"source"`
	}
	smoltalk2SFTRow struct {
		Messages           []seedMsg          `parquet:"messages,list"`
		ChatTemplateKwargs seedTemplateKwargs `parquet:"chat_template_kwargs"`
		Source             string             `parquet:"source"`
	}
	smoltalk2PreferenceRow struct {
		Chosen             []seedMsg          `parquet:"chosen,list"`
		Rejected           []seedMsg          `parquet:"rejected,list"`
		Prompt             string             `parquet:"prompt"`
		ChatTemplateKwargs seedTemplateKwargs `parquet:"chat_template_kwargs"`
		Source             string             `parquet:"source"`
	}
)

var (
	ultrachat = writeRows(func(i int, split string) ultrachatRow {
		q, a, _ := seedQA(i, split)
		msgs := seedChat(q, a)
		if i%4 == 1 {
			msgs = seedMultiTurn(i, q, a, "2*"+a)
		}
		return ultrachatRow{Prompt: q, PromptID: fmt.Sprintf("%064x", i), Messages: msgs}
	})
	ultrafeedback = writeRows(func(i int, split string) ultrafeedbackRow {
		q, a, w := seedQA(i, split)
		return ultrafeedbackRow{Prompt: q, PromptID: fmt.Sprintf("%064x", i), Chosen: seedChat(q, a), Rejected: seedChat(q, w),
			Messages: seedChat(q, a), ScoreChosen: 8.5, ScoreRejected: 3}
	})
	caiConversation = writeRows(func(i int, split string) caiRow {
		q, a, w := seedQA(i, split)
		return caiRow{Index: int64(i), Prompt: q, InitPrompt: seedMsg{q, "user"}, InitResponse: seedMsg{w, "assistant"},
			CriticPrompt:   seedMsg{"Identify anything harmful or wrong in your last response.", "user"},
			CriticResponse: seedMsg{"The sum was wrong.", "assistant"},
			RevisionPrompt: seedMsg{"Please rewrite the response.", "user"}, RevisionResponse: seedMsg{a, "assistant"},
			Messages: seedChat(q, a), Chosen: seedChat(q, a), Rejected: seedChat(q, w)}
	})
	orcaPairs = writeRows(func(i int, split string) orcaRow {
		q, a, w := seedQA(i, split)
		sys := seedMsg{"Be brief.", "system"}
		return orcaRow{Chosen: append([]seedMsg{sys}, seedChat(q, a)...), Rejected: append([]seedMsg{sys}, seedChat(q, w)...), Prompt: q}
	})
	dpoMix = writeRows(func(i int, split string) dpoMixRow {
		q, a, w := seedQA(i, split)
		return dpoMixRow{Dataset: "argilla/distilabel-capybara-dpo-7k-binarized", Chosen: seedChat(q, a), Rejected: seedChat(q, w),
			ChosenRating: 5, RejectedRating: 2}
	})
	capybaraDPO = writeRows(func(i int, split string) capybaraDPORow {
		q, a, w := seedQA(i, split)
		first := "So " + a
		return capybaraDPORow{Source: "Airoboros", Conversation: []capybaraTurn{{q, first}}, OriginalResponse: first,
			GenerationPrompt: []string{q}, RawGenerationResponses: []string{a, w}, NewGenerations: []string{a, w}, Prompt: q,
			Chosen: seedMultiTurn(i, q, first, "2*"+a), Rejected: seedMultiTurn(i, q, first, "2*"+w),
			RatingChosen: 5, RatingRejected: 2, ChosenModel: "gpt-4", RejectedModel: "mistral-7b"}
	})
	messagesOnly = writeRows(func(i int, split string) messagesRow {
		q, a, _ := seedQA(i, split)
		return messagesRow{Messages: seedChat(q, a)}
	})
	smoltalk = writeRows(func(i int, split string) smoltalkRow {
		q, a, _ := seedQA(i, split)
		return smoltalkRow{Messages: seedChat(q, a), Source: "everyday-conversations"}
	})
	// smoltalk2's split names end in _think or _no_think: the kwargs and the answers follow.
	smoltalk2SFT = writeRows(func(i int, split string) smoltalk2SFTRow {
		q, a, _ := seedQA(i, split)
		think := strings.HasSuffix(split, "_think") && !strings.HasSuffix(split, "_no_think")
		if think {
			a = "<think>\nadd\n</think>\n" + a
		}
		msgs := seedChat(q, a)
		if i%3 == 0 {
			msgs = append([]seedMsg{{"Be brief.", "system"}}, msgs...)
		}
		return smoltalk2SFTRow{Messages: msgs, ChatTemplateKwargs: seedTemplateKwargs{EnableThinking: think}, Source: split}
	})
	smoltalk2Preference = writeRows(func(i int, split string) smoltalk2PreferenceRow {
		q, a, w := seedQA(i, split)
		think := strings.HasSuffix(split, "_think") && !strings.HasSuffix(split, "_no_think")
		return smoltalk2PreferenceRow{Chosen: seedChat(q, a), Rejected: seedChat(q, w), Prompt: q,
			ChatTemplateKwargs: seedTemplateKwargs{EnableThinking: think}, Source: split}
	})
)

// seedSchemas maps the seed's dataset ids to their row writers. smoltalk2's configs have
// different columns; its writer is chosen by the split's file path below.
var seedSchemas = map[string]func(path string, n int, split string) error{
	"HuggingFaceH4/ultrachat_200k":                     ultrachat,
	"HuggingFaceH4/deita-10k-v0-sft":                   ultrachat,
	"HuggingFaceH4/airoboros-3.2":                      ultrachat,
	"HuggingFaceH4/Code-Feedback":                      ultrachat,
	"HuggingFaceH4/orca-math-word-problems-200k":       ultrachat,
	"HuggingFaceH4/SystemChat":                         ultrachat,
	"HuggingFaceH4/capybara":                           ultrachat,
	"HuggingFaceH4/ultrafeedback_binarized":            ultrafeedback,
	"HuggingFaceH4/cai-conversation-harmless":          caiConversation,
	"HuggingFaceH4/grok-conversation-harmless":         caiConversation,
	"HuggingFaceH4/orca_dpo_pairs":                     orcaPairs,
	"argilla/dpo-mix-7k":                               dpoMix,
	"argilla/distilabel-capybara-dpo-7k-binarized":     capybaraDPO,
	"HuggingFaceTB/Magpie-Pro-300K-Filtered-H4":        messagesOnly,
	"HuggingFaceTB/self-oss-instruct-sc2-H4":           messagesOnly,
	"HuggingFaceTB/OpenHermes-2.5-H4":                  messagesOnly,
	"HuggingFaceTB/everyday-conversations-llama3.1-2k": messagesOnly,
	"HuggingFaceTB/instruct-data-basics-smollm-H4":     messagesOnly,
	"HuggingFaceTB/smoltalk":                           smoltalk,
	"HuggingFaceTB/smol-smoltalk":                      smoltalk,
	"HuggingFaceTB/smoltalk2": func(path string, n int, split string) error {
		switch filepath.Base(filepath.Dir(path)) {
		case "Preference":
			return smoltalk2Preference(path, n, split)
		case "Mid":
			return smoltalk(path, n, split)
		}
		return smoltalk2SFT(path, n, split)
	},
}

// TestSeedRecipesAreTheSeeds: recipes/ holds the seed's current layout byte for byte (the copies
// under testdata/recipes, checked against the seed by TestLoadAnchorRecipes), plus the legacy
// layout's accelerate configs its READMEs name.
func TestSeedRecipesAreTheSeeds(t *testing.T) {
	var checked []string
	err := filepath.WalkDir("recipes", func(p string, d fs.DirEntry, err error) error {
		// recipes/tiny is the project's demo and launch.slurm its own launcher (issue 17).
		if err != nil || d.IsDir() || strings.HasPrefix(filepath.ToSlash(p), "recipes/tiny/") || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		rel := filepath.ToSlash(p)
		want := filepath.Join(seedCopy, rel)
		if _, err := os.Stat(want); err != nil {
			want = filepath.Join(seedCopy, "legacy-2025-07-11", rel)
		}
		a, err := os.ReadFile(p)
		require.NoError(t, err)
		b, err := os.ReadFile(want)
		require.NoError(t, err, "%s is not a seed file", p)
		assert.True(t, bytes.Equal(a, b), "%s differs from the seed's %s", p, want)
		checked = append(checked, rel)
		return nil
	})
	require.NoError(t, err)
	for _, f := range []string{"recipes/accelerate_configs/zero3.yaml", "recipes/accelerate_configs/deepspeed_zero3.yaml",
		"recipes/accelerate_configs/multi_gpu.yaml", "recipes/accelerate_configs/ddp.yaml", "recipes/accelerate_configs/fsdp.yaml",
		"recipes/accelerate_configs/fsdp_qlora.yaml", "recipes/zephyr-141b-A35b/orpo/config_full.yaml"} {
		assert.True(t, slices.Contains(checked, f), f)
	}
}

// TestSeedREADMECommands: every `handbook` command of README.md's seed section parses and loads
// its recipe (with its accelerate config and overrides) as the CLI would, before any run.
func TestSeedREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	text := string(readme)
	start := strings.Index(text, "## The seed's recipes")
	require.GreaterOrEqual(t, start, 0)
	section := text[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	section = strings.ReplaceAll(section, "\\\n", " ")
	n := 0
	for _, line := range strings.Split(section, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "handbook" || !slices.Contains([]string{"sft", "dpo", "orpo"}, fields[1]) {
			continue
		}
		n++
		t.Run(strings.Join(fields[1:], " "), func(t *testing.T) {
			path, overrides, err := ParseArgs(fields[2:])
			require.NoError(t, err)
			r, err := LoadRecipe(path, Task(fields[1]), overrides)
			require.NoError(t, err, line)
			assert.Equal(t, Task(fields[1]), TaskFromPath(path), "the command's task is the recipe's folder")
			if strings.Contains(line, "--config_file") {
				require.NotNil(t, r.Accelerate)
				_, _, err := zero.FromAccelerateConfig(r.Accelerate.Path)
				require.NoError(t, err)
			}
		})
	}
	assert.GreaterOrEqual(t, n, 19, "commands found")
}
