// Command sum is a SmartModule aggregate that adds up records whose values
// are decimal integers and emits the running sum, as decimal text, in place
// of each record. The sum starts at the initial accumulator when one is
// given (decimal text), else at 0. A value that is not an integer stops the
// stream with an error naming its offset.
package main

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/aggregate"
)

func init() {
	smartmodule.Init(func(p smartmodule.Params) error {
		if acc, ok := p.Accumulator(); ok {
			if _, err := parse(acc); err != nil {
				return fmt.Errorf("initial accumulator %q is not an integer", acc)
			}
		}
		return nil
	})
	aggregate.Register(func(acc []byte, r *smartmodule.Record) ([]byte, error) {
		total, err := parse(acc)
		if err != nil {
			return nil, fmt.Errorf("accumulator %q is not an integer", acc)
		}
		n, err := parse(r.Value)
		if err != nil {
			return nil, fmt.Errorf("value %q is not an integer", r.Value)
		}
		return strconv.AppendInt(acc[:0], total+n, 10), nil
	})
}

// parse reads a decimal integer, allowing surrounding space; empty is 0.
func parse(b []byte) (int64, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, nil
	}
	if len(b) > 18 {
		// Long numbers may overflow: let strconv decide.
		return strconv.ParseInt(string(b), 10, 64)
	}
	neg := b[0] == '-'
	if neg || b[0] == '+' {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, strconv.ErrSyntax
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

func main() {}
