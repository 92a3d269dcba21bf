package lora

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"handbook/model"
)

// target is one weight an adapter adapts: a Linear module (y = Wx + s·B·A·x), or a weight the
// decoder uses whole (PEFT's target_parameters: W + s·ΔW, the MoE router and stacked experts).
type target struct {
	// name is the module path or model.ParamTarget.Name; the adapter's weights are
	// name+".lora_A.weight" and name+".lora_B.weight".
	name string
	// peft is PEFT's path of the module holding lora_A/lora_B in adapter_model.safetensors.
	peft string
	// param is set for whole-weight targets.
	param *model.ParamTarget
	// out and in are the matrix shape (each expert's, for stacked experts); experts is 0 for a
	// matrix. A is [r·max(experts,1), in], B [out, r·max(experts,1)] (PEFT's ParamWrapper).
	out, in, experts int
	r                int
	scale            float64
}

// rows is the adapter's inner dimension: r, or r per expert for stacked experts.
func (t *target) rows() int { return t.r * max(t.experts, 1) }

// moeTargetNames are the transformers 4 module names of Mixtral's router and experts that PEFT
// (transformers_weight_conversion._MOE_TARGET_MODULE_MAPPING) maps onto transformers 5's
// parameters; w1 and w3 are fused into gate_up_proj, with twice the rank and alpha.
var moeTargetNames = map[string]string{"gate": "weight", "w1": "gate_up_proj", "w3": "gate_up_proj", "w2": "down_proj"}

// forModel is the configuration PEFT runs on cfg's model: for a mixture-of-experts model,
// "all-linear" or a list of module names becomes the attention modules plus target_parameters
// for the router and experts (transformers 5 holds them as parameters, not nn.Linear), with
// rank_pattern/alpha_pattern doubling r and alpha for the fused gate_up_proj — PEFT's
// _convert_peft_config_moe. Other models and regex targets are returned unchanged.
func (c Config) forModel(cfg *model.Config) (Config, error) {
	if !cfg.IsMoE() || c.TargetRegex != "" {
		return c, nil
	}
	names := c.TargetModules
	if len(names) == 1 && names[0] == AllLinear {
		seen := map[string]bool{}
		names = nil
		for _, m := range LinearModules(cfg) {
			leaf := m[strings.LastIndex(m, ".")+1:]
			if m != "lm_head" && !seen[leaf] {
				seen[leaf] = true
				names = append(names, leaf)
			}
		}
		for old := range moeTargetNames {
			names = append(names, old)
		}
		sort.Strings(names)
	}
	var modules []string
	params := map[string]bool{}
	for _, p := range c.TargetParameters {
		params[p] = true
	}
	fused := map[string]bool{}
	for _, n := range names {
		mapped := ""
		for old, param := range moeTargetNames {
			if n == old || strings.HasSuffix(n, "."+old) {
				mapped = param
				if param == "gate_up_proj" {
					fused[old] = true
				}
			}
		}
		switch mapped {
		case "":
			modules = append(modules, n)
		case "weight":
			params["gate.weight"] = true
		default:
			params[mapped] = true
		}
	}
	if fused["w1"] != fused["w3"] {
		have, miss := "w1", "w3"
		if fused["w3"] {
			have, miss = miss, have
		}
		return Config{}, fmt.Errorf("lora: target %s without %s: they are fused into the experts' gate_up_proj (PEFT cannot adapt one of them alone)", have, miss)
	}
	out := c
	out.TargetModules = modules
	out.TargetParameters = slices.Sorted(maps.Keys(params))
	if fused["w1"] {
		out.RankPattern = withPattern(c.RankPattern, `.*\.gate_up_proj`, float64(2*c.R))
		out.AlphaPattern = withPattern(c.AlphaPattern, `.*\.gate_up_proj`, 2*c.Alpha)
	}
	return out, nil
}

func withPattern(m map[string]float64, key string, v float64) map[string]float64 {
	out := map[string]float64{key: v}
	for k, x := range m {
		out[k] = x
	}
	return out
}

