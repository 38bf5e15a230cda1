// Package names holds the rules for the names users give to Spate objects,
// so that the control plane, the SPU and the CLI accept exactly the same ones.
package names

import (
	"errors"
	"fmt"
)

// MaxTopicLength is the longest topic name accepted.
const MaxTopicLength = 63

// ErrInvalid is wrapped by every error of this package.
var ErrInvalid = errors.New("invalid name")

// Topic checks a topic name: 1 to 63 characters, lower-case letters, digits
// and '-', starting and ending with a letter or digit (a DNS label, as in
// Fluvio). The error says what to change.
func Topic(name string) error {
	if name == "" {
		return fmt.Errorf("%w: topic name is empty", ErrInvalid)
	}
	if len(name) > MaxTopicLength {
		return fmt.Errorf("%w: topic name %q is %d characters long, at most %d are allowed", ErrInvalid, name, len(name), MaxTopicLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i != 0 && i != len(name)-1:
		default:
			return fmt.Errorf("%w: topic name %q: use lower-case letters, digits and '-' (not at either end)", ErrInvalid, name)
		}
	}
	return nil
}
