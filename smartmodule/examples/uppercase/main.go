// Command uppercase is a SmartModule map that upper-cases each record's
// value and keeps its key.
package main

import (
	"bytes"
	"unicode/utf8"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/mapper"
)

// buf is reused from record to record: the SDK copies what the function
// returns before calling it again.
var buf []byte

func init() {
	mapper.Register(func(r *smartmodule.Record) (smartmodule.KV, error) {
		buf = appendUpper(buf[:0], r.Value)
		return smartmodule.KV{Key: r.Key, Value: buf}, nil
	})
}

// appendUpper appends s upper-cased to dst, without allocating for ASCII.
func appendUpper(dst, s []byte) []byte {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return append(dst, bytes.ToUpper(s)...)
		}
	}
	for _, c := range s {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func main() {}
