package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"handbook/model"
)

// AllLinear is the target_modules value that selects every linear layer except the output head,
// as PEFT's "all-linear" does.
const AllLinear = "all-linear"

// Init names how adapter weights start (PEFT's init_lora_weights).
type Init string

// Initializations. Both start B at zero, so a fresh adapter leaves the model unchanged.
const (
	// InitDefault draws A from kaiming-uniform(a=√5), i.e. uniform(±1/√in), as torch.nn.Linear
	// and PEFT's init_lora_weights=True do.
	InitDefault Init = ""
	// InitGaussian draws A from normal(0, 1/r) (PEFT's "gaussian").
	InitGaussian Init = "gaussian"
)

// Config describes a LoRA adapter, named after PEFT's LoraConfig. R and Alpha must be set: PEFT
// (8 and 8) and TRL's recipe keys (16 and 32) disagree on their defaults, and an Alpha left 0
// would scale the update to nothing. The other zero fields are PEFT's defaults.
type Config struct {
	// R is the rank of the update B·A (r); it must be positive.
	R int
	// Alpha scales the update: α/r, or α/√r with UseRSLoRA (lora_alpha); it must be positive.
	Alpha float64
	// Dropout is the dropout probability on the adapter's input in training graphs (lora_dropout;
	// 0: none, PEFT's default).
	Dropout float64
	// TargetModules selects linear layers by module-path suffix ("q_proj" matches
	// "model.layers.0.self_attn.q_proj"), or is the single value AllLinear. Empty (with no
	// TargetRegex or TargetParameters) means PEFT's default for the model type: q_proj and v_proj
	// for the families that have one.
	TargetModules []string
	// TargetRegex, when set, selects modules whose full path matches it entirely (PEFT's
	// target_modules given as a string). It excludes TargetModules.
	TargetRegex string
	// TargetParameters are PEFT's target_parameters: weights the decoder uses whole (the MoE
	// router "gate.weight" and stacked experts "gate_up_proj", "down_proj"; see
	// model.ParamTarget), adapted as W + s·ΔW. A name matches a parameter key
	// ("model.layers.0.mlp.experts.gate_up_proj") or its suffix after a dot. On a
	// mixture-of-experts model, "all-linear" and the transformers 4 names w1/w3/w2/gate select them
	// as PEFT does.
	TargetParameters []string
	// RankPattern and AlphaPattern override R and Alpha for the targets whose PEFT key (module path,
	// or parameter key) ends with a match of the pattern (PEFT's rank_pattern/alpha_pattern).
	RankPattern, AlphaPattern map[string]float64
	// UseRSLoRA scales by α/√r (rank-stabilized LoRA) instead of α/r.
	UseRSLoRA bool
	// ModulesToSave are modules (by suffix, e.g. "lm_head") trained in full next to the adapter
	// and saved with it.
	ModulesToSave []string
	// Init selects the initialization of A (B always starts at zero).
	Init Init
	// Bias must be "none" (or empty): bias training is not supported.
	Bias string
	// BaseModel is recorded as base_model_name_or_path.
	BaseModel string
}

// Scale is the factor s of y = Wx + s·B·A·x.
func (c Config) Scale() float64 {
	if c.UseRSLoRA {
		return c.Alpha / math.Sqrt(float64(c.R))
	}
	return c.Alpha / float64(c.R)
}

// Validate checks the configuration on its own (targets are checked against a model by Attach).
func (c Config) Validate() error {
	if c.R <= 0 {
		return fmt.Errorf("lora: r must be positive, got %d (Config.R; PEFT's default is 8, TRL's lora_r 16)", c.R)
	}
	if !(c.Alpha > 0) || math.IsInf(c.Alpha, 0) {
		return fmt.Errorf("lora: lora_alpha must be positive, got %g (Config.Alpha): the update is scaled by lora_alpha/r, so 0 trains nothing; PEFT's default is 8, TRL's lora_alpha 32", c.Alpha)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return fmt.Errorf("lora: lora_dropout must be in [0, 1), got %g", c.Dropout)
	}
	if c.Bias != "" && c.Bias != "none" {
		return fmt.Errorf("lora: bias %q is not supported (only \"none\")", c.Bias)
	}
	if c.Init != InitDefault && c.Init != InitGaussian {
		return fmt.Errorf("lora: init %q is not supported (default or %q)", c.Init, InitGaussian)
	}
	if c.TargetRegex != "" && len(c.TargetModules) > 0 {
		return fmt.Errorf("lora: give target_modules as a list or as a regex, not both")
	}
	if c.TargetRegex != "" {
		if _, err := regexp.Compile(c.TargetRegex); err != nil {
			return fmt.Errorf("lora: target_modules regex: %w", err)
		}
	}
	for _, t := range c.TargetModules {
		if t == AllLinear && len(c.TargetModules) > 1 {
			return fmt.Errorf("lora: %q cannot be combined with other target_modules", AllLinear)
		}
	}
	return nil
}

