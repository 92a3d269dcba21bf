package wandb

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Producer is the header's producer version, where wandb writes its own version.
const Producer = "handbook-go"

// Options name and describe a run, as wandb.init's arguments do.
type Options struct {
	// Dir is WANDB_DIR: the run goes under Dir/wandb ("." when empty).
	Dir string
	// Project, Entity, Group, JobType, Name (the display name), Notes and Tags are wandb.init's.
	Project, Entity, Group, JobType, Name, Notes string
	Tags                                         []string
	// ID is the run id (8 random characters from [a-z0-9] when empty, as wandb generates).
	ID string
	// Config is the run's config: keys and values marshalled to JSON.
	Config map[string]any
	// Start is the run's start time (now when zero).
	Start time.Time
	// Files are local files copied into the run's files/ folder and uploaded by `wandb sync`,
	// by their name in the run.
	Files map[string]string
}

// Run is an offline W&B run being written. Its Log method is a train.Sink mapping the
// trainer's metrics the way transformers' WandbCallback does.
type Run struct {
	// Dir is the run directory, .../wandb/offline-run-<time>-<id>.
	Dir string
	// ID is the run id.
	ID string

	f     *os.File
	log   *logWriter
	num   uint64
	start time.Time
	step  int64 // the next history row's _step
	files []string
	now   func() time.Time
}

// Create writes the run directory and the run's first records: header, run (with the config
// wandb puts there), config, the metric definitions transformers makes (train/global_step as
// every metric's x axis) and the files record.
func Create(opts Options) (*Run, error) {
	if opts.Dir == "" {
		opts.Dir = "."
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.ID == "" {
		opts.ID = newID()
	}
	dir := filepath.Join(opts.Dir, "wandb", "offline-run-"+opts.Start.Format("20060102_150405")+"-"+opts.ID)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		return nil, fmt.Errorf("wandb: %w", err)
	}
	r := &Run{Dir: dir, ID: opts.ID, start: opts.Start, now: time.Now}
	for _, name := range slices.Sorted(maps.Keys(opts.Files)) {
		data, err := os.ReadFile(opts.Files[name]) // run files are small: a recipe, a log
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "files", name), data, 0o644)
		}
		if err != nil {
			return nil, fmt.Errorf("wandb: run file %s: %w", name, err)
		}
		r.files = append(r.files, name)
	}
	f, err := os.OpenFile(filepath.Join(dir, "run-"+opts.ID+".wandb"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wandb: %w", err)
	}
	r.f = f
	if r.log, err = newLogWriter(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("wandb: %w", err)
	}
	config, err := configItems(opts.Config)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := r.writeHeaderAndRun(opts, config); err != nil {
		f.Close()
		return nil, fmt.Errorf("wandb: %w", err)
	}
	return r, nil
}

