package zero

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// accelerateConfig is the part of an accelerate config file (`accelerate config`'s YAML) that
// bears on placement.
type accelerateConfig struct {
	DistributedType string         `yaml:"distributed_type"`
	NumProcesses    *int           `yaml:"num_processes"`
	NumMachines     int            `yaml:"num_machines"`
	UseCPU          bool           `yaml:"use_cpu"`
	DeepSpeed       map[string]any `yaml:"deepspeed_config"`
	FSDP            map[string]any `yaml:"fsdp_config"`
}

// FromAccelerateConfig maps an accelerate config file (the handbook's recipes/accelerate_configs:
// ddp.yaml, multi_gpu.yaml, zero3.yaml, deepspeed_zero3.yaml, fsdp.yaml, fsdp_qlora.yaml) onto a
// Strategy:
//
//   - distributed_type NO / MULTI_GPU / MULTI_CPU → stage 0 (data parallel);
//   - DEEPSPEED → deepspeed_config.zero_stage (or zero_optimization.stage of a
//     deepspeed_config_file JSON);
//   - FSDP → fsdp_sharding_strategy FULL_SHARD → 3, SHARD_GRAD_OP → 2, NO_SHARD → 0, and the
//     hybrid HYBRID_SHARD → 3 and _HYBRID_SHARD_ZERO2 → 2 with Hybrid set (partitioned within a
//     node, replicated across nodes); FSDP2's fsdp_reshard_after_forward true → 3, false → 2;
//   - num_processes (accelerate's total over machines) → Devices, num_machines → Nodes.
//
// Settings that cannot be honoured are errors when ignoring them would change what fits in memory
// (CPU/NVMe offload of parameters or optimizer state) and warnings otherwise (hybrid sharding on
// one machine, use_cpu).
func FromAccelerateConfig(path string) (Strategy, []string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Strategy{}, nil, fmt.Errorf("zero: accelerate config: %w", err)
	}
	var cfg accelerateConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return Strategy{}, nil, fmt.Errorf("zero: accelerate config %s: %w", path, err)
	}
	var warnings []string
	s := Strategy{Devices: 1}
	if cfg.NumProcesses != nil {
		s.Devices = *cfg.NumProcesses
	}
	if cfg.NumMachines > 1 {
		s.Nodes = cfg.NumMachines
	}
	if cfg.UseCPU {
		warnings = append(warnings, "use_cpu: true is ignored: the backend (GOMLX_BACKEND) decides where the run goes")
	}
	kind := strings.ToUpper(strings.TrimSpace(cfg.DistributedType))
	switch kind {
	case "", "NO", "MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU", "MULTI_MLU":
		s.Stage = Stage0
	case "DEEPSPEED":
		stage, w, err := deepSpeedStage(path, cfg.DeepSpeed)
		if err != nil {
			return Strategy{}, nil, fmt.Errorf("zero: accelerate config %s: %w", path, err)
		}
		s.Stage, warnings = stage, append(warnings, w...)
	case "FSDP":
		stage, hybrid, err := fsdpStage(cfg.FSDP)
		if err != nil {
			return Strategy{}, nil, fmt.Errorf("zero: accelerate config %s: %w", path, err)
		}
		s.Stage, s.Hybrid = stage, hybrid
		if hybrid && s.Nodes <= 1 {
			warnings = append(warnings, fmt.Sprintf("fsdp_sharding_strategy %v shards within a node and replicates across nodes; on one machine it is stage %d over every device",
				cfg.FSDP["fsdp_sharding_strategy"], stage))
		}
	default:
		return Strategy{}, nil, fmt.Errorf("zero: accelerate config %s: distributed_type %q is not supported (NO, MULTI_GPU, DEEPSPEED or FSDP)", path, cfg.DistributedType)
	}
	if err := s.Validate(); err != nil {
		return Strategy{}, nil, fmt.Errorf("zero: accelerate config %s: num_processes: %w", path, err)
	}
	return s, warnings, nil
}

// offloadError explains why an offload setting is refused.
func offloadError(key string, value any) error {
	return fmt.Errorf("%s: %v asks to offload to host memory or disk, which this runtime cannot do "+
		"(every tensor stays on its device); set it to none/false, or use a higher ZeRO stage, more devices, "+
		"LoRA/QLoRA or gradient checkpointing to fit (see `handbook estimate`)", key, value)
}

