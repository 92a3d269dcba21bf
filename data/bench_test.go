package data

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

type benchMessage struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

type benchRow struct {
	PromptID string         `parquet:"prompt_id"`
	Messages []benchMessage `parquet:"messages,list"`
}

// writeSyntheticParquet writes about size bytes of chat rows, uncompressed, in
// row groups of 4096 rows.
func writeSyntheticParquet(tb testing.TB, path string, size int64) int {
	f, err := os.Create(path)
	require.NoError(tb, err)
	defer f.Close()
	w := parquet.NewGenericWriter[benchRow](f, parquet.MaxRowsPerRowGroup(4096), parquet.PageBufferSize(1<<20))
	filler := strings.Repeat("lorem ipsum dolor sit amet ", 40)
	rows := 0
	batch := make([]benchRow, 256)
	for {
		st, err := f.Stat()
		require.NoError(tb, err)
		if st.Size() >= size {
			break
		}
		for i := range batch {
			n := rows + i
			batch[i] = benchRow{PromptID: fmt.Sprintf("id%09d", n), Messages: []benchMessage{
				{"user", fmt.Sprintf("question %d %s", n, filler[:n%len(filler)])},
				{"assistant", fmt.Sprintf("answer %d %s", n, filler)},
			}}
		}
		_, err = w.Write(batch)
		require.NoError(tb, err)
		rows += len(batch)
	}
	require.NoError(tb, w.Close())
	return rows
}

// TestScanSubprocess is the child of BenchmarkParquetScan1GB: it scans the
// file named by HANDBOOK_DATA_SCAN and prints its row count and peak RSS.
func TestScanSubprocess(t *testing.T) {
	path := os.Getenv("HANDBOOK_DATA_SCAN")
	if path == "" {
		t.Skip("run by BenchmarkParquetScan1GB")
	}
	src, err := OpenFile(path)
	require.NoError(t, err)
	n := 0
	require.NoError(t, src.Scan(context.Background(), func(_ int, r Row) error {
		if _, err := ParseRow(r, FormatMessages, ParseOptions{}); err != nil {
			return err
		}
		n++
		return nil
	}))
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	fmt.Printf("SCAN rows=%d maxrss_kb=%d\n", n, ru.Maxrss)
}

// BenchmarkParquetScan1GB writes a 1 GB synthetic Parquet file (nested
// messages column) and scans it in a child process, reporting the child's
// peak RSS. Recorded on the development machine: see doc.go.
// Run: go test ./data -run '^$' -bench ParquetScan1GB -benchtime 1x
func BenchmarkParquetScan1GB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.parquet")
	rows := writeSyntheticParquet(b, path, 1<<30)
	st, err := os.Stat(path)
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestScanSubprocess$", "-test.v")
		cmd.Env = append(os.Environ(), "HANDBOOK_DATA_SCAN="+path)
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, string(out))
		var n, rss int
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "SCAN ") {
				_, err := fmt.Sscanf(line, "SCAN rows=%d maxrss_kb=%d", &n, &rss)
				require.NoError(b, err)
			}
		}
		require.Equal(b, rows, n)
		b.ReportMetric(float64(rss)/1024, "peakRSS_MB")
		b.ReportMetric(float64(st.Size())/(1<<20), "file_MB")
		require.Less(b, rss, 300*1024, "peak RSS %s MB", strconv.Itoa(rss/1024))
	}
}
