package train_test

import (
	"context"
	"fmt"
	"os"

	"github.com/gomlx/gomlx/core/tensors"

	"handbook/backend"
	"handbook/model"
	"handbook/train"
)

// oneBatch serves the same causal-LM batch every step: labels are the inputs, as for
// pre-training text.
type oneBatch struct{ rows [][]int32 }

func (b oneBatch) Len() int { return 1 }

func (b oneBatch) Batch(epoch, index int) (map[string]*tensors.Tensor, error) {
	var flat []int32
	for _, r := range b.rows {
		flat = append(flat, r...)
	}
	ids := tensors.FromFlatDataAndDimensions(flat, len(b.rows), len(b.rows[0]))
	labels := tensors.FromFlatDataAndDimensions(append([]int32{}, flat...), len(b.rows), len(b.rows[0]))
	return map[string]*tensors.Tensor{"input_ids": ids, "labels": labels}, nil
}

// Train a small Llama on one batch with the engine every trainer shares: a zero Args is
// transformers' defaults (AdamW, linear decay), so only the output directory, the length of the
// run and the learning rate are set here.
func ExampleEngine() {
	b, _, err := backend.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := model.Load(b, "../testdata/models/llama_gqa", model.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Finalize()
	out, err := os.MkdirTemp("", "train-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)

	var first, last float64
	e := &train.Engine{Model: m, Objective: train.CausalLM{},
		Args: train.Args{OutputDir: out, MaxSteps: 20, LearningRate: 1e-2},
		Progress: func(step, _ int, loss float64) {
			if step == 1 {
				first = loss
			}
			last = loss
		}}
	batches := oneBatch{rows: [][]int32{{1, 5, 6, 7, 8, 9, 2}, {1, 9, 8, 7, 6, 5, 2}}}
	res, err := e.Train(context.Background(), batches, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("optimizer steps:", res.GlobalStep)
	fmt.Println("loss fell by more than half:", last < first/2)
	// Output:
	// optimizer steps: 20
	// loss fell by more than half: true
}
