// Command demodata writes the bundled demo datasets of recipes/tiny: short chat tasks with exact
// answers that a ~0.4M-parameter model learns in minutes on a CPU — adding one-digit numbers,
// reversing, upper-casing and sorting short letter strings.
//
//	go run ./tools/demodata recipes/tiny/data
//
// writes the conversations for SFT: sft/{train,test}.jsonl with a "messages" column. Preference
// pairs for DPO/ORPO come from the SFT demo model itself (on-policy, as in iterative DPO/RPO):
//
//	go run ./cmd/handbook sft recipes/tiny/sft/config_full.yaml   # writes out/tiny-sft
//	go run ./tools/demodata -policy out/tiny-sft recipes/tiny/data
//
// writes preference/{train,test}.jsonl with "chosen" and "rejected" conversations on questions the
// SFT data never asked, whose rejected answers are the model's own mistakes. Both outputs are
// deterministic (the second for a given model).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"handbook/backend"
	"handbook/model"
	"handbook/sft"
	"handbook/tokenizer"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type task struct {
	question, answer, wrong string
}

const letters = "abcdefgh"

func word(r *rand.Rand) string {
	n := 3 + r.IntN(3)
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// nearMiss returns a plausible wrong answer: the mistakes a small model makes on these tasks —
// a sum off by one; a letter string with two neighbours swapped, a letter repeated in place of the
// next, or a letter copied from elsewhere in the string; or a right answer that does not stop
// (one more character before the end of the turn). It stands in for the policy's own mistake on a
// test question the policy never got wrong.
func nearMiss(r *rand.Rand, s string) string {
	if r.IntN(3) == 0 {
		return s + string(s[r.IntN(len(s))])
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n == 0 || r.IntN(2) == 0 {
			return strconv.Itoa(n + 1)
		}
		return strconv.Itoa(n - 1)
	}
	for {
		b := []byte(s)
		i := r.IntN(len(b))
		j := r.IntN(len(b))
		switch r.IntN(3) {
		case 0:
			if i+1 < len(b) {
				b[i], b[i+1] = b[i+1], b[i]
			}
		case 1:
			if i > 0 {
				b[i] = b[i-1]
			}
		default:
			b[i] = b[j]
		}
		if string(b) != s {
			return string(b)
		}
		if strings.Count(s, s[:1]) == len(s) { // one repeated letter: change its case-mate instead
			b[i] = letters[(strings.IndexByte(letters, strings.ToLower(s)[0])+1)%len(letters)]
			if strings.ToUpper(s) == s {
				b[i] = strings.ToUpper(string(b[i]))[0]
			}
			return string(b)
		}
	}
}

func makeTask(r *rand.Rand) task {
	var t task
	switch r.IntN(4) {
	case 0:
		a, b := r.IntN(10), r.IntN(10)
		t = task{fmt.Sprintf("What is %d + %d?", a, b), fmt.Sprint(a + b), ""}
	case 1:
		w := word(r)
		t = task{"Reverse: " + w, reverse(w), ""}
	case 2:
		w := word(r)
		t = task{"Uppercase: " + w, strings.ToUpper(w), ""}
	default:
		w := word(r)
		b := []byte(w)
		sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
		t = task{"Sort: " + w, string(b), ""}
	}
	return t
}

func main() {
	policy := flag.String("policy", "", "model directory: write on-policy preference pairs from its answers to fresh questions instead")
	heldOut := flag.Int("held_out", 1000, "with -policy: fresh questions for the test split")
	prompts := flag.Int("prompts", 4000, "with -policy: fresh questions for the training split")
	samples := flag.Int("samples", 4, "with -policy: sampled answers per question (besides the greedy one)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: demodata [-policy MODEL_DIR [-held_out N] [-prompts N] [-samples K]] OUT_DIR")
		os.Exit(2)
	}
	var err error
	if *policy != "" {
		err = writeOnPolicy(context.Background(), flag.Arg(0), *policy, *heldOut, *prompts, *samples)
	} else {
		err = write(flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demodata:", err)
		os.Exit(1)
	}
}

// questions draws n distinct tasks from the demo's question stream; the first 3000 are the SFT
// data's, later ones are fresh.
func questions(n int) []task {
	r := rand.New(rand.NewPCG(2026, 11))
	seen := map[string]bool{}
	var tasks []task
	for len(tasks) < n {
		t := makeTask(r)
		if seen[t.question] {
			continue
		}
		seen[t.question] = true
		tasks = append(tasks, t)
	}
	return tasks
}

func write(dir string) error {
	tasks := questions(3000)
	// Held-out questions never appear in training.
	splits := map[string][]task{"train": tasks[:2700], "test": tasks[2700:]}
	for split, ts := range splits {
		if err := writeJSONL(filepath.Join(dir, "sft", split+".jsonl"), ts, func(t task) any {
			return map[string]any{"messages": []message{{"user", t.question}, {"assistant", t.answer}}}
		}); err != nil {
			return err
		}
	}
	return nil
}

func preferenceRow(t task) any {
	return map[string]any{
		"chosen":   []message{{"user", t.question}, {"assistant", t.answer}},
		"rejected": []message{{"user", t.question}, {"assistant", t.wrong}},
	}
}

func writeJSONL(path string, ts []task, row func(task) any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	for _, t := range ts {
		data, err := json.Marshal(row(t))
		if err != nil {
			return err
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeOnPolicy writes preference/{test,train}.jsonl from the policy's own answers to fresh
// questions (never in the SFT data): the first heldOut of them are the test split, the next
// prompts the training split. Each question is answered greedily and sampled `samples` times at
// temperature 1; the rejected answer is the greedy one when it is wrong, else the first wrong
// sample, so DPO lowers exactly the mistakes the policy makes. Training keeps only questions with a
// wrong answer; the test split keeps every question (a near miss stands in for a policy that never
// erred), so exact match on it is not biased towards the policy's mistakes.
func writeOnPolicy(ctx context.Context, dir, policy string, heldOut, prompts, samples int) error {
	b, _, err := backend.New()
	if err != nil {
		return err
	}
	m, err := model.Load(b, policy, model.LoadOptions{})
	if err != nil {
		return err
	}
	defer m.Finalize()
	tok, err := tokenizer.Load(policy)
	if err != nil {
		return err
	}
	tmpl, err := tok.ChatTemplate("")
	if err != nil {
		return err
	}
	fresh := questions(3000 + heldOut + prompts)[3000:]
	convs := make([][]tokenizer.Message, len(fresh))
	for i, t := range fresh {
		convs[i] = []tokenizer.Message{{Role: "user", Content: t.question}, {Role: "assistant", Content: t.answer}}
	}
	greedy, err := sft.Answer(ctx, m, tok, tmpl, convs, model.GenerateOptions{MaxNewTokens: 16})
	if err != nil {
		return err
	}
	misses := 0
	for i, a := range greedy {
		if a != fresh[i].answer {
			fresh[i].wrong = a
			misses++
		}
	}
	fmt.Fprintf(os.Stderr, "%s: greedy exact match on %d fresh questions: %.1f%%\n", policy, len(fresh), 100*float64(len(fresh)-misses)/float64(len(fresh)))
	for k := range samples {
		sampled, err := sft.Answer(ctx, m, tok, tmpl, convs, model.GenerateOptions{MaxNewTokens: 16, DoSample: true, Temperature: 1, Seed: uint64(k+1) << 32})
		if err != nil {
			return err
		}
		for i, a := range sampled {
			if fresh[i].wrong == "" && a != fresh[i].answer {
				fresh[i].wrong = a
			}
		}
	}
	test, pool := fresh[:heldOut], fresh[heldOut:]
	miss := rand.New(rand.NewPCG(2026, 12)) // its own stream: the questions do not depend on it
	for i := range test {
		if test[i].wrong == "" {
			test[i].wrong = nearMiss(miss, test[i].answer)
		}
	}
	var pairs []task
	for _, t := range pool {
		if t.wrong != "" {
			pairs = append(pairs, t)
		}
	}
	fmt.Fprintf(os.Stderr, "%d training pairs from %d questions, %d test pairs\n", len(pairs), len(pool), len(test))
	if err := writeJSONL(filepath.Join(dir, "preference", "test.jsonl"), test, preferenceRow); err != nil {
		return err
	}
	return writeJSONL(filepath.Join(dir, "preference", "train.jsonl"), pairs, preferenceRow)
}
