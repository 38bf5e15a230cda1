package transforms

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spatehq/spate/client"
)

func TestParseReadsAChainInOrderWithParametersInOrder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "up.wasm"), []byte("WASM"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Parse([]byte(`
transforms:
  - uses: acme/json-filter@1.0.0
    kind: filter
    with:
      field: level
      equals: error
      limit: 10
  - path: up.wasm
  - uses: acme/sum
    initial: "0"
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.Transform{
		{Name: "acme/json-filter@1.0.0", Kind: "filter", Params: []client.TransformParam{{Name: "field", Value: "level"}, {Name: "equals", Value: "error"}, {Name: "limit", Value: "10"}}},
		{Wasm: []byte("WASM")},
		{Name: "acme/sum", InitialAccumulator: []byte("0")},
	}
	if len(got) != len(want) {
		t.Fatalf("Parse = %+v; want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Kind != w.Kind || string(g.Wasm) != string(w.Wasm) || string(g.InitialAccumulator) != string(w.InitialAccumulator) ||
			len(g.Params) != len(w.Params) || (w.InitialAccumulator != nil) != (g.InitialAccumulator != nil) {
			t.Fatalf("transform %d = %+v; want %+v", i+1, g, w)
		}
		for j := range w.Params {
			if g.Params[j] != w.Params[j] {
				t.Fatalf("transform %d parameter %d = %+v; want %+v", i+1, j+1, g.Params[j], w.Params[j])
			}
		}
	}
}

func TestParseSaysWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ yaml, says string }{
		{"transforms: []", "lists no transforms"},
		{"transforms:\n  - kind: filter", "transform 1: give uses"},
		{"transforms:\n  - uses: a/b\n    path: x.wasm", "uses or path, not both"},
		{"transforms:\n  - uses: a/b\n  - path: missing.wasm", "transform 2"},
		{"transforms:\n  - uses: a/b\n    with: [x]", "name: value"},
		{"transforms:\n  - uses: a/b\n    with: {x: [1]}", `parameter "x"`},
		{"transforms:\n  - usse: a/b", "usse"},
	} {
		_, err := Parse([]byte(tc.yaml), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Parse(%q) = %v; want an error saying %q", tc.yaml, err, tc.says)
		}
	}
}
