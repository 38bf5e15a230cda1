// Package format renders records and tables for the spate CLI.
package format

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spatehq/spate/client"
)

// Template renders a record from a template such as
// '{{partition}}:{{offset}} {{key}}={{value}} {{time}}'. The placeholders are
// {{topic}}, {{partition}}, {{offset}}, {{key}}, {{value}}, {{time}} (RFC 3339
// with milliseconds) and {{timestamp}} (Unix milliseconds).
type Template struct {
	parts []part
}

type part struct {
	literal string
	field   string // empty for a literal
}

var fields = map[string]bool{"topic": true, "partition": true, "offset": true, "key": true, "value": true, "time": true, "timestamp": true}

// ParseTemplate compiles a template, refusing unknown placeholders.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{}
	for len(s) > 0 {
		i := strings.Index(s, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{literal: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{literal: s[:i]})
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("format %q: a {{ has no closing }}", s)
		}
		name := strings.TrimSpace(s[i+2 : i+j])
		if !fields[name] {
			return nil, fmt.Errorf("format: unknown placeholder {{%s}}: use topic, partition, offset, key, value, time or timestamp", name)
		}
		t.parts = append(t.parts, part{field: name})
		s = s[i+j+2:]
	}
	return t, nil
}

// Append appends the rendering of r to dst.
func (t *Template) Append(dst []byte, topic string, r client.Record) []byte {
	for _, p := range t.parts {
		switch p.field {
		case "":
			dst = append(dst, p.literal...)
		case "topic":
			dst = append(dst, topic...)
		case "partition":
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case "offset":
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case "key":
			if r.Key == nil {
				dst = append(dst, "null"...)
			} else {
				dst = append(dst, r.Key...)
			}
		case "value":
			dst = append(dst, r.Value...)
		case "time":
			dst = r.Timestamp.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
		case "timestamp":
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		}
	}
	return dst
}

// JSONRecord is how `-O json` prints a record: one JSON object a line. Key
// and value are strings when they are valid UTF-8, else base64 with
// key_encoding/value_encoding "base64".
type JSONRecord struct {
	Topic         string    `json:"topic"`
	Partition     int32     `json:"partition"`
	Offset        int64     `json:"offset"`
	Timestamp     time.Time `json:"timestamp"`
	Key           *string   `json:"key"`
	KeyEncoding   string    `json:"key_encoding,omitempty"`
	Value         string    `json:"value"`
	ValueEncoding string    `json:"value_encoding,omitempty"`
}

func encode(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// WriteJSON writes r as one line of JSON.
func WriteJSON(w io.Writer, topic string, r client.Record) error {
	jr := JSONRecord{Topic: topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC()}
	if r.Key != nil {
		k, enc := encode(r.Key)
		jr.Key, jr.KeyEncoding = &k, enc
	}
	jr.Value, jr.ValueEncoding = encode(r.Value)
	b, err := json.Marshal(jr)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
