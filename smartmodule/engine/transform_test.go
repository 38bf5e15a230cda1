package engine_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/engine"
)

// stored builds a batch of values at base offset base with codec c, as the
// SPU stores it.
func stored(t *testing.T, c batch.Compression, base int64, values ...string) []byte {
	t.Helper()
	b := batch.NewBuilder(c)
	for _, r := range records(base, values...) {
		b.Append(r)
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	batch.SetBaseOffset(out, base)
	batch.SetLeaderEpoch(out, 3)
	return out
}

// describe writes each batch of b as "[base..last derived? records]".
func describe(t *testing.T, b []byte) string {
	t.Helper()
	s := ""
	for len(b) > 0 {
		first, h, rest, err := batch.Next(b)
		if err != nil {
			t.Fatalf("output: %v", err)
		}
		recs, err := batch.Decode(first, nil)
		if err != nil {
			t.Fatalf("output: %v", err)
		}
		kind := "stored"
		if h.Derived() {
			kind = "derived"
		}
		s += fmt.Sprintf("[%d..%d %s %s epoch %d: %s]", h.BaseOffset, h.LastOffset(), kind, h.Compression(), h.LeaderEpoch, show(recs))
		b = rest
	}
	return s
}

func TestTransformConsume(t *testing.T) {
	c, err := shared(t).NewChain(ctx, spec(t, shared(t), "filter", "contains=x"), spec(t, shared(t), "split"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var in []byte
	in = append(in, stored(t, batch.Zstd, 10, "x1", "x2,x3", "no")...) // 10..12, read from 11
	in = append(in, stored(t, batch.None, 13, "no", "no")...)          // nothing kept: no batch
	in = append(in, stored(t, batch.LZ4, 15, "a", "xb", "c")...)
	prefix := []byte("already in dst")
	out, err := c.TransformConsume(ctx, prefix, in, 11)
	if err != nil {
		t.Fatal(err)
	}
	if string(out[:len(prefix)]) != string(prefix) {
		t.Fatal("TransformConsume did not append to dst")
	}
	got := describe(t, out[len(prefix):])
	want := "[10..12 derived none epoch 3: 11:null=x2 11:null=x3]" +
		"[15..17 derived none epoch 3: 16:null=xb]"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// Timestamps and headers are the stored records'.
	recs, _ := batch.DecodeAll(out[len(prefix):], nil)
	for _, r := range recs {
		if r.Timestamp != 1000+r.Offset || string(r.Headers[0].Value) != fmt.Sprint(r.Offset) {
			t.Errorf("record at %d: timestamp %d, headers %v", r.Offset, r.Timestamp, r.Headers)
		}
	}

	// Batches that end below from are skipped; nothing kept, nothing sent.
	out, err = c.TransformConsume(ctx, nil, in, 18)
	if err != nil || len(out) != 0 {
		t.Fatalf("from past the end: %q, %v; want nothing", out, err)
	}
}

func TestTransformConsumeRefusesBrokenBatches(t *testing.T) {
	c := chain(t, shared(t), "filter")
	b := stored(t, batch.None, 0, "a")
	b[len(b)-1] ^= 1
	_, err := c.TransformConsume(ctx, nil, b, 0)
	if !errors.Is(err, batch.ErrBadCRC) {
		t.Fatalf("TransformConsume: %v, want batch.ErrBadCRC", err)
	}
}

func TestTransformsRefuseDerivedBatches(t *testing.T) {
	c := chain(t, shared(t), "filter")
	bld := batch.NewBuilder(batch.None)
	bld.AppendAt(records(0, "a")[0], 0)
	derived, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TransformProduce(ctx, derived); !errors.Is(err, batch.ErrDerived) || !errors.Is(err, batch.ErrCorrupt) {
		t.Fatalf("TransformProduce of a derived batch: %v, want ErrCorrupt and ErrDerived", err)
	}
	if _, err := c.TransformConsume(ctx, nil, derived, 0); !errors.Is(err, batch.ErrDerived) {
		t.Fatalf("TransformConsume of a derived batch: %v, want ErrDerived", err)
	}
}

func TestTransformConsumeErrorNamesTheStoredOffset(t *testing.T) {
	c := chain(t, shared(t), "evenonly")
	in := append(stored(t, batch.None, 0, "2", "4"), stored(t, batch.Gzip, 2, "6", "seven")...)
	_, err := c.TransformConsume(ctx, nil, in, 0)
	var me *engine.Error
	if !errors.As(err, &me) || me.Offset != 3 {
		t.Fatalf("TransformConsume: %v, want an *engine.Error at offset 3", err)
	}
}

func TestTransformProduce(t *testing.T) {
	c := chain(t, shared(t), "split")
	var in []byte
	in = append(in, stored(t, batch.Snappy, 0, "a,b", "c")...)
	in = append(in, stored(t, batch.None, 0, "")...) // splits into nothing: dropped
	in = append(in, stored(t, batch.Gzip, 0, "d,e")...)
	before := string(in)
	out, err := c.TransformProduce(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if string(in) != before {
		t.Fatal("TransformProduce changed its input")
	}
	// New ordinary batches with dense offsets from 0 (the SPU stamps base
	// offsets), in their produced codec; the modules saw the records
	// numbered 0, 1, ... across the request.
	got := describe(t, out)
	want := "[0..2 stored snappy epoch 0: 0:null=a 1:null=b 2:null=c]" +
		"[0..1 stored gzip epoch 0: 0:null=d 1:null=e]"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	recs, _ := batch.DecodeAll(out, nil)
	for i, r := range recs {
		wantTs := []int64{1000, 1000, 1001, 1000, 1000}[i]
		if r.Timestamp != wantTs {
			t.Errorf("record %d: timestamp %d, want %d (its produced record's)", i, r.Timestamp, wantTs)
		}
	}
	// A chain that drops everything leaves nothing to write.
	drop := chain(t, shared(t), "filter", "contains=zzz")
	out, err = drop.TransformProduce(ctx, in)
	if err != nil || len(out) != 0 {
		t.Fatalf("all dropped: %d bytes, %v; want none", len(out), err)
	}
}
