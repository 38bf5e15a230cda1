package server

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultSmartModuleVersion is the version of a module created without one.
const DefaultSmartModuleVersion = "0.1.0"

// maxSmartModuleSegment is the longest group or name of a SmartModule.
const maxSmartModuleSegment = 63

// maxVersionLength bounds a version's length.
const maxVersionLength = 64

// smRef is a reference to a SmartModule: "group/name", with a version or
// without (the highest).
type smRef struct {
	name    string // "group/name"
	version string // "" for the highest
}

// parseSmartModuleRef parses "group/name" or "group/name@version".
func parseSmartModuleRef(s string) (smRef, error) {
	name, version, hasVersion := strings.Cut(s, "@")
	if err := checkSmartModuleName(name); err != nil {
		return smRef{}, err
	}
	if hasVersion {
		if err := checkVersion(version); err != nil {
			return smRef{}, err
		}
	}
	return smRef{name: name, version: version}, nil
}

// checkSmartModuleName checks "group/name": each a lower-case letter
// followed by up to 62 lower-case letters, digits and '-'.
func checkSmartModuleName(s string) error {
	if s == "" {
		return errors.New("SmartModule name is empty: use group/name, such as acme/json-filter")
	}
	group, name, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("SmartModule name %q: use group/name, such as acme/%s", s, s)
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("SmartModule name %q: use group/name, with one '/'", s)
	}
	for _, seg := range []struct{ what, s string }{{"group", group}, {"name", name}} {
		if err := checkSegment(seg.what, seg.s); err != nil {
			return fmt.Errorf("SmartModule name %q: %w", s, err)
		}
	}
	return nil
}

func checkSegment(what, s string) error {
	if s == "" {
		return fmt.Errorf("the %s is empty; use group/name", what)
	}
	if len(s) > maxSmartModuleSegment {
		return fmt.Errorf("the %s is %d characters long; use at most %d", what, len(s), maxSmartModuleSegment)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case (c >= '0' && c <= '9' || c == '-') && i > 0:
		default:
			return fmt.Errorf("the %s %q: use lower-case letters, digits and '-', starting with a letter", what, s)
		}
	}
	return nil
}

// semver is a parsed semantic version (https://semver.org), without build
// metadata.
type semver struct {
	major, minor, patch uint64
	pre                 []string // dot-separated pre-release identifiers
}

// checkVersion checks a semantic version: MAJOR.MINOR.PATCH with an
// optional -PRERELEASE. Build metadata (+...) is refused: versions that
// differ only in it would be equal, and versions never change.
func checkVersion(s string) error {
	_, err := parseSemver(s)
	return err
}

func parseSemver(s string) (semver, error) {
	bad := func(why string) (semver, error) {
		return semver{}, fmt.Errorf("version %q: %s; use a semantic version such as 1.2.0 or 2.0.0-rc.1", s, why)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > maxVersionLength {
		return bad(fmt.Sprintf("longer than %d characters", maxVersionLength))
	}
	if strings.Contains(s, "+") {
		return bad("build metadata (+...) is not allowed")
	}
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return bad("want three numbers MAJOR.MINOR.PATCH")
	}
	var nums [3]uint64
	for i, p := range parts {
		n, err := numeric(p)
		if err != nil {
			return bad(err.Error())
		}
		nums[i] = n
	}
	v := semver{major: nums[0], minor: nums[1], patch: nums[2]}
	if hasPre {
		if pre == "" {
			return bad("empty pre-release after '-'")
		}
		for id := range strings.SplitSeq(pre, ".") {
			if id == "" {
				return bad("empty pre-release identifier")
			}
			for i := 0; i < len(id); i++ {
				c := id[i]
				if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
					return bad(fmt.Sprintf("pre-release identifier %q: use letters, digits and '-'", id))
				}
			}
			if isDigits(id) && len(id) > 1 && id[0] == '0' {
				return bad(fmt.Sprintf("numeric pre-release identifier %q has a leading zero", id))
			}
			v.pre = append(v.pre, id)
		}
	}
	return v, nil
}

func numeric(p string) (uint64, error) {
	if !isDigits(p) {
		return 0, fmt.Errorf("%q is not a number", p)
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", p)
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", p)
	}
	return n, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// compareSemver orders versions by semantic-version precedence: numbers,
// then a release above its pre-releases, then pre-release identifiers
// (numeric ones numerically and below alphanumeric ones, fewer below
// more). Unparsable versions (none are stored) sort below every other.
func compareSemver(a, b string) int {
	va, errA := parseSemver(a)
	vb, errB := parseSemver(b)
	if errA != nil || errB != nil {
		return cmp.Compare(boolInt(errA == nil), boolInt(errB == nil))
	}
	if c := cmp.Or(cmp.Compare(va.major, vb.major), cmp.Compare(va.minor, vb.minor), cmp.Compare(va.patch, vb.patch)); c != 0 {
		return c
	}
	switch {
	case len(va.pre) == 0 && len(vb.pre) == 0:
		return 0
	case len(va.pre) == 0:
		return 1
	case len(vb.pre) == 0:
		return -1
	}
	for i := 0; i < len(va.pre) && i < len(vb.pre); i++ {
		x, y := va.pre[i], vb.pre[i]
		xn, yn := isDigits(x), isDigits(y)
		var c int
		switch {
		case xn && yn:
			c = cmp.Or(cmp.Compare(len(x), len(y)), strings.Compare(x, y))
		case xn:
			c = -1
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(va.pre), len(vb.pre))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
