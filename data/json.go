package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// jsonlSource reads JSON Lines: one object per line, blank lines skipped.
type jsonlSource struct {
	path  string
	count int // -1 until known
}

func (s *jsonlSource) Name() string { return s.path }

func (s *jsonlSource) Len(ctx context.Context) (int, error) {
	if s.count < 0 {
		n := 0
		if err := s.scanLines(ctx, func(int, int, []byte) error { n++; return nil }); err != nil {
			return 0, err
		}
		s.count = n
	}
	return s.count, nil
}

func (s *jsonlSource) Scan(ctx context.Context, fn func(int, Row) error) error {
	return s.scanLines(ctx, func(index, line int, b []byte) error {
		row, err := decodeRow(b)
		if err != nil {
			return fmt.Errorf("%s: row %d (line %d): %w", s.path, index, line, err)
		}
		return fn(index, row)
	})
}

func (s *jsonlSource) scanLines(ctx context.Context, fn func(index, line int, b []byte) error) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	index := 0
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			if index%1024 == 0 {
				if cerr := ctx.Err(); cerr != nil {
					return cerr
				}
			}
			if ferr := fn(index, line, b); ferr != nil {
				return ferr
			}
			index++
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: line %d: %w", s.path, line, err)
		}
	}
}

// decodeRow decodes one JSON object into a Row. Invalid UTF-8 is an error, as
// in Python's json (Go's decoder would turn it into U+FFFD and train on that).
func decodeRow(b []byte) (Row, error) {
	if err := checkUTF8(b); err != nil {
		return nil, err
	}
	var row Row
	if err := json.Unmarshal(b, &row); err != nil {
		return nil, fmt.Errorf("want a JSON object: %w", err)
	}
	if row == nil {
		return nil, fmt.Errorf("want a JSON object, got null")
	}
	return row, nil
}

// jsonSource reads a .json file holding an array of row objects, or an object
// of column arrays of equal length ({"prompt": [...], "completion": [...]}).
type jsonSource struct {
	path  string
	count int
}

func (s *jsonSource) Name() string { return s.path }

func (s *jsonSource) Len(ctx context.Context) (int, error) {
	if s.count < 0 {
		n := 0
		if err := s.Scan(ctx, func(int, Row) error { n++; return nil }); err != nil {
			return 0, err
		}
		s.count = n
	}
	return s.count, nil
}

func (s *jsonSource) Scan(ctx context.Context, fn func(int, Row) error) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	switch tok {
	case json.Delim('['):
		for index := 0; dec.More(); index++ {
			if index%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return fmt.Errorf("%s: row %d: %w", s.path, index, err)
			}
			row, err := decodeRow(raw)
			if err != nil {
				return fmt.Errorf("%s: row %d: %w", s.path, index, err)
			}
			if err := fn(index, row); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
		return nil
	case json.Delim('{'):
		return s.scanColumns(dec, fn)
	}
	return fmt.Errorf("%s: want a JSON array of objects or an object of columns, got %v", s.path, tok)
}

// scanColumns reads the columnar layout; it needs all columns in memory.
func (s *jsonSource) scanColumns(dec *json.Decoder, fn func(int, Row) error) error {
	var names []string
	cols := map[string][]json.RawMessage{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
		name := key.(string)
		var values []json.RawMessage
		if err := dec.Decode(&values); err != nil {
			return fmt.Errorf("%s: column %q: want an array: %w", s.path, name, err)
		}
		if len(names) > 0 && len(values) != len(cols[names[0]]) {
			return fmt.Errorf("%s: column %q has %d values, column %q has %d", s.path, name, len(values), names[0], len(cols[names[0]]))
		}
		names = append(names, name)
		cols[name] = values
	}
	if len(names) == 0 {
		return nil
	}
	for i := range cols[names[0]] {
		row := make(Row, len(names))
		for _, n := range names {
			if err := checkUTF8(cols[n][i]); err != nil {
				return fmt.Errorf("%s: row %d: column %q: %w", s.path, i, n, err)
			}
			row[n] = cols[n][i]
		}
		if err := fn(i, row); err != nil {
			return err
		}
	}
	return nil
}

// checkUTF8 reports the first byte of b that is not valid UTF-8.
func checkUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d (0x%02x)", i, b[i])
		}
		i += n
	}
	return nil
}