// LinearModules lists the model's linear modules (every weight that goes through model.Linear),
// sorted: "lm_head" (unless the head is tied) and each layer's projections. An MoE block's router
// and experts are used whole, not through Linear (see Config.TargetParameters).
func LinearModules(cfg *model.Config) []string {
	var mods []string
	for _, s := range cfg.ParamSpecs() {
		if s.Linear {
			mods = append(mods, strings.TrimSuffix(s.Name, ".weight"))
		}
	}
	sort.Strings(mods)
	return mods
}

// matchesSuffix reports PEFT's list rule: the module is the key or ends with "."+key.
func matchesSuffix(module, key string) bool {
	return module == key || strings.HasSuffix(module, "."+key)
}

// Targets returns the model's linear modules the config selects, sorted. Matching nothing is an
// error that lists the model's linear modules.
func (c Config) Targets(cfg *model.Config) ([]string, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	linear := LinearModules(cfg)
	var out []string
	var re *regexp.Regexp
	if c.TargetRegex != "" {
		re = regexp.MustCompile("^(?:" + c.TargetRegex + ")$")
	} else if len(c.TargetModules) == 0 && len(c.TargetParameters) == 0 {
		defaults, err := defaultTargetModules(string(cfg.ModelType))
		if err != nil {
			return nil, err
		}
		c.TargetModules = defaults
	}
	for _, m := range linear {
		switch {
		case re != nil:
			if re.MatchString(m) {
				out = append(out, m)
			}
		case len(c.TargetModules) == 1 && c.TargetModules[0] == AllLinear:
			if m != "lm_head" {
				out = append(out, m)
			}
		default:
			for _, k := range c.TargetModules {
				if matchesSuffix(m, k) {
					out = append(out, m)
					break
				}
			}
		}
	}
	if len(out) == 0 {
		what := strings.Join(c.TargetModules, ", ")
		if re != nil {
			what = "regex " + c.TargetRegex
		}
		return nil, fmt.Errorf("lora: target_modules (%s) match no linear module of this %s model; its linear modules are: %s",
			what, cfg.ModelType, strings.Join(linear, ", "))
	}
	return out, nil
}

