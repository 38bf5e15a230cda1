package server

import (
	"slices"
	"strings"
	"testing"
)

func TestSmartModuleNames(t *testing.T) {
	for _, tc := range []struct {
		ref     string
		ok      bool
		version string
	}{
		{ref: "acme/json-filter", ok: true},
		{ref: "acme/json-filter@1.2.0", ok: true, version: "1.2.0"},
		{ref: "a1/b-2@0.0.1-rc.1", ok: true, version: "0.0.1-rc.1"},
		{ref: strings.Repeat("a", 63) + "/x", ok: true},
		{ref: ""},
		{ref: "json-filter"},
		{ref: "acme/"},
		{ref: "/json-filter"},
		{ref: "acme/json/filter"},
		{ref: "Acme/json-filter"},
		{ref: "acme/1filter"},
		{ref: "acme/-filter"},
		{ref: strings.Repeat("a", 64) + "/x"},
		{ref: "acme/x@"},
		{ref: "acme/x@1.0"},
		{ref: "acme/x@v1.0.0"},
		{ref: "acme/x@1.0.0+build"},
		{ref: "acme/x@01.0.0"},
		{ref: "acme/x@1.0.0-rc.01"},
		{ref: "acme/x@1.0.0-"},
		{ref: "acme/x@1.0.0-a..b"},
		{ref: "acme/x@1.0.0/2"},
	} {
		r, err := parseSmartModuleRef(tc.ref)
		if (err == nil) != tc.ok {
			t.Errorf("parse %q: %v, want ok=%v", tc.ref, err, tc.ok)
			continue
		}
		if err == nil && r.version != tc.version {
			t.Errorf("parse %q: version %q, want %q", tc.ref, r.version, tc.version)
		}
		if err != nil && !strings.Contains(err.Error(), "use") {
			t.Errorf("parse %q: %q does not say what to use", tc.ref, err)
		}
	}
}

// Versions order by semantic-version precedence (semver.org, item 11),
// not as text.
func TestSemverPrecedence(t *testing.T) {
	want := []string{"0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0"}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, compareSemver)
	if !slices.Equal(got, want) {
		t.Fatalf("sorted %v\nwant   %v", got, want)
	}
}
