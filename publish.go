package handbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"handbook/hub"
	"handbook/model"
	"handbook/modelcard"
	"handbook/train"
	"handbook/train/wandb"
)

// pushIgnore are the paths of an output directory a push leaves out, as transformers' Trainer
// does ("_*", "checkpoint-*"), plus the engine's checkpoints being written and the run's lock.
var pushIgnore = []string{"_*", "checkpoint-*", ".checkpoint-*", train.LockFile}

// PushOptions say where Push puts a directory.
type PushOptions struct {
	// Repo is the repository id; a bare name goes under the token's user.
	Repo string
	// Revision is the branch ("main" when empty); it is created from main when missing.
	Revision string
	// Private makes a new repository private.
	Private bool
	// Token overrides HF_TOKEN.
	Token string
	// Message is the commit message ("Upload folder using huggingface_hub" when empty).
	Message string
}

// PushResult is where a push went.
type PushResult struct {
	Repo string
	hub.CommitInfo
}

// Push uploads an output directory (a model, an adapter, any run's output_dir) to a Hub
// repository, creating it (and the branch) when needed, as Trainer.push_to_hub does: checkpoint-*
// and _* are left out, and files the repository already holds are not sent again.
func Push(ctx context.Context, dir string, opts PushOptions) (*PushResult, error) {
	c, err := hubClient(opts.Token)
	if err != nil {
		return nil, err
	}
	repo, err := ensureRepo(ctx, c, opts.Repo, opts.Revision, opts.Private)
	if err != nil {
		return nil, err
	}
	info, err := c.UploadFolder(ctx, repo, dir, hub.UploadOptions{Revision: opts.Revision, Message: opts.Message, Ignore: pushIgnore})
	if err != nil {
		return nil, err
	}
	return &PushResult{Repo: repo, CommitInfo: *info}, nil
}

// hubClient is the environment's Hub client, with token when set (hub_token, --token).
func hubClient(token string) (*hub.Client, error) {
	c, err := hub.FromEnv()
	if err != nil {
		return nil, err
	}
	if token != "" {
		c.Token = token
	}
	if c.Offline {
		return nil, errors.New("hub: HF_HUB_OFFLINE is set: nothing can be pushed")
	}
	return c, nil
}

// ensureRepo creates (or finds) repo — a bare name under the token's user, from whoami — and
// the branch revision, and returns the full repository id.
func ensureRepo(ctx context.Context, c *hub.Client, repo, revision string, private bool) (string, error) {
	if !strings.Contains(repo, "/") {
		user, err := c.WhoAmI(ctx)
		if err != nil {
			return "", err
		}
		repo = user + "/" + repo
	}
	repo, err := c.CreateRepo(ctx, hub.Model, repo, private)
	if err != nil {
		return "", err
	}
	if revision != "" && revision != "main" {
		if err := c.CreateBranch(ctx, hub.Model, repo, revision); err != nil {
			return "", err
		}
	}
	return repo, nil
}

// trainerPush is a recipe's push_to_hub: the repository is made before training; each complete
// checkpoint (hub_strategy every_save, checkpoint, all_checkpoints) is pushed in the background
// while training goes on; the final output directory is pushed at the end.
type trainerPush struct {
	client       *hub.Client
	repo         string
	revision     string
	strategy     string
	alwaysPush   bool
	byEpoch      bool
	outputDir    string
	tokenizerDir string
	log          *slog.Logger

	mu      sync.Mutex
	running int
	wg      sync.WaitGroup
	pushed  []string // commit messages of the background pushes that succeeded
}