// patternValue returns the value of the first pattern (in sorted order) that PEFT's
// get_pattern_key would match against key: the key ends with a match of the pattern, after a dot
// or from its start.
func patternValue(patterns map[string]float64, key string) (float64, bool, error) {
	for _, p := range slices.Sorted(maps.Keys(patterns)) {
		re, err := regexp.Compile(`^(.*\.)?(` + p + `)$`)
		if err != nil {
			return 0, false, fmt.Errorf("lora: pattern %q: %w", p, err)
		}
		if re.MatchString(key) {
			return patterns[p], true, nil
		}
	}
	return 0, false, nil
}

// resolve lists the weights c adapts on cfg's model (modules first, then whole weights, each
// sorted by name) with their rank and scale. c must already be forModel's.
func (c Config) resolve(cfg *model.Config) ([]*target, error) {
	modules, err := c.Targets(cfg)
	if err != nil && len(c.TargetParameters) == 0 {
		return nil, err
	}
	var out []*target
	specs := map[string][]int{}
	for _, s := range cfg.ParamSpecs() {
		specs[s.Name] = s.Dims
	}
	for _, m := range modules {
		d := specs[m+".weight"]
		t := &target{name: m, peft: m, out: d[0], in: d[1]}
		if err := c.rankAndScale(t, m); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	params, err := c.paramTargets(cfg)
	if err != nil {
		return nil, err
	}
	return append(out, params...), nil
}

// paramTargets resolves TargetParameters against the model's whole-used weights. PEFT wraps a
// module once per targeted parameter, in the module's parameter order, the first innermost:
// its lora_A/lora_B then sit under one ".base_layer" per wrapper outside it.
func (c Config) paramTargets(cfg *model.Config) ([]*target, error) {
	if len(c.TargetParameters) == 0 {
		return nil, nil
	}
	if c.Dropout != 0 {
		return nil, fmt.Errorf("lora: lora_dropout %g: PEFT adapts the MoE router and experts (target_parameters) only without dropout; set lora_dropout: 0", c.Dropout)
	}
	all := cfg.ParamTargets()
	var selected []*target
	byModule := map[string][]*target{}
	for i := range all {
		pt := &all[i]
		key := pt.Module + "." + pt.Param
		match := false
		for _, want := range c.TargetParameters {
			if key == want || strings.HasSuffix(key, "."+want) {
				match = true
			}
		}
		if !match {
			continue
		}
		t := &target{name: pt.Name, param: pt, out: pt.Out, in: pt.In, experts: pt.Experts}
		if err := c.rankAndScale(t, key); err != nil {
			return nil, err
		}
		selected = append(selected, t)
		byModule[pt.Module] = append(byModule[pt.Module], t)
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("lora: target_parameters %v match no parameter of this %s model", c.TargetParameters, cfg.ModelType)
	}
	for module, ts := range byModule {
		for i, t := range ts {
			t.peft = module + strings.Repeat(".base_layer", len(ts)-1-i)
		}
	}
	sort.Slice(selected, func(i, j int) bool { return selected[i].name < selected[j].name })
	return selected, nil
}

// rankAndScale applies rank_pattern and alpha_pattern (matched against PEFT's key) to t.
func (c Config) rankAndScale(t *target, key string) error {
	r, alpha := float64(c.R), c.Alpha
	if v, ok, err := patternValue(c.RankPattern, key); err != nil {
		return err
	} else if ok {
		r = v
	}
	if v, ok, err := patternValue(c.AlphaPattern, key); err != nil {
		return err
	} else if ok {
		alpha = v
	}
	if r <= 0 || r != math.Trunc(r) {
		return fmt.Errorf("lora: rank %g for %s must be a positive integer", r, key)
	}
	t.r = int(r)
	c.R, c.Alpha = t.r, alpha // c is a copy: Scale with this target's rank and alpha
	t.scale = c.Scale()
	return nil
}
