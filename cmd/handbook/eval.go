package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	dir := fs.String("model", "", "model directory (config.json + safetensors) or Hub repository id")
	adapter := fs.String("adapter", "", "LoRA adapter directory (PEFT format) or Hub repository id, applied on top of --model")
	revision := revisionFlag(fs)
	tokensFile := fs.String("tokens", "", `JSON file of token ids: [[1,2,…],…], [1,2,…] or {"input_ids": …}`)
	dataFile := fs.String("data", "", `text to score: JSONL with a "text" field per line, or a plain text file (needs tokenizer.json)`)
	asJSON := fs.Bool("json", false, `print {"loss":…,"perplexity":…,"tokens":N} as the last line`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*tokensFile == "") == (*dataFile == "") {
		return fmt.Errorf("give exactly one of --tokens and --data")
	}
	if err := errors.Join(resolveDir(ctx, "model", dir, *revision), resolveDir(ctx, "adapter", adapter, "")); err != nil {
		return err
	}
	m, err := loadModelWithAdapter(*dir, *adapter, stderr)
	if err != nil {
		return err
	}
	defer m.Finalize()
	var seqs [][]int32
	if *tokensFile != "" {
		seqs, err = readTokenFile(*tokensFile)
	} else {
		seqs, err = tokenizeDataFile(*dataFile, *dir, *adapter)
	}
	if err != nil {
		return err
	}
	if len(seqs) == 0 {
		return fmt.Errorf("nothing to score: %s has no text", *tokensFile+*dataFile)
	}
	var sum float64
	var count int
	for i, s := range seqs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(s) < 2 {
			return fmt.Errorf("sequence %d has %d token(s); at least 2 are needed to predict one", i, len(s))
		}
		for _, id := range s {
			if id < 0 || int(id) >= m.Config.VocabSize {
				return fmt.Errorf("sequence %d: token id %d is outside the vocabulary (size %d)", i, id, m.Config.VocabSize)
			}
		}
		loss, n, err := m.Loss(modelInputs(s))
		if err != nil {
			return fmt.Errorf("sequence %d: %w", i, err)
		}
		sum += loss * float64(n)
		count += n
	}
	loss := sum / float64(count)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Errorf("the model's loss over %d tokens is %v (its weights hold NaN or Inf?)", count, loss)
	}
	ppl := math.Exp(loss)
	if *asJSON {
		return printJSON(stdout, struct {
			Loss       float64 `json:"loss"`
			Perplexity float64 `json:"perplexity"`
			Tokens     int     `json:"tokens"`
		}{loss, ppl, count})
	}
	_, err = fmt.Fprintf(stdout, "loss %.6f  perplexity %.4f  over %d predicted tokens in %d sequence(s)\n", loss, ppl, count, len(seqs))
	return err
}

// readTokenFile accepts [[ids…],…], [ids…] or {"input_ids": either}.
func readTokenFile(path string) ([][]int32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--tokens: %w", err)
	}
	var wrapped struct {
		InputIDs json.RawMessage `json:"input_ids"`
	}
	if json.Unmarshal(data, &wrapped) == nil && wrapped.InputIDs != nil {
		data = wrapped.InputIDs
	}
	var batch [][]int32
	if err := json.Unmarshal(data, &batch); err == nil {
		if len(batch) == 0 {
			return nil, fmt.Errorf("--tokens %s: no sequence", path)
		}
		return batch, nil
	}
	var one []int32
	if err := json.Unmarshal(data, &one); err != nil {
		return nil, fmt.Errorf("--tokens %s: want a list of token ids or a list of such lists: %w", path, err)
	}
	return [][]int32{one}, nil
}

// tokenizeDataFile reads JSONL {"text": …} lines, or a plain text file as one document.
func tokenizeDataFile(path, modelDir, adapterDir string) ([][]int32, error) {
	tok, err := loadTokenizer(modelDir, adapterDir)
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, fmt.Errorf("--data needs tokenizer.json in %s", modelDir)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	defer f.Close()
	var texts []string
	if strings.HasSuffix(path, ".jsonl") {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<30)
		for line := 1; sc.Scan(); line++ {
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var row struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				return nil, fmt.Errorf("--data %s line %d: %w", path, line, err)
			}
			if row.Text == nil {
				return nil, fmt.Errorf("--data %s line %d: no \"text\" field", path, line)
			}
			texts = append(texts, *row.Text)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--data %s: %w", path, err)
		}
	} else {
		data, err := io.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", path, err)
		}
		texts = []string{string(data)}
	}
	seqs := make([][]int32, len(texts))
	for i, text := range texts {
		ids, err := tok.Encode(text, true)
		if err != nil {
			return nil, fmt.Errorf("--data %s record %d: %w", path, i+1, err)
		}
		seqs[i] = toInt32s(ids)
	}
	return seqs, nil
}
