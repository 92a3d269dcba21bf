package data_test

import (
	"context"
	"fmt"

	"handbook/data"
)

func Example() {
	// A recipe's dataset_mixture over a local directory in the Hub's layout.
	weight, testSize := 0.5, 0.2
	mix, err := data.MixtureConfig{
		Datasets:      []data.DatasetConfig{{ID: "ultrachat", Split: "train_sft", Columns: []string{"messages"}, Weight: &weight}},
		Seed:          0,
		TestSplitSize: &testSize,
	}.Load(context.Background(), data.LocalLoader{Root: "testdata/hub"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %d of %d rows; train %d, test %d\n", mix.Sources[0].ID, mix.Sources[0].Rows, mix.Sources[0].Total, mix.Train.Len(), mix.Test.Len())

	// Tokenized samples (here by hand) are packed best-fit-decreasing and batched padding-free.
	samples := []data.Sample{
		{InputIDs: []int32{1, 2, 3}, Labels: []int32{-100, 2, 3}},
		{InputIDs: []int32{4, 5}, Labels: []int32{4, 5}},
		{InputIDs: []int32{6, 7, 8, 9}, Labels: []int32{6, 7, 8, 9}},
	}
	packed, _, err := data.Pack(samples, data.PackConfig{SeqLength: 6})
	if err != nil {
		fmt.Println(err)
		return
	}
	batch, err := data.Collate(packed, data.CollateConfig{PaddingFree: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(batch.InputIDs[0])
	fmt.Println(batch.Labels[0])
	fmt.Println(batch.PositionIDs[0])
	fmt.Println(batch.SegmentIDs[0])
	// Output:
	// ultrachat: 10 of 20 rows; train 8, test 2
	// [6 7 8 9 4 5 1 2 3]
	// [-100 7 8 9 -100 5 -100 2 3]
	// [0 1 2 3 0 1 0 1 2]
	// [0 0 0 0 1 1 2 2 2]
}