// newTrainerPush prepares the repository; nil when the recipe does not push.
func newTrainerPush(ctx context.Context, r *Recipe, outputDir, tokenizerDir string, log *slog.Logger) (*trainerPush, error) {
	p := r.Training.Publish
	if !p.PushToHub {
		return nil, nil
	}
	c, err := hubClient(p.HubToken)
	if err != nil {
		return nil, fmt.Errorf("%s: push_to_hub: %w", r.Path, err)
	}
	repo := p.HubModelID
	if repo == "" {
		repo = filepath.Base(filepath.Clean(outputDir))
		if abs, err := filepath.Abs(outputDir); err == nil {
			repo = filepath.Base(abs)
		}
	}
	private := p.HubPrivateRepo != nil && *p.HubPrivateRepo
	full, err := ensureRepo(ctx, c, repo, p.Revision(), private)
	if err != nil {
		return nil, fmt.Errorf("%s: push_to_hub: %w", r.Path, err)
	}
	log.Info("pushing to the Hub", "repo", full, "revision", p.Revision(), "hub_strategy", p.HubStrategy)
	return &trainerPush{client: c, repo: full, revision: p.Revision(), strategy: p.HubStrategy, alwaysPush: p.HubAlwaysPush,
		byEpoch: r.Training.SaveStrategy == "epoch", outputDir: outputDir, tokenizerDir: tokenizerDir, log: log}, nil
}

// Log implements train.Sink; the pusher only listens for saves.
func (*trainerPush) Log(int, map[string]float64) error { return nil }

// modelingFile reports whether a checkpoint file is one transformers copies into output_dir
// before a save's push: config, generation config, weights (sharded too) and adapter files.
func modelingFile(name string) bool {
	switch name {
	case "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
		"adapter_config.json", "adapter_model.safetensors":
		return true
	}
	return strings.HasPrefix(name, "model-") && strings.HasSuffix(name, ".safetensors")
}

// tokenizerFiles are the tokenizer files an output directory carries.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}

