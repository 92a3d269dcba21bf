// Package data turns what users have — Hub datasets and their own JSONL, JSON
// or Parquet files — into the batches the trainers consume, building the same
// training examples TRL builds from the alignment-handbook's recipes.
//
// The path, left to right:
//
//   - Sources. A Source yields a split's rows (Row: column → JSON value) in a
//     fixed order without holding the split in memory: JSON Lines line by line,
//     JSON arrays token by token, Parquet (github.com/parquet-go/parquet-go,
//     nested list<struct<role,content>> columns included) row group by row
//     group. OpenFile opens one file, OpenDir a directory in the Hub's dataset
//     layout (data/{split}-00000-of-00002.parquet, {split}/…, config
//     subfolders, the Parquet conversion's {config}/{split}/0000.parquet).
//     A Loader maps a recipe's (id, config, split) to a Source: LocalLoader
//     reads paths, and the Hub client plugs in behind the same interface.
//   - Mixtures. MixtureConfig is the recipe's `dataset_mixture` (select
//     columns → shuffle(seed) → keep int(rows·weight) → concatenate →
//     shuffle(seed) → train/test split by fraction or count);
//     LegacyMixtureConfig the older `dataset_mixer` + `dataset_splits` (train
//     splits cut to their first int(fraction·rows) rows, test splits whole,
//     both shuffled with seed 42). Row counts equal the handbook's; the order is
//     deterministic for a seed but is not numpy's permutation. Only the selected
//     rows are kept in memory (Dataset), each with its Origin for error messages.
//   - Formats. DetectFormat and ParseRow read the four layouts TRL knows:
//     conversations (`messages`), plain text (`text`), prompt-completion
//     (strings or message lists) and preference (`chosen`/`rejected`, with an
//     explicit `prompt` or the shared one extracted as TRL's extract_prompt
//     does). Unknown roles, wrong types and missing columns are errors naming
//     the file, row, column and message.
//   - Tokenization. Tokenize (SFT) and TokenizePreference (DPO/ORPO) follow TRL
//     1.16's preparation exactly: EOS appended to non-conversational text and
//     completions, chat templates for conversations, labels masked to the
//     completion (prompt-completion) or assistant tokens (assistant_only_loss),
//     truncation keep_start/keep_end, parallel over NumProc workers. A sample
//     with no trainable token left is dropped, counted in Stats and logged —
//     never trained on silently (trl#4879).
//   - Packing and batches. Pack implements TRL's best-fit-decreasing (bfd,
//     bfd_split) and wrapped packing; Collate right-pads (to the longest or a
//     multiple) or builds one padding-free row, with position ids that restart
//     per sample and segment ids that keep samples from attending to each other
//     (the shapes model.Inputs takes). Labels are masked by position, so
//     pad == eos never hides the EOS label (trl#1623). CollatePreference builds
//     TRL's [chosen; rejected] layout with completion masks. Sampler gives a
//     deterministic order per seed and epoch, so a resumed run continues exactly.
//
// Goldens: tools/oracle/data_goldens.py runs TRL 1.16.0 (transformers 5.24.0,
// datasets 5.2.0) on the rows stored in testdata/trl_goldens.json.gz with the
// Qwen3 and Mistral tokenizers of package tokenizer; TestMatchesTRL requires
// identical ids, labels, masks, packed rows and batches.
//
// Memory: BenchmarkParquetScan1GB scans a 1 GB synthetic Parquet file (nested
// messages column) with a peak RSS of 85 MB (measured 2026-11-28, 2 cores).
package data
