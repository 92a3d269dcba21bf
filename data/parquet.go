package data

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// parquetSource reads a Parquet file row group by row group, a few rows at a
// time, so memory stays bounded by the largest page rather than the file.
type parquetSource struct {
	path string
}

func (s *parquetSource) Name() string { return s.path }

func (s *parquetSource) open() (*os.File, *parquet.File, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a readable Parquet file: %w", s.path, err)
	}
	return f, pf, nil
}

func (s *parquetSource) Len(context.Context) (int, error) {
	f, pf, err := s.open()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return int(pf.NumRows()), nil
}

// parquetBatch is how many rows are decoded at a time.
const parquetBatch = 64

func (s *parquetSource) Scan(ctx context.Context, fn func(int, Row) error) error {
	f, pf, err := s.open()
	if err != nil {
		return err
	}
	defer f.Close()
	schema := pf.Schema()
	fields := schema.Fields()
	buf := make([]parquet.Row, parquetBatch)
	index := 0
	for g, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			if err := ctx.Err(); err != nil {
				rows.Close()
				return err
			}
			n, rerr := readRows(rows, buf)
			for i := 0; i < n; i++ {
				row, err := decodeParquetRow(schema, fields, buf[i])
				if err != nil {
					rows.Close()
					return fmt.Errorf("%s: row %d (row group %d): %w", s.path, index, g, err)
				}
				if err := fn(index, row); err != nil {
					rows.Close()
					return err
				}
				index++
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				rows.Close()
				return fmt.Errorf("%s: row %d (row group %d): corrupted data: %w", s.path, index+n, g, rerr)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("%s: row group %d: %w", s.path, g, err)
		}
	}
	return nil
}

// readRows is Rows.ReadRows with panics of the decoder (seen on corrupted
// pages) turned into errors.
func readRows(rows parquet.Rows, buf []parquet.Row) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("decoding pages: %v", r)
		}
	}()
	return rows.ReadRows(buf)
}

func decodeParquetRow(schema *parquet.Schema, fields []parquet.Field, r parquet.Row) (row Row, err error) {
	defer func() {
		if p := recover(); p != nil {
			row, err = nil, fmt.Errorf("decoding row: %v", p)
		}
	}()
	var v any
	if err := schema.Reconstruct(&v, r); err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	row = make(Row, len(fields))
	for _, f := range fields {
		b, err := appendParquetJSON(nil, f, m[f.Name()])
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name(), err)
		}
		row[f.Name()] = b
	}
	return row, nil
}

// appendParquetJSON writes v, reconstructed from node, as JSON; struct fields
// keep the schema's order, as Arrow (and so `datasets`) does.
func appendParquetJSON(b []byte, node parquet.Node, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v), nil
	case []byte:
		if node != nil && logicalIs[*format.StringType](node) {
			return appendJSONString(b, string(v)), nil
		}
		return appendJSONString(b, base64.StdEncoding.EncodeToString(v)), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case float32:
		return appendFloat(b, float64(v), 32)
	case float64:
		return appendFloat(b, v, 64)
	case time.Time:
		return appendJSONString(b, v.Format(time.RFC3339Nano)), nil
	case []any:
		elem := listElement(node)
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendParquetJSON(b, elem, e); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		b = append(b, '{')
		keys := structKeys(node, v)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendParquetJSON(b, fieldNode(node, k), v[k]); err != nil {
				return nil, fmt.Errorf(".%s: %w", k, err)
			}
		}
		return append(b, '}'), nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, out...), nil
}

func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...), nil
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits), nil
}

func appendJSONString(b []byte, s string) []byte {
	out, _ := json.Marshal(s) // a string always marshals
	return append(b, out...)
}

// listElement returns the element node of a LIST-annotated (or repeated) node.
func listElement(node parquet.Node) parquet.Node {
	if node == nil {
		return nil
	}
	if !node.Leaf() && logicalIs[*format.ListType](node) {
		fields := node.Fields()
		if len(fields) == 1 {
			inner := fields[0] // the repeated "list" group
			if !inner.Leaf() && len(inner.Fields()) == 1 {
				return inner.Fields()[0]
			}
			return inner
		}
	}
	return nil
}

// structKeys returns the keys of a reconstructed group in schema order (map
// keys, which have no schema order, sorted).
func structKeys(node parquet.Node, m map[string]any) []string {
	var keys []string
	if node != nil && !node.Leaf() {
		if !logicalIs[*format.MapType](node) {
			for _, f := range node.Fields() {
				if _, ok := m[f.Name()]; ok {
					keys = append(keys, f.Name())
				}
			}
			if len(keys) == len(m) {
				return keys
			}
		}
	}
	keys = keys[:0]
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fieldNode(node parquet.Node, name string) parquet.Node {
	if node == nil || node.Leaf() {
		return nil
	}
	for _, f := range node.Fields() {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

// logicalIs reports whether node's logical type annotation is a T.
func logicalIs[T format.LogicalTypeValue](node parquet.Node) bool {
	lt := node.Type().LogicalType()
	if lt == nil {
		return false
	}
	_, ok := lt.Value.(T)
	return ok
}
