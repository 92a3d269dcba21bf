// Package train is the training engine every trainer shares. This first part holds the
// optimizer update (AdamW with torch's semantics, written here because GoMLX's optimizers lack
// decoupled-decay exclusion and global-norm clipping) and a compiled train step over a
// model.Decoder; schedules, accumulation, checkpoints and metrics come with the engine issue.
package train
