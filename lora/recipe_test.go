package lora

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFromRecipe(t *testing.T) {
	tests := []struct {
		name    string
		opts    RecipeOptions
		want    *Config
		wantQ   *QuantizeOptions
		wantErr string
	}{
		{name: "full fine-tune", opts: RecipeOptions{}},
		{name: "TRL defaults", opts: RecipeOptions{UsePEFT: true, LoraDropout: 0.05},
			want: &Config{R: 16, Alpha: 32, Dropout: 0.05, TargetModules: []string{"q_proj", "v_proj"}}},
		{name: "handbook zephyr qlora", opts: RecipeOptions{UsePEFT: true, LoraR: 128, LoraAlpha: 128, LoraDropout: 0,
			LoraTargetModules: []string{"all-linear"}, LoadIn4Bit: true, BnB4BitQuantType: "nf4", UseBnBNestedQuant: true,
			BnB4BitComputeDType: "bfloat16", UseRSLoRA: true},
			want:  &Config{R: 128, Alpha: 128, TargetModules: []string{AllLinear}, UseRSLoRA: true},
			wantQ: &QuantizeOptions{DoubleQuant: true, ComputeDType: dtypes.BFloat16}},
		{name: "4 and 8 bit", opts: RecipeOptions{UsePEFT: true, LoadIn4Bit: true, LoadIn8Bit: true}, wantErr: "load_in_8bit"},
		{name: "8 bit", opts: RecipeOptions{UsePEFT: true, LoadIn8Bit: true}, wantErr: "not supported"},
		{name: "fp4", opts: RecipeOptions{UsePEFT: true, LoadIn4Bit: true, BnB4BitQuantType: "fp4"}, wantErr: "fp4"},
		{name: "4 bit without peft", opts: RecipeOptions{LoadIn4Bit: true}, wantErr: "use_peft"},
		{name: "bad rank", opts: RecipeOptions{UsePEFT: true, LoraR: -1}, wantErr: "r must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, q, err := FromRecipe(tc.opts, "llama")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c)
			assert.Equal(t, tc.wantQ, q)
		})
	}
}