func (r *Run) writeHeaderAndRun(opts Options, config []item) error {
	var version []byte
	version = appendString(version, versionProducer, Producer)
	version = appendString(version, versionMinCons, "0.40.0")
	if err := r.record(recordHeader, appendMessage(nil, headerVersion, version)); err != nil {
		return err
	}
	var run []byte
	run = appendString(run, runID, opts.ID)
	run = appendString(run, runEntity, opts.Entity)
	run = appendString(run, runProject, opts.Project)
	run = appendMessage(run, runConfig, appendItem(nil, configUpdate, item{key: "_wandb", json: "{}"}))
	run = appendString(run, runGroup, opts.Group)
	run = appendString(run, runJobType, opts.JobType)
	run = appendString(run, runDisplayName, opts.Name)
	run = appendString(run, runNotes, opts.Notes)
	for _, t := range opts.Tags {
		run = protowire.AppendTag(run, runTags, protowire.BytesType)
		run = protowire.AppendString(run, t)
	}
	if host, err := os.Hostname(); err == nil {
		run = appendString(run, runHost, host)
	}
	run = appendTimestamp(run, runStartTime, opts.Start)
	if err := r.record(recordRun, run); err != nil {
		return err
	}
	if len(config) > 0 {
		var c []byte
		for _, it := range config {
			c = appendItem(c, configUpdate, it)
		}
		if err := r.record(recordConfig, c); err != nil {
			return err
		}
	}
	// wandb.define_metric("train/global_step") and define_metric("*", step_metric=…, step_sync=True).
	var opt []byte
	opt = appendVarint(opt, optionsDefined, 1)
	if err := r.record(recordMetric, appendMessage(appendString(nil, metricName, "train/global_step"), metricOptions, opt)); err != nil {
		return err
	}
	opt = appendVarint(appendVarint(nil, optionsStepSync, 1), optionsDefined, 1)
	glob := appendString(appendString(nil, metricGlobName, "*"), metricStepMetric, "train/global_step")
	if err := r.record(recordMetric, appendMessage(glob, metricOptions, opt)); err != nil {
		return err
	}
	if len(r.files) > 0 {
		var files []byte
		for _, name := range r.files {
			files = appendMessage(files, filesItem, appendVarint(appendString(nil, filePath, name), filePolicy, policyEnd))
		}
		if err := r.record(recordFiles, files); err != nil {
			return err
		}
	}
	return r.log.flush()
}

// record writes one Record whose record_type is field, numbered, with the run's stream id.
func (r *Run) record(field protowire.Number, msg []byte) error {
	r.num++
	var b []byte
	b = appendVarint(b, recordNum, r.num)
	b = appendMessage(b, field, msg)
	b = appendMessage(b, recordInfo, appendString(nil, infoStreamID, r.ID))
	return r.log.write(b)
}

// singleValueScalars are the end-of-training values transformers' WandbCallback puts in the
// run summary instead of the history.
var singleValueScalars = []string{"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos"}

// Log writes one logging step as transformers' WandbCallback.on_log does: the end-of-training
// scalars go to the summary; every other metric becomes a history row with transformers' key
// names (eval_x → eval/x, test_x → test/x, x → train/x) plus train/global_step. The "step"
// entry of the trainer's log is that global step.
func (r *Run) Log(step int, metrics map[string]float64) error {
	row := map[string]float64{}
	var single []item
	for k, v := range metrics {
		switch {
		case k == "step":
		case slices.Contains(singleValueScalars, k):
			single = append(single, item{key: k, json: number(v)})
		default:
			row[TrainerKey(k)] = v
		}
	}
	if len(single) > 0 {
		slices.SortFunc(single, func(a, b item) int { return strings.Compare(a.key, b.key) })
		if err := r.writeSummary(single); err != nil {
			return err
		}
	}
	if len(row) > 0 {
		row["train/global_step"] = float64(step)
		if err := r.writeHistory(row); err != nil {
			return err
		}
	}
	if err := r.log.flush(); err != nil {
		return fmt.Errorf("wandb: %w", err)
	}
	return nil
}

// TrainerKey is the W&B name transformers gives a logged metric (its rewrite_logs).
func TrainerKey(k string) string {
	switch {
	case strings.HasPrefix(k, "eval_"):
		return "eval/" + strings.TrimPrefix(k, "eval_")
	case strings.HasPrefix(k, "test_"):
		return "test/" + strings.TrimPrefix(k, "test_")
	}
	return "train/" + k
}

// writeHistory writes a history row with wandb's own _step, _timestamp and _runtime, followed by
// the summary update wandb writes after each row.
func (r *Run) writeHistory(row map[string]float64) error {
	now := r.now()
	items := []item{{key: "_step", nested: true, json: strconv.FormatInt(r.step, 10)}}
	for _, k := range slices.Sorted(maps.Keys(row)) {
		items = append(items, item{key: k, nested: true, json: number(row[k])})
	}
	items = append(items,
		item{key: "_timestamp", nested: true, json: number(float64(now.UnixNano()) / 1e9)},
		item{key: "_runtime", nested: true, json: number(now.Sub(r.start).Seconds())})
	var h []byte
	for _, it := range items {
		h = appendItem(h, configUpdate, it)
	}
	h = appendMessage(h, historyStep, appendVarint(nil, stepNum, uint64(r.step)))
	r.step++
	if err := r.writeSummary(items); err != nil {
		return err
	}
	return r.record(recordHistory, h)
}

