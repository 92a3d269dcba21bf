package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"handbook/backend"
	"handbook/lora"
	"handbook/memory"
	"handbook/model"
	"handbook/zero"
)

// runEstimate prints the per-device memory of training a model under a ZeRO stage, and whether it
// fits a GPU of --gpu_memory; --xla also compiles the real step on the XLA CPU plugin and prints
// XLA's own accounting beside the estimate.
func runEstimate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("estimate", stderr)
	dir := fs.String("model", "", "model directory or its config.json")
	stage := fs.Int("zero_stage", 0, "ZeRO stage: 0 (data parallel), 1, 2 or 3")
	devices := fs.Int("num_devices", 1, "data-parallel devices (GPUs)")
	task := fs.String("task", "sft", "sft, or dpo (--batch counts pairs; a full fine-tune keeps a reference copy)")
	dtype := fs.String("dtype", "bfloat16", "dtype the weights are stored in: bfloat16 or float32 (the recipe's dtype)")
	bf16 := fs.Bool("bf16", true, "bf16 mixed precision (the recipe's bf16)")
	useLoRA := fs.Bool("lora", false, "train a LoRA adapter only (base frozen in --dtype)")
	qlora := fs.Bool("qlora", false, "like --lora with the base's linear weights in 4-bit NF4 (QLoRA)")
	rank := fs.Int("lora_r", 16, "LoRA rank")
	targets := fs.String("lora_target_modules", "all-linear", "comma-separated LoRA target modules (q_proj,v_proj,…) or all-linear")
	seq := fs.Int("seq", 0, "sequence length for the activation estimate (0: skip activations)")
	batch := fs.Int("batch", 1, "rows (dpo: pairs) per device per micro-batch for the activation estimate")
	checkpointing := fs.Bool("gradient_checkpointing", false, "keep only each layer's input between forward and backward")
	accumulation := fs.Int("gradient_accumulation_steps", 1, "micro-batches per optimizer step")
	gpuMemory := fs.String("gpu_memory", "", `memory of one GPU, e.g. 24GiB, 80GB: say whether the run fits`)
	xla := fs.Bool("xla", false, "also compile the real training step on the XLA CPU plugin (shapes only) and print XLA's accounting")
	xlaBackend := fs.String("xla_backend", "", `with --xla: compile on this backend instead (e.g. "xla:/path/xla_cuda_plugin.so" on a GPU machine)`)
	asJSON := fs.Bool("json", false, `print {"parameters_bytes":…,"gradients_bytes":…,"optimizer_bytes":…,"activations_bytes":…,"model_state_bytes_per_device":…,"reference_bytes":…,"total_bytes":…[,"gpu_memory_bytes":…,"fits":…][,"xla_peak_bytes":…]} as the last line`)
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
	c := memory.Config{Model: cfg, Task: memory.Task(*task), Autocast: *bf16, Stage: zero.Stage(*stage), Devices: *devices,
		Batch: *batch, Seq: *seq, GradientCheckpointing: *checkpointing, GradientAccumulation: *accumulation}
	if c.Weights, err = dtypeFlag(*dtype); err != nil {
		return err
	}
	if c.Task != memory.SFT && c.Task != memory.DPO {
		return fmt.Errorf("--task %q: sft or dpo", *task)
	}
	if *useLoRA || *qlora {
		var mods []string
		for _, m := range strings.Split(*targets, ",") {
			if m = strings.TrimSpace(m); m != "" {
				mods = append(mods, m)
			}
		}
		c.LoRA = &lora.Config{R: *rank, Alpha: float64(2 * *rank), TargetModules: mods}
		if *qlora {
			c.QLoRA = &lora.QuantizeOptions{DoubleQuant: true, ComputeDType: dtypes.BFloat16}
		}
	}
	var capacity int64
	if *gpuMemory != "" {
		if capacity, err = parseBytes(*gpuMemory); err != nil {
			return fmt.Errorf("--gpu_memory: %w", err)
		}
	}
	mem, counts, err := memory.Estimate(c)
	if err != nil {
		return err
	}
	var measured *memory.Measurement
	if *xla {
		if err := memory.UseGPUShapedXLAFlags(); err != nil {
			return err
		}
		var b compute.Backend
		if *xlaBackend != "" {
			b, err = backend.Open(*xlaBackend)
		} else {
			b, err = backend.NewXLACPU(max(*devices, 1))
		}
		if err != nil {
			return err
		}
		defer b.Finalize()
		m, err := memory.Measure(b, c)
		if err != nil {
			return err
		}
		measured = &m
	}

	fmt.Fprintf(stdout, "model %s: %s parameters, %s trainable; ZeRO stage %d over %d device(s)\n",
		*dir, count(counts.Total), count(counts.Trainable), *stage, *devices)
	fmt.Fprintf(stdout, "weights %s, bf16 mixed precision %v: the stored copy, float32 gradients, AdamW moments and (16-bit weights) float32 masters\n", *dtype, *bf16)
	rows := []struct {
		name       string
		bytes, xla int64
	}{{"parameters", mem.Parameters, -1}, {"gradients", mem.Gradients, -1}, {"optimizer state", mem.Optimizer, -1},
		{"model states", mem.ModelStates(), -1}, {"activations", mem.Activations, -1}, {"reference copy", mem.Reference, -1},
		{"total", mem.Total(), -1}}
	if measured != nil {
		s := measured.Step
		rows[0].xla, rows[1].xla, rows[2].xla = s.Weights, s.Gradients, s.Masters+s.OptimizerState
		rows[3].xla, rows[5].xla, rows[6].xla = s.ModelStates(), measured.ReferenceWeights, measured.Peak
		fmt.Fprintf(stdout, "  %-16s %10s %10s\n", "", "estimate", "XLA")
	}
	for _, r := range rows {
		line := fmt.Sprintf("  %-16s %10.2f GiB", r.name, gib(r.bytes))
		if r.xla >= 0 {
			line += fmt.Sprintf(" %10.2f GiB", gib(r.xla))
		}
		fmt.Fprintln(stdout, line+" per device")
	}
	if measured != nil {
		for _, g := range measured.Step.Graphs {
			fmt.Fprintf(stdout, "  XLA %-28s arguments %.2f GiB, outputs %.2f GiB, temporaries %.2f GiB: peak %.2f GiB\n",
				g.Name, gib(g.Arguments), gib(g.Outputs), gib(g.Temporary), gib(g.Peak))
		}
		if r := measured.Reference; r != nil {
			fmt.Fprintf(stdout, "  XLA %-28s arguments %.2f GiB, temporaries %.2f GiB: peak %.2f GiB with the policy's states\n",
				r.Name, gib(r.Arguments), gib(r.Temporary), gib(measured.ReferencePeak))
		}
	}
	// XLA's figure, when there is one, is the step this library compiles: it decides.
	need, source := mem.Total(), "estimated"
	if measured != nil {
		need, source = measured.Peak, "by XLA"
	}
	fits := capacity > 0 && need <= capacity
	if capacity > 0 {
		verdict := "fits"
		if !fits {
			verdict = "does not fit"
		}
		fmt.Fprintf(stdout, "%s in %.1f GiB: %.2f GiB %s (%+.2f GiB headroom; CUDA context and allocator fragmentation need ~1 GiB more)\n",
			verdict, gib(capacity), gib(need), source, gib(capacity-need))
	}
	if !*asJSON {
		return nil
	}
	out := map[string]any{"parameters_bytes": mem.Parameters, "gradients_bytes": mem.Gradients, "optimizer_bytes": mem.Optimizer,
		"activations_bytes": mem.Activations, "model_state_bytes_per_device": mem.ModelStates(), "reference_bytes": mem.Reference,
		"total_bytes": mem.Total()}
	if capacity > 0 {
		out["gpu_memory_bytes"], out["fits"] = capacity, fits
	}
	if measured != nil {
		out["xla_peak_bytes"] = measured.Peak
	}
	return printJSON(stdout, out)
}

func gib(b int64) float64 { return float64(b) / (1 << 30) }

// parseBytes reads a memory size: a number with an optional unit (B, KB, MB, GB, TB: powers of
// 1000; KiB, MiB, GiB, TiB: powers of 1024; K, M, G, T alone mean the binary units, as GPUs are
// sold by them).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a memory size (like 24GiB or 80GB)", s)
	}
	scale := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
	f, ok := scale[strings.ToUpper(unit)]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s, unit)
	}
	return int64(v * f), nil
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
