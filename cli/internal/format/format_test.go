package format_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client"
)

func TestTemplate(t *testing.T) {
	rec := client.Record{Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(1700000000123)}
	tests := []struct {
		name     string
		template string
		record   client.Record
		want     string
		err      string
	}{
		{name: "every field", template: "{{topic}} {{partition}}:{{offset}} {{key}}={{value}} {{time}} {{timestamp}}", record: rec, want: "t 2:41 k=v 2023-11-14T22:13:20.123Z 1700000000123"},
		{name: "spaces inside braces", template: "{{ value }}", record: rec, want: "v"},
		{name: "null key", template: "{{key}}", record: client.Record{}, want: "null"},
		{name: "literal only", template: "x", record: rec, want: "x"},
		{name: "unknown placeholder", template: "{{nope}}", err: "unknown placeholder"},
		{name: "unclosed", template: "{{value", err: "no closing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := format.ParseTemplate(tt.template)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseTemplate(%q) = %v, want error with %q", tt.template, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(tmpl.Append(nil, "t", tt.record)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteJSONEncodesBinaryAsBase64(t *testing.T) {
	var buf bytes.Buffer
	if err := format.WriteJSON(&buf, "t", client.Record{Value: []byte{0xff, 0x00}, Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	var got format.JSONRecord
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Value != "/wA=" || got.ValueEncoding != "base64" || *got.Key != "k" || got.KeyEncoding != "" {
		t.Fatalf("got %+v", got)
	}
}
