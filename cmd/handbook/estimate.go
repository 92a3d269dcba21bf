package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"handbook/model"
	"handbook/zero"
)

// runEstimate prints the per-device memory of training a model under a ZeRO stage.
func runEstimate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("estimate", stderr)
	dir := fs.String("model", "", "model directory or its config.json")
	stage := fs.Int("zero_stage", 0, "ZeRO stage: 0 (data parallel), 1, 2 or 3")
	devices := fs.Int("num_devices", 1, "data-parallel devices (GPUs)")
	lora := fs.Bool("lora", false, "train a LoRA adapter only (base frozen in bf16)")
	qlora := fs.Bool("qlora", false, "like --lora with the base's linear weights in 4-bit NF4 (QLoRA)")
	rank := fs.Int("lora_r", 16, "LoRA rank")
	targets := fs.String("lora_target_modules", "all-linear", "comma-separated LoRA target modules (q_proj,v_proj,…) or all-linear")
	seq := fs.Int("seq", 0, "sequence length for the activation estimate (0: skip activations)")
	batch := fs.Int("batch", 1, "rows per device per micro-batch for the activation estimate")
	checkpointing := fs.Bool("gradient_checkpointing", false, "keep only each layer's input between forward and backward")
	asJSON := fs.Bool("json", false, `print {"parameters_bytes":…,"gradients_bytes":…,"optimizer_bytes":…,"activations_bytes":…,"model_state_bytes_per_device":…} as the last line`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--model is required (a model directory or a config.json)")
	}
	if err := checkNumbers(numberCheck{"zero_stage", float64(*stage), *stage >= 0 && *stage <= 3, "0, 1, 2 or 3"},
		atLeast("num_devices", *devices, 1), atLeast("lora_r", *rank, 1), atLeast("seq", *seq, 0), atLeast("batch", *batch, 1)); err != nil {
		return err
	}
	cfg, err := model.LoadConfig(*dir)
	if err != nil {
		return err
	}
	opts := zero.EstimateOptions{Stage: zero.Stage(*stage), Devices: *devices, Seq: *seq, Batch: *batch, GradientCheckpointing: *checkpointing}
	if *lora || *qlora {
		var mods []string
		for _, m := range strings.Split(*targets, ",") {
			if m = strings.TrimSpace(m); m != "" {
				mods = append(mods, m)
			}
		}
		opts.LoRA = &zero.LoRA{Rank: *rank, TargetModules: mods, Quantized4Bit: *qlora}
	}
	mem, counts, err := zero.Estimate(cfg, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "model %s: %s parameters, %s trainable; ZeRO stage %d over %d device(s)\n",
		*dir, count(counts.Total), count(counts.Trainable), *stage, *devices)
	fmt.Fprintln(stdout, "assumes mixed-precision Adam: bf16 parameters and gradients, fp32 master weights and moments (ZeRO paper)")
	rows := []struct {
		name  string
		bytes int64
	}{{"parameters", mem.Parameters}, {"gradients", mem.Gradients}, {"optimizer state", mem.Optimizer},
		{"model states", mem.ModelStates()}, {"activations", mem.Activations}, {"total", mem.Total()}}
	for _, r := range rows {
		fmt.Fprintf(stdout, "  %-16s %10.2f GiB per device\n", r.name, float64(r.bytes)/(1<<30))
	}
	if *asJSON {
		// A struct keeps the documented key order.
		return printJSON(stdout, struct {
			Parameters  int64 `json:"parameters_bytes"`
			Gradients   int64 `json:"gradients_bytes"`
			Optimizer   int64 `json:"optimizer_bytes"`
			Activations int64 `json:"activations_bytes"`
			ModelStates int64 `json:"model_state_bytes_per_device"`
		}{mem.Parameters, mem.Gradients, mem.Optimizer, mem.Activations, mem.ModelStates()})
	}
	return nil
}

// count renders a parameter count as 7.24B / 41.9M.
func count(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprint(n)
}