// savedModules returns the weights ModulesToSave selects (module suffix match on weight names).
func (c Config) savedModules(weightNames []string) ([]string, error) {
	var out []string
	for _, key := range c.ModulesToSave {
		found := false
		for _, n := range weightNames {
			if isAdapterWeight(n) {
				continue
			}
			mod := n[:strings.LastIndex(n, ".")]
			if matchesSuffix(mod, key) {
				out = append(out, n)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("lora: modules_to_save %q matches no module of the model", key)
		}
	}
	sort.Strings(out)
	return out, nil
}

// peftConfig is adapter_config.json as PEFT writes it (the keys handbook reads and writes).
type peftConfig struct {
	PeftType          string             `json:"peft_type"`
	TaskType          string             `json:"task_type"`
	BaseModel         string             `json:"base_model_name_or_path"`
	R                 int                `json:"r"`
	LoraAlpha         float64            `json:"lora_alpha"`
	LoraDropout       float64            `json:"lora_dropout"`
	TargetModules     json.RawMessage    `json:"target_modules"`
	UseRSLoRA         bool               `json:"use_rslora"`
	ModulesToSave     []string           `json:"modules_to_save"`
	Bias              string             `json:"bias"`
	FanInFanOut       bool               `json:"fan_in_fan_out"`
	InitLoraWeights   json.RawMessage    `json:"init_lora_weights"`
	InferenceMode     bool               `json:"inference_mode"`
	UseDoRA           bool               `json:"use_dora"`
	TargetParameters  []string           `json:"target_parameters"`
	RankPattern       map[string]float64 `json:"rank_pattern"`
	AlphaPattern      map[string]float64 `json:"alpha_pattern"`
	LayersToTransform json.RawMessage    `json:"layers_to_transform"`
	LoraBias          bool               `json:"lora_bias"`
}

// ConfigFile and WeightsFile are the names PEFT uses in an adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// ReadConfig reads a PEFT adapter_config.json from dir. Features handbook does not implement
// (DoRA, fan_in_fan_out, layer selection, LoRA biases) are errors, not silently ignored.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("lora: %w", err)
	}
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return Config{}, fmt.Errorf("lora: %s: %w", path, err)
	}
	if pc.PeftType != "" && pc.PeftType != "LORA" {
		return Config{}, fmt.Errorf("lora: %s: peft_type %q is not LORA", path, pc.PeftType)
	}
	unsupported := map[string]bool{
		"use_dora": pc.UseDoRA, "fan_in_fan_out": pc.FanInFanOut, "lora_bias": pc.LoraBias,
		"layers_to_transform": len(pc.LayersToTransform) > 0 && string(pc.LayersToTransform) != "null",
	}
	for _, k := range []string{"use_dora", "fan_in_fan_out", "lora_bias", "layers_to_transform"} {
		if unsupported[k] {
			return Config{}, fmt.Errorf("lora: %s: %s is not supported", path, k)
		}
	}
	c := Config{R: pc.R, Alpha: pc.LoraAlpha, Dropout: pc.LoraDropout, UseRSLoRA: pc.UseRSLoRA,
		ModulesToSave: pc.ModulesToSave, Bias: pc.Bias, BaseModel: pc.BaseModel, TargetParameters: pc.TargetParameters}
	if len(pc.RankPattern) > 0 {
		c.RankPattern = pc.RankPattern
	}
	if len(pc.AlphaPattern) > 0 {
		c.AlphaPattern = pc.AlphaPattern
	}
	var s string
	if string(pc.TargetModules) == "null" || len(pc.TargetModules) == 0 {
		// target_parameters only
	} else if err := json.Unmarshal(pc.TargetModules, &s); err == nil {
		if s == AllLinear {
			c.TargetModules = []string{AllLinear}
		} else {
			c.TargetRegex = s
		}
	} else if err := json.Unmarshal(pc.TargetModules, &c.TargetModules); err != nil {
		return Config{}, fmt.Errorf("lora: %s: target_modules is neither a string nor a list: %w", path, err)
	}
	if string(pc.InitLoraWeights) == `"gaussian"` {
		c.Init = InitGaussian
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// marshalPEFT renders adapter_config.json for the resolved target modules.
func (c Config) marshalPEFT(targets []string) ([]byte, error) {
	init := json.RawMessage("true")
	if c.Init == InitGaussian {
		init = json.RawMessage(`"gaussian"`)
	}
	tm := json.RawMessage("null")
	var err error
	if len(targets) > 0 {
		if tm, err = json.Marshal(targets); err != nil {
			return nil, err
		}
	}
	if c.TargetRegex != "" {
		if tm, err = json.Marshal(c.TargetRegex); err != nil {
			return nil, err
		}
	}
	pc := peftConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModel: c.BaseModel, R: c.R, LoraAlpha: c.Alpha,
		LoraDropout: c.Dropout, TargetModules: tm, UseRSLoRA: c.UseRSLoRA, ModulesToSave: c.ModulesToSave,
		Bias: "none", InitLoraWeights: init, InferenceMode: true, RankPattern: map[string]float64{}, AlphaPattern: map[string]float64{},
		LayersToTransform: json.RawMessage("null"), TargetParameters: c.TargetParameters}
	for k, v := range c.RankPattern {
		pc.RankPattern[k] = v
	}
	for k, v := range c.AlphaPattern {
		pc.AlphaPattern[k] = v
	}
	return json.MarshalIndent(pc, "", "  ")
}
