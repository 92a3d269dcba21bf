// Package train is the training engine every trainer shares. This first part holds the
// optimizer update (AdamW with torch's semantics, written here because GoMLX's optimizers lack
// decoupled-decay exclusion and global-norm clipping) and a compiled train step over a
// model.Decoder; schedules, accumulation, checkpoints and metrics come with the engine issue.
//
// A run holds its output directory (LockOutputDir) and Engine.OpenOutputDir decides what it does
// with what it finds there: start a new history (overwrite_output_dir), resume from the newest
// checkpoint unless the directory's final model is newer, or nothing when the run is finished.
// The rules, and how transformers differs, are in outputdir.go.
package train
