package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor adds the special tokens around an encoded sequence.
type postProcessor func(ids []int, offsets [][2]int) ([]int, [][2]int)

func parsePostProcessor(raw json.RawMessage) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	var head struct {
		Type          string
		Processors    []json.RawMessage
		Single        []json.RawMessage
		SpecialTokens map[string]struct{ IDs []int } `json:"special_tokens"`
		Cls, Sep      [2]json.RawMessage
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	switch head.Type {
	case "Sequence":
		var steps []postProcessor
		for i, r := range head.Processors {
			p, err := parsePostProcessor(r)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if p != nil {
				steps = append(steps, p)
			}
		}
		return func(ids []int, offsets [][2]int) ([]int, [][2]int) {
			for _, step := range steps {
				ids, offsets = step(ids, offsets)
			}
			return ids, offsets
		}, nil
	case "ByteLevel":
		return nil, nil // only trims offsets, which this package reports untrimmed
	case "TemplateProcessing":
		var before, after []int
		seenSequence := false
		for i, r := range head.Single {
			var piece struct {
				SpecialToken *struct{ ID string }
				Sequence     *struct{ ID string }
			}
			if err := json.Unmarshal(r, &piece); err != nil {
				return nil, fmt.Errorf("TemplateProcessing single[%d]: %w", i, err)
			}
			switch {
			case piece.Sequence != nil:
				seenSequence = true
			case piece.SpecialToken != nil:
				tok, ok := head.SpecialTokens[piece.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("TemplateProcessing single[%d]: special token %q missing from special_tokens", i, piece.SpecialToken.ID)
				}
				if seenSequence {
					after = append(after, tok.IDs...)
				} else {
					before = append(before, tok.IDs...)
				}
			default:
				return nil, fmt.Errorf("TemplateProcessing single[%d]: want SpecialToken or Sequence", i)
			}
		}
		return wrapWith(before, after), nil
	case "RobertaProcessing", "BertProcessing":
		var cls, sep int
		if err := json.Unmarshal(head.Cls[1], &cls); err != nil {
			return nil, fmt.Errorf("%s cls: %w", head.Type, err)
		}
		if err := json.Unmarshal(head.Sep[1], &sep); err != nil {
			return nil, fmt.Errorf("%s sep: %w", head.Type, err)
		}
		return wrapWith([]int{cls}, []int{sep}), nil
	}
	return nil, fmt.Errorf("post_processor: unsupported type %q", head.Type)
}

func wrapWith(before, after []int) postProcessor {
	return func(ids []int, offsets [][2]int) ([]int, [][2]int) {
		outIDs := make([]int, 0, len(before)+len(ids)+len(after))
		outOffsets := make([][2]int, 0, cap(outIDs))
		outIDs = append(append(append(outIDs, before...), ids...), after...)
		outOffsets = append(outOffsets, make([][2]int, len(before))...)
		outOffsets = append(outOffsets, offsets...)
		outOffsets = append(outOffsets, make([][2]int, len(after))...)
		return outIDs, outOffsets
	}
}
