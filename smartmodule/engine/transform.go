package engine

import (
	"context"
	"fmt"

	"github.com/spatehq/spate/internal/batch"
)

// span is one input batch of a transform: its header, and where its
// records end in Chain.recs.
type span struct {
	h   batch.Header
	end int
	// last is the offset the chain gave the span's last record.
	last int64
}

// TransformConsume runs the records of stored batches through the chain
// for a consumer, and appends to dst one derived batch (batch.AttrDerived)
// per stored batch that kept any record. stored holds whole batches as the
// SPU reads them from its log (any codec); records below from are dropped
// first, as the consumer did not ask for them, and batches that end below
// it are skipped. Each derived batch has the base offset, leader epoch and
// last offset delta of its stored batch, so that the offset after it is
// the stored batch's, and its records keep the offsets and timestamps of
// the stored records they came from. Derived batches are written
// uncompressed: the chain usually drops most of the data, and compressing
// again would cost the SPU more than the wire saves.
//
// All the records of stored cross into each module together (in calls of
// up to 1 MiB), so small stored batches cost no more calls than large
// ones. On failure TransformConsume returns dst as it was and the error:
// an *Error from a module (the chain is then dead), or one wrapping a batch
// error when stored is not whole, well-formed batches.
func (c *Chain) TransformConsume(ctx context.Context, dst, stored []byte, from int64) ([]byte, error) {
	if c.err != nil {
		return dst, c.err
	}
	c.recs, c.spans = c.recs[:0], c.spans[:0]
	for rest := stored; len(rest) > 0; {
		first, h, next, err := batch.Next(rest)
		if err != nil {
			return dst, fmt.Errorf("smartmodule: stored batches: %w", err)
		}
		rest = next
		if h.Derived() {
			return dst, fmt.Errorf("smartmodule: stored batches: %w", batch.ErrDerived)
		}
		if h.LastOffset() < from {
			continue
		}
		start := len(c.recs)
		if c.recs, err = batch.Decode(first, c.recs); err != nil {
			return dst, fmt.Errorf("smartmodule: stored batches: %w", err)
		}
		if h.BaseOffset < from {
			// Offsets are dense in a stored batch.
			drop := int(from - h.BaseOffset)
			c.recs = append(c.recs[:start], c.recs[start+drop:]...)
		}
		c.spans = append(c.spans, span{h: h, end: len(c.recs), last: h.LastOffset()})
	}
	return c.build(ctx, dst, true)
}

// TransformProduce runs the records of produced batches through the chain
// before the SPU writes them, and returns new ordinary batches: one per
// produced batch that kept any record, each in the codec of its produced
// batch, with dense offsets from 0 (the SPU assigns base offsets as for any
// produced batch). It returns no bytes when the chain dropped every record.
// As offsets are not assigned yet, the modules see the records numbered 0,
// 1, ... in the order of batches. Output records keep the timestamps and
// headers of the records they came from (a timestamp of 0 becomes the time
// of the call, as batch.Builder.Append does). The returned slice is new;
// batches is not modified. On failure it returns nil and the error, as
// TransformConsume does; a derived batch (batch.AttrDerived) is refused
// with batch.ErrCorrupt and batch.ErrDerived.
func (c *Chain) TransformProduce(ctx context.Context, batches []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	c.recs, c.spans = c.recs[:0], c.spans[:0]
	var next int64
	for rest := batches; len(rest) > 0; {
		first, h, r, err := batch.Next(rest)
		if err != nil {
			return nil, fmt.Errorf("smartmodule: produced batches: %w", err)
		}
		rest = r
		if h.Derived() {
			return nil, fmt.Errorf("smartmodule: produced batches: %w: %w", batch.ErrCorrupt, batch.ErrDerived)
		}
		start := len(c.recs)
		if c.recs, err = batch.Decode(first, c.recs); err != nil {
			return nil, fmt.Errorf("smartmodule: produced batches: %w", err)
		}
		for i := start; i < len(c.recs); i++ {
			c.recs[i].Offset = next
			next++
		}
		c.spans = append(c.spans, span{h: h, end: len(c.recs), last: next - 1})
	}
	return c.build(ctx, nil, false)
}

// build runs c.recs through the chain and appends the batches of its
// outputs to dst: derived batches over the spans' base offsets, or
// ordinary ones.
func (c *Chain) build(ctx context.Context, dst []byte, derived bool) ([]byte, error) {
	if len(c.recs) == 0 {
		return dst, nil
	}
	var err error
	c.outs, err = c.Process(ctx, c.recs, c.outs[:0])
	if err != nil {
		return dst, err
	}
	outs := c.outs
	n := len(dst)
	for _, sp := range c.spans {
		// Outputs follow the order of the records: those of this span
		// come first.
		k := 0
		for k < len(outs) && outs[k].Offset <= sp.last {
			k++
		}
		mine := outs[:k]
		outs = outs[k:]
		if len(mine) == 0 {
			continue
		}
		codec := batch.None
		if !derived {
			codec = sp.h.Compression()
		}
		b := c.builders[codec]
		if b == nil {
			b = batch.NewBuilder(codec)
			c.builders[codec] = b
		}
		b.Reset()
		for _, r := range mine {
			if derived {
				b.AppendAt(r, r.Offset-sp.h.BaseOffset)
			} else {
				b.Append(r)
			}
		}
		if derived {
			b.SetLastOffsetDelta(int64(sp.h.LastOffsetDelta))
		}
		start := len(dst)
		if dst, err = b.AppendTo(dst); err != nil {
			return dst[:n], fmt.Errorf("smartmodule: build batch: %w", err)
		}
		if derived {
			batch.SetBaseOffset(dst[start:], sp.h.BaseOffset)
			batch.SetLeaderEpoch(dst[start:], sp.h.LeaderEpoch)
		}
	}
	return dst, nil
}
