package wandb

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the wandb_internal records written here (wandb/proto/wandb_internal.proto and
// wandb_base.proto, checked against wandb 0.31.0's descriptors by tools/oracle/wandb_check.py).
const (
	recordNum       protowire.Number = 1
	recordHistory   protowire.Number = 2
	recordSummary   protowire.Number = 3
	recordConfig    protowire.Number = 5
	recordFiles     protowire.Number = 6
	recordMetric    protowire.Number = 12
	recordRun       protowire.Number = 17
	recordExit      protowire.Number = 18
	recordHeader    protowire.Number = 21
	recordInfo      protowire.Number = 200 // _RecordInfo
	infoStreamID    protowire.Number = 1
	headerVersion   protowire.Number = 1 // VersionInfo
	versionProducer protowire.Number = 1
	versionMinCons  protowire.Number = 2

	runID          protowire.Number = 1
	runEntity      protowire.Number = 2
	runProject     protowire.Number = 3
	runConfig      protowire.Number = 4
	runGroup       protowire.Number = 6
	runJobType     protowire.Number = 7
	runDisplayName protowire.Number = 8
	runNotes       protowire.Number = 9
	runTags        protowire.Number = 10
	runHost        protowire.Number = 13
	runStartTime   protowire.Number = 17
	tsSeconds      protowire.Number = 1
	tsNanos        protowire.Number = 2

	configUpdate  protowire.Number = 1 // ConfigRecord.update, SummaryRecord.update, HistoryRecord.item
	itemKey       protowire.Number = 1
	itemNestedKey protowire.Number = 2
	itemValueJSON protowire.Number = 16
	historyStep   protowire.Number = 2
	stepNum       protowire.Number = 1

	metricName       protowire.Number = 1
	metricGlobName   protowire.Number = 2
	metricStepMetric protowire.Number = 4
	metricOptions    protowire.Number = 6
	optionsStepSync  protowire.Number = 1
	optionsDefined   protowire.Number = 3

	filesItem   protowire.Number = 1
	filePath    protowire.Number = 1
	filePolicy  protowire.Number = 2
	exitCode    protowire.Number = 1
	exitRuntime protowire.Number = 2
)

// FilesItem.policy: END uploads the file when the run finishes.
const policyEnd = 1

// item is one key/value of a config, summary or history record. A nested key is written as
// nested_key, as wandb writes history and summary rows; a plain key as key, as it writes config.
type item struct {
	key    string
	nested bool
	json   string
}

func appendItem(b []byte, field protowire.Number, it item) []byte {
	var m []byte
	if it.nested {
		m = protowire.AppendTag(m, itemNestedKey, protowire.BytesType)
	} else {
		m = protowire.AppendTag(m, itemKey, protowire.BytesType)
	}
	m = protowire.AppendString(m, it.key)
	m = protowire.AppendTag(m, itemValueJSON, protowire.BytesType)
	m = protowire.AppendString(m, it.json)
	return appendMessage(b, field, m)
}

func appendMessage(b []byte, field protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendTimestamp(b []byte, field protowire.Number, t time.Time) []byte {
	var m []byte
	m = appendVarint(m, tsSeconds, uint64(t.Unix()))
	m = appendVarint(m, tsNanos, uint64(t.Nanosecond()))
	return appendMessage(b, field, m)
}

// The .wandb file is a LevelDB log (github.com/google/leveldb doc/log_format.md) after a 7-byte
// W&B header: 32 KiB blocks of chunks, each with a 7-byte header (checksum, length, type); a
// record that does not fit the block is split into FIRST/MIDDLE/LAST chunks and a block tail
// shorter than a chunk header is zero-filled. W&B checksums a chunk with the IEEE CRC-32 of its
// type byte followed by its data (not LevelDB's masked CRC-32C).
const (
	blockSize   = 32768
	chunkHeader = 7
	chunkFull   = 1
	chunkFirst  = 2
	chunkMiddle = 3
	chunkLast   = 4
)

// fileHeader is ":W&B", the magic 0xBEE1 little-endian, and store version 0.
var fileHeader = []byte{':', 'W', '&', 'B', 0xE1, 0xBE, 0}

// logWriter frames records into the LevelDB log.
type logWriter struct {
	w   *bufio.Writer
	pos int64 // bytes written so far, header included
}

func newLogWriter(w io.Writer) (*logWriter, error) {
	l := &logWriter{w: bufio.NewWriter(w)}
	if _, err := l.w.Write(fileHeader); err != nil {
		return nil, err
	}
	l.pos = int64(len(fileHeader))
	return l, nil
}

func (l *logWriter) write(record []byte) error {
	first := true
	for {
		left := blockSize - int(l.pos%blockSize)
		if left < chunkHeader {
			if _, err := l.w.Write(make([]byte, left)); err != nil {
				return err
			}
			l.pos += int64(left)
			left = blockSize
		}
		n := min(len(record), left-chunkHeader)
		last := n == len(record)
		typ := byte(chunkMiddle)
		switch {
		case first && last:
			typ = chunkFull
		case first:
			typ = chunkFirst
		case last:
			typ = chunkLast
		}
		var h [chunkHeader]byte
		crc := crc32.Update(crc32.ChecksumIEEE([]byte{typ}), crc32.IEEETable, record[:n])
		binary.LittleEndian.PutUint32(h[0:4], crc)
		binary.LittleEndian.PutUint16(h[4:6], uint16(n))
		h[6] = typ
		if _, err := l.w.Write(h[:]); err != nil {
			return err
		}
		if _, err := l.w.Write(record[:n]); err != nil {
			return err
		}
		l.pos += int64(chunkHeader + n)
		record, first = record[n:], false
		if last {
			return nil
		}
	}
}

func (l *logWriter) flush() error { return l.w.Flush() }
