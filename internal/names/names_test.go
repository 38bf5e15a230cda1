package names_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spatehq/spate/internal/names"
)

func TestTopic(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		ok    bool
	}{
		{name: "simple", topic: "events", ok: true},
		{name: "digits and dashes", topic: "clicks-2026-eu", ok: true},
		{name: "longest", topic: strings.Repeat("a", names.MaxTopicLength), ok: true},
		{name: "empty", topic: ""},
		{name: "too long", topic: strings.Repeat("a", names.MaxTopicLength+1)},
		{name: "upper case", topic: "Events"},
		{name: "leading dash", topic: "-events"},
		{name: "trailing dash", topic: "events-"},
		{name: "slash", topic: "a/b"},
		{name: "dot", topic: "a.b"},
		{name: "dot dot", topic: ".."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := names.Topic(tt.topic)
			if tt.ok && err != nil {
				t.Fatalf("Topic(%q) = %v, want nil", tt.topic, err)
			}
			if !tt.ok && !errors.Is(err, names.ErrInvalid) {
				t.Fatalf("Topic(%q) = %v, want ErrInvalid", tt.topic, err)
			}
		})
	}
}
