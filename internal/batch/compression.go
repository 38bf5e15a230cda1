package batch

import "fmt"

// Compression is the codec of a batch's records section, stored in the low
// three bits of the attributes.
type Compression int8

// The codecs. Their values are part of the on-disk format.
const (
	None   Compression = 0
	Gzip   Compression = 1
	Snappy Compression = 2
	LZ4    Compression = 3
	Zstd   Compression = 4
)

var compressionNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

// Valid reports whether c is a known codec.
func (c Compression) Valid() bool { return c >= 0 && int(c) < len(compressionNames) }

// String returns the codec's lower-case name, as ParseCompression accepts it.
func (c Compression) String() string {
	if !c.Valid() {
		return fmt.Sprintf("compression(%d)", int8(c))
	}
	return compressionNames[c]
}

// ParseCompression returns the codec named s: none, gzip, snappy, lz4 or zstd.
// The empty string means none.
func ParseCompression(s string) (Compression, error) {
	if s == "" {
		return None, nil
	}
	for i, n := range compressionNames {
		if n == s {
			return Compression(i), nil
		}
	}
	return None, fmt.Errorf("unknown compression %q: use none, gzip, snappy, lz4 or zstd", s)
}
