// Command demodata writes the bundled demo dataset of recipes/tiny: short chat tasks with exact
// answers that a ~1M-parameter model learns in minutes on a CPU — adding one-digit numbers,
// reversing, upper-casing and sorting short letter strings — as conversations (SFT) and as
// preference pairs whose rejected answer is a near miss (DPO/ORPO).
//
//	go run ./tools/demodata recipes/tiny/data
//
// Output is deterministic: sft/{train,test}.jsonl with a "messages" column, and
// preference/{train,test}.jsonl with "chosen" and "rejected" conversations.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
// (one more character before the end of the turn) — so DPO learns from errors it would make.
// The overruns matter: every rejected answer ends with <|im_end|>, so without them DPO learns to
// avoid ending turns and the aligned model runs on past correct answers.
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
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: demodata OUT_DIR")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "demodata:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	r := rand.New(rand.NewPCG(2026, 11))
	seen := map[string]bool{}
	var tasks []task
	for len(tasks) < 3000 {
		t := makeTask(r)
		if seen[t.question] {
			continue
		}
		seen[t.question] = true
		tasks = append(tasks, t)
	}
	// Wrong answers draw from their own stream, so the questions do not depend on them.
	miss := rand.New(rand.NewPCG(2026, 12))
	for i := range tasks {
		tasks[i].wrong = nearMiss(miss, tasks[i].answer)
	}
	// Held-out questions never appear in training.
	splits := map[string][]task{"train": tasks[:2700], "test": tasks[2700:]}
	for split, ts := range splits {
		if err := writeJSONL(filepath.Join(dir, "sft", split+".jsonl"), ts, func(t task) any {
			return map[string]any{"messages": []message{{"user", t.question}, {"assistant", t.answer}}}
		}); err != nil {
			return err
		}
		if err := writeJSONL(filepath.Join(dir, "preference", split+".jsonl"), ts, func(t task) any {
			return map[string]any{
				"chosen":   []message{{"user", t.question}, {"assistant", t.answer}},
				"rejected": []message{{"user", t.question}, {"assistant", t.wrong}},
			}
		}); err != nil {
			return err
		}
	}
	return nil
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
