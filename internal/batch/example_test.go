package batch_test

import (
	"fmt"
	"log"

	"github.com/spatehq/spate/internal/batch"
)

func Example() {
	// A producer appends records to a Builder and builds a batch.
	bld := batch.NewBuilder(batch.Zstd)
	bld.Append(batch.Record{Timestamp: 1_700_000_000_000, Key: []byte("user-1"), Value: []byte("signed up")})
	bld.Append(batch.Record{Timestamp: 1_700_000_000_250, Key: []byte("user-1"), Value: []byte("logged in"),
		Headers: []batch.RecordHeader{{Key: "trace-id", Value: []byte("4bf92f35")}}})
	b, err := bld.Build()
	if err != nil {
		log.Fatal(err)
	}
	bld.Reset() // ready for the next batch

	// The SPU validates the batch and gives it its offsets.
	if _, err := batch.Validate(b); err != nil {
		log.Fatal(err)
	}
	batch.SetBaseOffset(b, 42)

	// A consumer decodes it.
	recs, err := batch.Decode(b, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("%d %d %s %s %d header(s)\n", r.Offset, r.Timestamp, r.Key, r.Value, len(r.Headers))
	}
	// Output:
	// 42 1700000000000 user-1 signed up 0 header(s)
	// 43 1700000000250 user-1 logged in 1 header(s)
}
