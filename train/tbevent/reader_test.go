package tbevent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// event is the subset of tensorflow.Event the tests read back.
type event struct {
	WallTime     float64
	Step         int64
	FileVersion  string
	SourceWriter string
	Values       []value
}

// value is one tensorflow.Summary.Value holding a simple_value.
type value struct {
	Tag         string
	SimpleValue float32
}

// readEvents parses a whole event file, checking both CRCs of every record.
func readEvents(r io.Reader) ([]event, error) {
	var events []event
	for i := 0; ; i++ {
		var header [12]byte
		if _, err := io.ReadFull(r, header[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return events, nil
			}
			return nil, fmt.Errorf("record %d header: %w", i, err)
		}
		if got, want := binary.LittleEndian.Uint32(header[8:]), maskedCRC(header[:8]); got != want {
			return nil, fmt.Errorf("record %d: length crc %#x, want %#x", i, got, want)
		}
		n := binary.LittleEndian.Uint64(header[:8])
		if n > 1<<20 {
			return nil, fmt.Errorf("record %d: implausible length %d", i, n)
		}
		data := make([]byte, n+4)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("record %d data: %w", i, err)
		}
		if got, want := binary.LittleEndian.Uint32(data[n:]), maskedCRC(data[:n]); got != want {
			return nil, fmt.Errorf("record %d: data crc %#x, want %#x", i, got, want)
		}
		ev, err := parseEvent(data[:n])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		events = append(events, ev)
	}
}

// parseEvent decodes the Event fields the tests need, skipping any others.
func parseEvent(b []byte) (event, error) {
	var ev event
	err := walk(b, func(num protowire.Number, typ protowire.Type, v uint64, sub []byte) error {
		switch {
		case num == eventWallTime && typ == protowire.Fixed64Type:
			ev.WallTime = math.Float64frombits(v)
		case num == eventStep && typ == protowire.VarintType:
			ev.Step = int64(v)
		case num == eventFileVersion && typ == protowire.BytesType:
			ev.FileVersion = string(sub)
		case num == eventSourceMetadata && typ == protowire.BytesType:
			return walk(sub, func(num protowire.Number, typ protowire.Type, _ uint64, sub []byte) error {
				if num == sourceWriter && typ == protowire.BytesType {
					ev.SourceWriter = string(sub)
				}
				return nil
			})
		case num == eventSummary && typ == protowire.BytesType:
			return walk(sub, func(num protowire.Number, typ protowire.Type, _ uint64, sub []byte) error {
				if num != summaryValue || typ != protowire.BytesType {
					return nil
				}
				ev.Values = append(ev.Values, value{})
				return walk(sub, func(num protowire.Number, typ protowire.Type, v uint64, sub []byte) error {
					last := &ev.Values[len(ev.Values)-1]
					switch {
					case num == valueTag && typ == protowire.BytesType:
						last.Tag = string(sub)
					case num == valueSimpleValue && typ == protowire.Fixed32Type:
						last.SimpleValue = math.Float32frombits(uint32(v))
					}
					return nil
				})
			})
		}
		return nil
	})
	return ev, err
}

// walk calls visit for each field of the message b: v holds varint and fixed values, sub the bytes of
// length-delimited ones.
func walk(b []byte, visit func(num protowire.Number, typ protowire.Type, v uint64, sub []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var sub []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			v = uint64(v32)
		case protowire.BytesType:
			sub, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := visit(num, typ, v, sub); err != nil {
			return err
		}
	}
	return nil
}