func (r *Run) writeSummary(items []item) error {
	var s []byte
	for _, it := range items {
		s = appendItem(s, configUpdate, it)
	}
	return r.record(recordSummary, s)
}

// Finish writes the exit record (exitCode 0: the run succeeded) and closes the file.
func (r *Run) Finish(code int) error {
	var e []byte
	e = appendVarint(e, exitCode, uint64(uint32(int32(code))))
	e = appendVarint(e, exitRuntime, uint64(int32(r.now().Sub(r.start).Seconds())))
	err := errors.Join(r.record(recordExit, e), r.log.flush(), r.f.Close())
	if err != nil {
		return fmt.Errorf("wandb: %w", err)
	}
	return nil
}

// number is a float as wandb's JSON writes it: integers without a fraction, NaN and infinities
// as the names Python's json module uses.
func number(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// configItems marshals the config's values in key order.
func configItems(config map[string]any) ([]item, error) {
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]item, 0, len(keys))
	for _, k := range keys {
		b, err := json.Marshal(config[k])
		if err != nil {
			return nil, fmt.Errorf("wandb: config %s: %w", k, err)
		}
		out = append(out, item{key: k, json: string(b)})
	}
	return out, nil
}

// newID is wandb's run id shape: 8 characters of [a-z0-9].
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Mode is what WANDB_MODE (and WANDB_DISABLED) ask for.
type Mode string

// The modes: runs are written offline (nothing is streamed; `wandb sync` uploads them later), or
// not at all.
const (
	Offline  Mode = "offline"
	Disabled Mode = "disabled"
)

// FromEnv reads the variables wandb.init reads: WANDB_DIR, WANDB_PROJECT (transformers'
// default "huggingface"), WANDB_ENTITY, WANDB_RUN_GROUP, WANDB_JOB_TYPE, WANDB_NAME, WANDB_NOTES,
// WANDB_TAGS (comma-separated), WANDB_RUN_ID, and WANDB_MODE / WANDB_DISABLED. "online" (and
// wandb's default) is written offline here, since nothing can be streamed; the notice says so.
func FromEnv() (Options, Mode, string) {
	o := Options{Dir: os.Getenv("WANDB_DIR"), Project: os.Getenv("WANDB_PROJECT"), Entity: os.Getenv("WANDB_ENTITY"),
		Group: os.Getenv("WANDB_RUN_GROUP"), JobType: os.Getenv("WANDB_JOB_TYPE"), Name: os.Getenv("WANDB_NAME"),
		Notes: os.Getenv("WANDB_NOTES"), ID: os.Getenv("WANDB_RUN_ID")}
	if o.Project == "" {
		o.Project = "huggingface"
	}
	if tags := os.Getenv("WANDB_TAGS"); tags != "" {
		for _, t := range strings.Split(tags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				o.Tags = append(o.Tags, t)
			}
		}
	}
	switch d := strings.ToLower(os.Getenv("WANDB_DISABLED")); d {
	case "true", "1", "yes":
		return o, Disabled, "WANDB_DISABLED is set: no W&B run is written"
	}
	switch m := strings.ToLower(os.Getenv("WANDB_MODE")); m {
	case "disabled", "dryrun-disabled":
		return o, Disabled, "WANDB_MODE=disabled: no W&B run is written"
	case "offline", "dryrun":
		return o, Offline, ""
	default:
		return o, Offline, "W&B runs are written offline (nothing is streamed live); upload them with `wandb sync`"
	}
}
