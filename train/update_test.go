package train

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestUpdateGroups: the update runs per decoder layer; layers share one compiled graph (same member
// suffixes and master flags), while each other weight is its own group with a key of its own (the
// graph bakes in weight decay by name: lm_head decays, model.norm does not).
func TestUpdateGroups(t *testing.T) {
	names := []string{"lm_head.weight", "model.embed_tokens.weight",
		"model.layers.0.input_layernorm.weight", "model.layers.0.mlp.up_proj.weight",
		"model.layers.1.input_layernorm.weight", "model.layers.1.mlp.up_proj.weight", "model.norm.weight"}
	masters := []bool{true, true, true, true, true, true, true}
	groups := updateGroups(names, masters)
	var members [][]int
	keys := map[string]int{}
	for _, g := range groups {
		members = append(members, g.members)
		keys[g.key]++
	}
	assert.Equal(t, [][]int{{0}, {1}, {2, 3}, {4, 5}, {6}}, members)
	assert.Len(t, keys, 4, "the two layers share a key; lm_head, embed_tokens and norm each have their own")
	masters[5] = false
	assert.NotEqual(t, updateGroups(names, masters)[2].key, updateGroups(names, masters)[3].key, "a master flag changes the graph")
}
