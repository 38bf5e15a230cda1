package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/spatehq/spate/smartmodule/examples/internal/jsonscan"
)

func TestFieldFindsTopLevelFieldsOnly(t *testing.T) {
	doc := []byte(` { "a" : {"level":[1,"}"]}, "lev\u0065l":"warn", "n": -12.5e3 ,"s":"q\"}","last":null} `)
	for _, tc := range []struct {
		name, want string
		found      bool
	}{
		{"a", `{"level":[1,"}"]}`, true},
		{"level", `"warn"`, true},
		{"n", `-12.5e3`, true},
		{"s", `"q\"}"`, true},
		{"last", `null`, true},
		{"x", ``, false},
	} {
		raw, found, err := jsonscan.Field(doc, tc.name)
		if err != nil || found != tc.found || string(raw) != tc.want {
			t.Errorf("Field(%q) = %q, %v, %v; want %q, %v", tc.name, raw, found, err, tc.want, tc.found)
		}
	}
	// A key is compared as it decodes, not as it is written.
	if _, found, _ := jsonscan.Field([]byte(`{"\n":1}`), `\n`); found {
		t.Error(`the key "\n" (a newline) matched the name \n (a backslash and an n)`)
	}
	if raw, found, _ := jsonscan.Field([]byte(`{"\\n":1}`), `\n`); !found || string(raw) != "1" {
		t.Error(`the key "\\n" did not match the name \n`)
	}
	if s, ok := jsonscan.String([]byte(`"q\"}"`)); !ok || string(s) != `q"}` {
		t.Errorf("String = %q, %v", s, ok)
	}
	if _, _, err := jsonscan.Field([]byte(`{"a":`), "a"); !errors.Is(err, jsonscan.ErrNotJSON) {
		t.Errorf("truncated object: %v", err)
	}
	if _, _, err := jsonscan.Field([]byte(`[1]`), "a"); !errors.Is(err, jsonscan.ErrNotObject) {
		t.Errorf("array: %v", err)
	}
}

func TestElementsYieldsEachElementsText(t *testing.T) {
	var got []string
	err := jsonscan.Elements([]byte(`[ 1, "two", {"three":[3]} ,[4], null ]`), func(raw []byte) error {
		got = append(got, string(raw))
		return nil
	})
	want := []string{`1`, `"two"`, `{"three":[3]}`, `[4]`, `null`}
	if err != nil || len(got) != len(want) {
		t.Fatalf("Elements = %q, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("element %d = %q, want %q", i, got[i], want[i])
		}
	}
	if err := jsonscan.Elements([]byte(`{}`), nil); !errors.Is(err, jsonscan.ErrNotArray) {
		t.Errorf("object: %v", err)
	}
	if err := jsonscan.Elements([]byte(`[]`), nil); err != nil {
		t.Errorf("empty array: %v", err)
	}
}

func TestFieldAllocatesNothing(t *testing.T) {
	doc := []byte(`{"ts":1700000000,"level":"error","msg":"disk full","tags":["a","b"]}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, found, err := jsonscan.Field(doc, "msg"); !found || err != nil {
			t.Fatal(found, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Field allocates %v times per call", allocs)
	}
}

func TestItAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	for _, doc := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `{"a":-0.5e+3}`, `{"a":1E5}`,
		`{"a":1,}`, `{"a"}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":tru}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":1} x`, `{"a":1}}`, `{a:1}`, `{"a":[1,]}`,
		`{"a":[1 2]}`, `{"a" 1}`, `{"a":"b",}`, `{"a":"`, `{`, ``, `[`, `"x"`, `[1]`, `{"a":[]} `,
		// Long strings, which are scanned 8 bytes at a time.
		`{"a":"0123456789abcdef\"x"}`, `{"a":"0123456\n789abcdefgh"}`, "{\"a\":\"01234567\x1f89abcdefgh\"}",
		`{"a":"ééééééééé€€€€€€"}`, `{"a":"0123456789abcdef`, `{"a":"0123456789abcdef\`, `{"a":"0123456789abcde\q"}`,
		// Deeper than the scanner's stack on the stack, and deeper than
		// encoding/json's limit.
		`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		`{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	} {
		_, _, err := jsonscan.Field([]byte(doc), "a")
		valid := json.Valid([]byte(doc))
		switch {
		case valid && errors.Is(err, jsonscan.ErrNotJSON):
			t.Errorf("%q: valid JSON refused: %v", doc, err)
		case !valid && !errors.Is(err, jsonscan.ErrNotJSON):
			t.Errorf("%q: invalid JSON accepted (%v)", doc, err)
		}
	}
}

// FuzzField holds Field and Elements to encoding/json's idea of validity,
// and Field to its idea of a top-level field's value.
func FuzzField(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,{"a":"x"}]}`, `[1,"a",null]`, `{"a":"\u00e9"}`, `-1.5e3`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		valid := json.Valid(doc)
		raw, found, err := jsonscan.Field(doc, "a")
		if valid == errors.Is(err, jsonscan.ErrNotJSON) {
			t.Fatalf("Field(%q): %v, but json.Valid = %v", doc, err, valid)
		}
		if err := jsonscan.Elements(doc, func([]byte) error { return nil }); valid == errors.Is(err, jsonscan.ErrNotJSON) {
			t.Fatalf("Elements(%q): %v, but json.Valid = %v", doc, err, valid)
		}
		var obj map[string]json.RawMessage
		if err != nil || json.Unmarshal(doc, &obj) != nil {
			return
		}
		want, ok := obj["a"]
		if ok != found || found && !bytes.Equal(bytes.TrimSpace(want), raw) {
			t.Fatalf("Field(%q) = %q, %v; encoding/json says %q, %v", doc, raw, found, want, ok)
		}
	})
}

func BenchmarkField(b *testing.B) {
	doc := []byte(`{"ts":1700000000123,"level":"error","msg":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, found, err := jsonscan.Field(doc, "level"); !found || err != nil {
			b.Fatal(found, err)
		}
	}
}
