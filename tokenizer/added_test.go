package tokenizer

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestAddedMatcherLeftmostLongest: at each position the longest added token wins, a token's
// prefix that is not itself a token matches nothing, and the first of duplicate texts wins.
func TestAddedMatcherLeftmostLongest(t *testing.T) {
	entries := []matchEntry{
		{"<a>", AddedToken{ID: 1}}, {"<a><b>", AddedToken{ID: 2}}, {"<b>", AddedToken{ID: 3}},
		{"<unused12>", AddedToken{ID: 4}}, {"<unused1>", AddedToken{ID: 5}}, {"<b>", AddedToken{ID: 6}},
	}
	m := newAddedMatcher(entries)
	for _, tc := range []struct {
		in   string
		want []addedSplit
	}{
		{"x<a><b>y", []addedSplit{{-1, 0, 1}, {2, 1, 7}, {-1, 7, 8}}},
		{"<a><c>", []addedSplit{{1, 0, 3}, {-1, 3, 6}}},
		{"<unused12>3", []addedSplit{{4, 0, 10}, {-1, 10, 11}}},
		{"<unused123>", []addedSplit{{-1, 0, 11}}},
		{"<unused1><b>", []addedSplit{{5, 0, 9}, {3, 9, 12}}},
		{"<unused1<b>", []addedSplit{{-1, 0, 8}, {3, 8, 11}}},
		{"<unused", []addedSplit{{-1, 0, 7}}},
		{"<", []addedSplit{{-1, 0, 1}}},
		{"", nil},
	} {
		assert.Equal(t, tc.want, m.split(tc.in), "%q", tc.in)
	}
}