// Saved implements train.SaveObserver: it stages what transformers would push for this save —
// output_dir with the checkpoint's model files and the tokenizer, and for the checkpoint
// strategies the checkpoint itself — and uploads it in the background. Staging links the
// checkpoint's files (a later save rotating the checkpoint away cannot pull them from under the
// upload) and copies the few small files of output_dir. A push still running skips this one
// unless hub_always_push; a failed push is logged and training goes on (the local checkpoint is
// untouched).
func (p *trainerPush) Saved(step int, dir string) {
	if p.strategy == "end" {
		return
	}
	p.mu.Lock()
	busy := p.running > 0 && !p.alwaysPush
	if !busy {
		p.running++
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if busy {
		p.log.Info("a Hub push is still running: this save is not pushed", "step", step)
		return
	}
	message := "Training in progress, step " + strconv.Itoa(step)
	if p.byEpoch {
		message = "Training in progress, epoch " + strconv.Itoa(epochOf(dir))
	}
	stage := filepath.Join(p.outputDir, "_hub_push", "step-"+strconv.Itoa(step))
	err := p.stage(stage, dir)
	if err != nil {
		p.done(stage, fmt.Errorf("staging the push of %s: %w", dir, err), message)
		return
	}
	go func() {
		ctx := context.Background()
		_, err := p.client.UploadFolder(ctx, p.repo, filepath.Join(stage, "model"), hub.UploadOptions{Revision: p.revision, Message: message})
		if err == nil && p.strategy != "every_save" {
			folder := "last-checkpoint"
			if p.strategy == "all_checkpoints" {
				folder = filepath.Base(dir)
			}
			_, err = p.client.UploadFolder(ctx, p.repo, filepath.Join(stage, "checkpoint"), hub.UploadOptions{Revision: p.revision,
				PathInRepo: folder, Message: message + ", checkpoint"})
		}
		p.done(stage, err, message)
	}()
}

// epochOf reads the epoch of a checkpoint from its trainer_state.json (0 when unreadable).
func epochOf(dir string) int {
	var st struct {
		Epoch float64 `json:"epoch"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
	if err != nil || json.Unmarshal(data, &st) != nil {
		return 0
	}
	return int(st.Epoch)
}

func (p *trainerPush) done(stage string, err error, message string) {
	os.RemoveAll(stage)
	p.mu.Lock()
	p.running--
	if err == nil {
		p.pushed = append(p.pushed, message)
	}
	p.mu.Unlock()
	if err != nil {
		p.log.Warn("Hub push failed; training goes on and the checkpoint stays on disk", "error", err)
	} else {
		p.log.Info("pushed to the Hub", "repo", p.repo, "commit", message)
	}
	p.wg.Done()
}

// stage lays out stage/model (output_dir's files, the checkpoint's model files, the tokenizer)
// and, for the checkpoint strategies, stage/checkpoint.
func (p *trainerPush) stage(stage, checkpoint string) error {
	if err := os.RemoveAll(stage); err != nil {
		return err
	}
	modelDir := filepath.Join(stage, "model")
	err := filepath.WalkDir(p.outputDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.outputDir, path)
		if rel == "." {
			return nil
		}
		for _, pat := range pushIgnore {
			if ok, _ := filepath.Match(pat, d.Name()); ok && filepath.Dir(rel) == "." {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() || !d.Type().IsRegular() || (filepath.Dir(rel) == "." && modelingFile(d.Name())) {
			return nil // the model files come from the checkpoint
		}
		return copySmallFile(path, filepath.Join(modelDir, rel))
	})
	if err != nil {
		return err
	}
	for _, name := range tokenizerFiles {
		if src := filepath.Join(p.tokenizerDir, name); p.tokenizerDir != "" && fileExists(src) {
			if err := copySmallFile(src, filepath.Join(modelDir, name)); err != nil {
				return err
			}
		}
	}
	entries, err := os.ReadDir(checkpoint)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && modelingFile(e.Name()) {
			if err := linkFile(filepath.Join(checkpoint, e.Name()), filepath.Join(modelDir, e.Name())); err != nil {
				return err
			}
		}
		if e.Type().IsRegular() && p.strategy != "every_save" {
			if err := linkFile(filepath.Join(checkpoint, e.Name()), filepath.Join(stage, "checkpoint", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish waits for the background pushes, then pushes output_dir ("End of training").
func (p *trainerPush) finish(ctx context.Context) (*hub.CommitInfo, error) {
	p.wg.Wait()
	info, err := p.client.UploadFolder(ctx, p.repo, p.outputDir, hub.UploadOptions{Revision: p.revision, Message: "End of training", Ignore: pushIgnore})
	if err != nil {
		return nil, fmt.Errorf("push_to_hub: the model is saved in %s but the push failed: %w", p.outputDir, err)
	}
	os.RemoveAll(filepath.Join(p.outputDir, "_hub_push"))
	p.log.Info("pushed to the Hub", "repo", p.repo, "revision", p.revision, "commit", info.OID)
	return info, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// linkFile hard-links src to dst (the staging folder is inside output_dir, on the same file
// system as the checkpoint).
func linkFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Link(src, dst)
}

// copySmallFile copies a small file (logs, configs, tokenizer files) whole.
func copySmallFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// peftFormatVersion is the PEFT release whose adapter files and card fields lora's files match
// (checked against it in lora's and modelcard's tests).
const peftFormatVersion = "0.21.2"

// writeModelCard writes output_dir/README.md for the finished run.
func writeModelCard(r *Recipe, outputDir, repo string, adapter bool, res train.Result) error {
	name := filepath.Base(filepath.Clean(outputDir))
	if id := r.Training.Publish.HubModelID; id != "" {
		name = id[strings.LastIndex(id, "/")+1:]
	}
	if repo == "" {
		repo = name
	}
	c := modelcard.Card{ModelName: name, HubModelID: repo, TrainerName: strings.ToUpper(string(r.Task)),
		Tags: []string{"alignment-handbook", "trl", string(r.Task)}, Versions: []string{"handbook: " + moduleVersion()}}
	if base := r.Model.ModelNameOrPath; !isLocalDir(base) && hub.IsRepoID(base) {
		c.BaseModel = base
	}
	for _, d := range datasetIDs(r) {
		if !isLocalDir(d) && hub.IsRepoID(d) {
			c.Datasets = append(c.Datasets, d)
		}
	}
	tc := r.Training
	c.Hyperparameters = [][2]string{
		{"learning_rate", strconv.FormatFloat(tc.LearningRate, 'g', -1, 64)},
		{"train_batch_size", strconv.Itoa(tc.PerDeviceTrainBatchSize)},
		{"eval_batch_size", strconv.Itoa(tc.PerDeviceEvalBatchSize)},
		{"seed", strconv.Itoa(tc.Seed)},
		{"gradient_accumulation_steps", strconv.Itoa(tc.GradientAccumulationSteps)},
		{"optimizer", fmt.Sprintf("Use %s with betas=(%g,%g) and epsilon=%g", tc.Optim, tc.AdamBeta1, tc.AdamBeta2, tc.AdamEpsilon)},
		{"lr_scheduler_type", tc.LRSchedulerType},
		{"training_steps", strconv.Itoa(res.GlobalStep)},
	}
	c.Results = [][2]string{{"train_loss", strconv.FormatFloat(res.TrainLoss, 'g', 6, 64)}}
	for _, e := range res.State.LogHistory {
		if v, ok := e["eval_loss"]; ok {
			c.Results = append(c.Results[:1], [2]string{"eval_loss", strconv.FormatFloat(v, 'g', 6, 64)})
		}
	}
	if adapter {
		c.Adapter = &modelcard.Adapter{BaseModel: r.Model.ModelNameOrPath, PEFTVersion: peftFormatVersion, ModelTags: []string{"trl", string(r.Task)}}
	}
	return modelcard.Write(outputDir, c)
}

func isLocalDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// datasetIDs are the dataset ids a recipe trains on.
func datasetIDs(r *Recipe) []string {
	switch d := r.Data; {
	case d.Mixture != nil:
		var ids []string
		for _, ds := range d.Mixture.Datasets {
			ids = append(ids, ds.ID)
		}
		return ids
	case d.Legacy != nil:
		return d.Legacy.Order
	case d.DatasetName != "":
		return []string{d.DatasetName}
	}
	return nil
}

func moduleVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

// wandbRun starts the recipe's offline W&B run (report_to: wandb); nil when W&B is disabled.
func wandbRun(r *Recipe, m *model.Model, log *slog.Logger) (*wandb.Run, error) {
	opts, mode, notice := wandb.FromEnv()
	if notice != "" {
		log.Info(notice)
	}
	if mode == wandb.Disabled {
		return nil, nil
	}
	p := r.Training.Publish
	// The handbook's wandb_* keys set WANDB_ENTITY, WANDB_PROJECT and WANDB_RUN_GROUP.
	if p.WandbEntity != "" {
		opts.Entity = p.WandbEntity
	}
	if p.WandbProject != "" {
		opts.Project = p.WandbProject
	}
	if p.WandbRunGroup != "" {
		opts.Group = p.WandbRunGroup
	}
	if opts.Name == "" {
		opts.Name = r.Training.RunName
	}
	config, err := runConfig(r, m)
	if err != nil {
		return nil, err
	}
	opts.Config = config
	opts.Files = map[string]string{filepath.Base(r.Path): r.Path}
	run, err := wandb.Create(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: report_to wandb: %w", r.Path, err)
	}
	log.Info("W&B run written offline", "dir", run.Dir)
	return run, nil
}

// runConfig is the config transformers gives W&B: the model's config.json keys, then every
// training argument (here: every recipe key) over them, and model/num_parameters.
func runConfig(r *Recipe, m *model.Model) (map[string]any, error) {
	config := map[string]any{}
	raw, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &config); err != nil {
		return nil, err
	}
	rv := reflect.ValueOf(r).Elem()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for name := range keys {
			if !yield(name) {
				return
			}
		}
	}) {
		f, err := rv.FieldByIndexErr(keys[name].index)
		if err != nil { // behind a nil pointer: the key is unset
			continue
		}
		if name == "hub_token" {
			continue // never recorded: a secret
		}
		config[name] = f.Interface()
	}
	for k, v := range r.Ignored {
		config[k] = v
	}
	n := 0
	for _, t := range m.Weights {
		n += t.Shape().Size()
	}
	config["model/num_parameters"] = n
	return config, nil
}

// Publishing is what a run of a recipe publishes besides its output directory: the Hub push
// (push_to_hub, hub_strategy, …) and the W&B offline run (report_to wandb).
type Publishing struct {
	push *trainerPush
	run  *wandb.Run
	// repo is the repository pushed to ("" without push_to_hub).
	repo      string
	recipe    *Recipe
	outputDir string
}

// StartPublishing prepares the Hub repository (push_to_hub) and the W&B run (report_to wandb) of
// a run of m writing outputDir; tokenizerDir's files go with each push. Pass Sinks to the
// trainer, then call Finish after training (or Abort when it failed).
func (r *Recipe) StartPublishing(ctx context.Context, m *model.Model, outputDir, tokenizerDir string, log *slog.Logger) (*Publishing, error) {
	log = orDiscard(log)
	pub := &Publishing{recipe: r, outputDir: outputDir}
	var err error
	if pub.push, err = newTrainerPush(ctx, r, outputDir, tokenizerDir, log); err != nil {
		return nil, err
	}
	if pub.push != nil {
		pub.repo = pub.push.repo
	}
	if slices.Contains(r.Training.ReportTo, "wandb") {
		if pub.run, err = wandbRun(r, m, log); err != nil {
			return nil, err
		}
	}
	return pub, nil
}

// Sinks are the trainer sinks publishing adds (a train.SaveObserver pushing checkpoints, the W&B
// run).
func (p *Publishing) Sinks() []train.Sink {
	var out []train.Sink
	if p.push != nil {
		out = append(out, p.push)
	}
	if p.run != nil {
		out = append(out, p.run)
	}
	return out
}

// Abort closes the W&B run as failed and waits for background pushes after a failed training.
func (p *Publishing) Abort() {
	if p.run != nil {
		p.run.Finish(1)
	}
	if p.push != nil {
		p.push.wg.Wait()
	}
}

// Finish logs the end-of-training metrics to W&B and closes the run, writes the model card of the
// finished training res (adapter: the output is a PEFT adapter) and pushes the output directory.
func (p *Publishing) Finish(ctx context.Context, adapter bool, res train.Result) error {
	if p.run != nil {
		final := map[string]float64{}
		if data, err := os.ReadFile(filepath.Join(p.outputDir, "train_results.json")); err == nil {
			json.Unmarshal(data, &final)
		}
		if err := errors.Join(p.run.Log(res.GlobalStep, final), p.run.Finish(0)); err != nil {
			return fmt.Errorf("report_to wandb: %w", err)
		}
	}
	if err := writeModelCard(p.recipe, p.outputDir, p.repo, adapter, res); err != nil {
		return err
	}
	if p.push != nil {
		if _, err := p.push.finish(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ModelDir returns a local directory holding a model, adapter or tokenizer: nameOrPath when it is
// a local directory, else the snapshot of that Hub model repository at revision ("" is main),
// downloaded into the Hugging Face cache when missing (HF_HOME, HF_ENDPOINT, HF_TOKEN and
// HF_HUB_OFFLINE apply), as recipes resolve model_name_or_path.
func ModelDir(ctx context.Context, nameOrPath, revision string) (string, error) {
	return modelDir(ctx, nameOrPath, revision)
}
