package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// TestStopFlagChangesNothing runs the SDK's examples rewritten with a stop
// flag and as they are (the fallback runtime, with wazero's own time
// limit): they must emit the same records and fail the same way.
func TestStopFlagChangesNothing(t *testing.T) {
	ctx := context.Background()
	newEngine := func(noRewrite bool) *Engine {
		e, err := New(ctx, Config{CacheDir: smtest.WazeroCacheDir(t)})
		if err != nil {
			t.Fatal(err)
		}
		e.noRewrite = noRewrite
		t.Cleanup(func() { e.Close(ctx) })
		return e
	}
	rewritten, plain := newEngine(false), newEngine(true)
	values := []string{`{"level":"error","msg":"a","n":[1,2,3]}`, `{"level":"info","n":[]}`, `7`, `[1,"two",{"three":3}]`, `not json`, `{"level":"error","msg":"ünïcode"}`}
	var many []string
	for i := range 3000 {
		many = append(many, fmt.Sprintf(`{"level":%q,"n":%d}`, []string{"info", "error"}[i%7/6], i))
	}
	for _, tt := range []struct {
		name    string
		params  []string
		acc     string
		batches [][]string
	}{
		{"keepall", nil, "", [][]string{values, many}},
		{"jsonfilter", []string{"field", "level", "equals", "error"}, "", [][]string{values[:2], many, values}},
		{"jsonfilter", []string{"field", "level"}, "", [][]string{values}}, // init fails
		{"sum", nil, "100", [][]string{{"1", "2"}, {"3", "40"}, {"x"}}},
		{"flatten", nil, "", [][]string{{`[1,2,3]`, `[]`, `[{"a":1}]`}, values}},
		{"uppercase", nil, "", [][]string{values, many}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wasm := smtest.Example(t, tt.name)
			run := func(e *Engine) string {
				m, err := e.Compile(ctx, wasm)
				if err != nil {
					t.Fatal(err)
				}
				if m.stoppable == e.noRewrite {
					t.Fatalf("stoppable %v with noRewrite %v", m.stoppable, e.noRewrite)
				}
				sp := Spec{Module: m, Name: tt.name}
				for i := 0; i+1 < len(tt.params); i += 2 {
					sp.Params = append(sp.Params, abi.Param{Name: tt.params[i], Value: tt.params[i+1]})
				}
				if tt.acc != "" {
					sp.InitialAccumulator = []byte(tt.acc)
				}
				c, err := e.NewChain(ctx, sp)
				if err != nil {
					return "NewChain: " + err.Error()
				}
				defer c.Close(ctx)
				var b strings.Builder
				off := int64(0)
				for _, vs := range tt.batches {
					in := make([]batch.Record, len(vs))
					for i, v := range vs {
						in[i] = batch.Record{Offset: off, Timestamp: 1000 + off, Key: fmt.Appendf(nil, "k%d", off), Value: []byte(v)}
						off++
					}
					out, err := c.Process(ctx, in, nil)
					for _, r := range out {
						fmt.Fprintf(&b, "%d:%s=%s\n", r.Offset, r.Key, r.Value)
					}
					if err != nil {
						fmt.Fprintf(&b, "error: %v\n", err)
						break
					}
				}
				return b.String()
			}
			got, want := run(rewritten), run(plain)
			if got != want {
				t.Fatalf("with the stop flag:\n%.2000s\nwithout:\n%.2000s", got, want)
			}
			t.Logf("%d bytes of identical output", len(got))
		})
	}
}
