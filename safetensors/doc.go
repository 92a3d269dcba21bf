// Package safetensors reads and writes Hugging Face safetensors files, single
// and sharded, compatible with the safetensors Python library, transformers
// and PEFT in both directions.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON describing each tensor (dtype, shape, data_offsets) plus an optional
// "__metadata__" string map, then the data buffer that the tensors tile
// exactly.
//
// # Reading
//
// Open memory-maps a file read-only, so loading a 7B checkpoint does not need
// twice its size in RAM, and validates the header as strictly as the Python
// library: every malformed file (short file, header length past the end,
// invalid JSON, unknown dtype, offsets that disagree with shape×dtype size,
// overlapping or gapped tensors, truncated data) gives an error wrapping
// ErrFormat that names the file and the tensor. File.Tensor returns a Tensor
// whose Data is a zero-copy view of the mapping; Tensor.Float32s converts
// F32/BF16/F16/F64 (BF16 and F16 exactly), Tensor.BFloat16s keeps bf16 data as
// raw bits, Tensor.Int64s reads integer and bool tensors.
//
// OpenDir and OpenCheckpoint open a checkpoint directory the way transformers
// does: the single file (model.safetensors, adapter_model.safetensors, ...)
// or else its ".index.json" and the shards it names; Checkpoint.Tensor looks a
// tensor up by its HF name across shards.
//
// # Writing
//
// Save writes one file and SaveCheckpoint a checkpoint directory, sharded
// like transformers' save_pretrained when MaxShardSize is exceeded
// ("model-00001-of-00003.safetensors" plus "model.safetensors.index.json").
// Tensors are given as Sources: a name, dtype and shape up front and a
// callback that streams the data when the writer reaches the tensor, so a
// model never has to be in host memory all at once. Float32Source,
// BFloat16Source (round-to-nearest-even, bit for bit as torch's cast),
// BFloat16BitsSource and RawSource cover the common cases. Files are laid out
// exactly as safetensors.torch.save_file lays them out, with
// {"format": "pt"} metadata, so the same tensors give byte-identical files,
// and each file is written to a temporary name and renamed, so a crash never
// leaves a partial file behind.
//
// The goldens under testdata/ come from tools/oracle/safetensors_fixtures.py,
// which also checks files written by this package with torch and
// transformers.
package safetensors