func deepSpeedStage(path string, ds map[string]any) (Stage, []string, error) {
	if file, ok := ds["deepspeed_config_file"].(string); ok && file != "" && strings.ToLower(file) != "none" {
		return deepSpeedJSON(filepath.Join(filepath.Dir(path), file))
	}
	for _, key := range []string{"offload_optimizer_device", "offload_param_device"} {
		if v, ok := ds[key]; ok && !isNone(v) {
			return 0, nil, offloadError("deepspeed_config."+key, v)
		}
	}
	v, ok := ds["zero_stage"]
	if !ok {
		return 0, nil, fmt.Errorf("deepspeed_config has no zero_stage")
	}
	stage, err := toStage(v)
	if err != nil {
		return 0, nil, fmt.Errorf("deepspeed_config.zero_stage: %w", err)
	}
	return stage, nil, nil
}

// deepSpeedJSON reads a DeepSpeed config file: zero_optimization.stage and its offload sections.
func deepSpeedJSON(file string) (Stage, []string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0, nil, fmt.Errorf("deepspeed_config_file: %w", err)
	}
	var cfg struct {
		Zero struct {
			Stage           any            `json:"stage"`
			OffloadOptim    map[string]any `json:"offload_optimizer"`
			OffloadParam    map[string]any `json:"offload_param"`
			CPUOffloadLegac *bool          `json:"cpu_offload"`
		} `json:"zero_optimization"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&cfg); err != nil {
		return 0, nil, fmt.Errorf("deepspeed_config_file %s: %w", file, err)
	}
	for key, sec := range map[string]map[string]any{"offload_optimizer": cfg.Zero.OffloadOptim, "offload_param": cfg.Zero.OffloadParam} {
		if d, ok := sec["device"]; ok && !isNone(d) {
			return 0, nil, offloadError("zero_optimization."+key+".device", d)
		}
	}
	if cfg.Zero.CPUOffloadLegac != nil && *cfg.Zero.CPUOffloadLegac {
		return 0, nil, offloadError("zero_optimization.cpu_offload", true)
	}
	if cfg.Zero.Stage == nil {
		return Stage0, nil, nil // DeepSpeed's default stage
	}
	stage, err := toStage(cfg.Zero.Stage)
	if err != nil {
		return 0, nil, fmt.Errorf("deepspeed_config_file %s: zero_optimization.stage: %w", file, err)
	}
	return stage, nil, nil
}

// fsdpStage maps fsdp_config onto a stage, and whether it is one of the hybrid strategies.
func fsdpStage(f map[string]any) (Stage, bool, error) {
	if v, ok := f["fsdp_offload_params"]; ok && isTrue(v) {
		return 0, false, offloadError("fsdp_config.fsdp_offload_params", v)
	}
	if v, ok := f["fsdp_reshard_after_forward"]; ok { // FSDP2 spells the strategy as a boolean
		if isTrue(v) {
			return Stage3, false, nil
		}
		return Stage2, false, nil
	}
	v, ok := f["fsdp_sharding_strategy"]
	if !ok {
		return Stage3, false, nil // accelerate's default is FULL_SHARD
	}
	// accelerate accepts the names and torch's enum numbers (1 = FULL_SHARD …).
	switch strings.ToUpper(strings.TrimSpace(fmt.Sprint(v))) {
	case "FULL_SHARD", "1":
		return Stage3, false, nil
	case "SHARD_GRAD_OP", "2":
		return Stage2, false, nil
	case "NO_SHARD", "3":
		return Stage0, false, nil
	case "HYBRID_SHARD", "4":
		return Stage3, true, nil
	case "_HYBRID_SHARD_ZERO2", "5":
		return Stage2, true, nil
	}
	return 0, false, fmt.Errorf("fsdp_config.fsdp_sharding_strategy %q is not one of FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD, _HYBRID_SHARD_ZERO2", fmt.Sprint(v))
}

func isNone(v any) bool {
	if v == nil {
		return true
	}
	s := strings.ToLower(strings.TrimSpace(fmt.Sprint(v)))
	return s == "" || s == "none" || s == "false"
}

func isTrue(v any) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(fmt.Sprint(v)))
	return err == nil && b
}

func toStage(v any) (Stage, error) {
	n, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(v)))
	if err != nil {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	if n < 0 || n > 3 {
		return 0, fmt.Errorf("stage %d is not a ZeRO stage (0, 1, 2 or 3)", n)
	}
	return Stage(n), nil
}
