package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/abi"
)

// Spec is one module of a chain and how to start it.
type Spec struct {
	Module *Module
	// Name names the module in errors and metrics: "acme/x@1.0.0", or the
	// file name of an unregistered module.
	Name   string
	Params []abi.Param
	// InitialAccumulator is an aggregate's initial accumulator; nil is
	// none (the module starts from its own).
	InitialAccumulator []byte
}

// Limits of one call into a module: a batch of records larger than these is
// passed in several calls.
const (
	maxCallBytes   = 1 << 20
	maxCallRecords = 1 << 14
)

// Chain is a chain of module instances that one stream runs its records
// through, in order: the output of each module is the input of the next.
// Each module has its own instance, so an aggregate's accumulator lives as
// long as the chain. A Chain is not safe for concurrent use. The first
// failure kills it: that call and every later one return the same error (an
// *Error, or ErrClosed), and the chain should be closed.
type Chain struct {
	e      *Engine
	stages []*stage
	err    error

	// Reused by TransformConsume and TransformProduce.
	recs, outs []batch.Record
	spans      []span
	builders   [8]*batch.Builder
}

// stage is one module of a chain.
type stage struct {
	name    string
	kind    abi.Kind
	module  *Module
	in      *instance
	metrics stageMetrics
	// arena holds the keys and values the module emitted in the current
	// Process call, copied out of guest memory.
	arena []byte
	// buf holds the stage's output when it is not the last stage.
	buf    []batch.Record
	reader abi.ResultReader
}

// NewChain instantiates each spec's module, runs its _initialize and its
// init with the spec's parameters (and initial accumulator), and returns
// the chain. It fails with an *Error naming the module when a module fails
// to start or its init reports an error (a missing parameter, say), and
// with ErrEvicted or ErrClosed as Engine says.
func (e *Engine) NewChain(ctx context.Context, specs ...Spec) (*Chain, error) {
	if len(specs) == 0 {
		return nil, errors.New("smartmodule engine: a chain needs at least one module")
	}
	c := &Chain{e: e}
	for _, sp := range specs {
		s, err := e.newStage(ctx, sp)
		if err != nil {
			c.Close(ctx)
			return nil, err
		}
		c.stages = append(c.stages, s)
	}
	return c, nil
}

func (e *Engine) newStage(ctx context.Context, sp Spec) (*stage, error) {
	if sp.Module == nil {
		return nil, errors.New("smartmodule engine: Spec without a Module")
	}
	if sp.Name == "" {
		sp.Name = sp.Module.digest
	}
	if err := e.acquire(sp.Module); err != nil {
		return nil, err
	}
	s := &stage{name: sp.Name, kind: sp.Module.kind, module: sp.Module, metrics: e.metrics.forStage(sp.Name, sp.Module.kind.String())}
	start := time.Now()
	fail := func(f *failure) error {
		s.metrics.errors.Inc()
		s.metrics.seconds.Add(since(start))
		e.release(ctx, sp.Module)
		return s.errorOf(f, nil)
	}
	in, f := e.instantiate(ctx, sp.Module, sp.Name)
	if f != nil {
		return nil, fail(f)
	}
	e.metrics.instances.Inc()
	s.in = in
	params := abi.AppendParams(nil, sp.Params, sp.InitialAccumulator)
	res, f := in.call(ctx, in.mod.ExportedFunction(abi.ExportInit), len(params), func(b []byte) []byte { return append(b, params...) })
	if f == nil {
		var n int
		n, err := s.reader.Reset(res)
		if err == nil && n != 0 {
			err = fmt.Errorf("%w: init returned %d outputs", abi.ErrMalformed, n)
		}
		f = resultFailure(err)
	}
	if f != nil {
		s.close(ctx)
		return nil, fail(f)
	}
	s.metrics.seconds.Add(since(start))
	return s, nil
}

// resultFailure turns an error of abi.ResultReader into a failure.
func resultFailure(err error) *failure {
	var me *abi.ModuleError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		return &failure{index: me.Index, message: me.Message, err: me}
	}
	return &failure{index: abi.NoRecord, message: "malformed result: " + err.Error(), err: err}
}

// errorOf makes the Error of f in a call with records in (nil for init).
func (s *stage) errorOf(f *failure, in []batch.Record) *Error {
	e := &Error{Module: s.name, Kind: s.kind, Offset: -1, FirstOffset: -1, LastOffset: -1, Message: f.message, Stderr: f.stderr, Err: f.err}
	if len(in) > 0 {
		e.FirstOffset, e.LastOffset = in[0].Offset, in[len(in)-1].Offset
	}
	if f.index != abi.NoRecord {
		if int(f.index) < len(in) {
			e.Offset = in[f.index].Offset
		} else if in != nil {
			e.Message += fmt.Sprintf(" (about record %d of a call with %d)", f.index, len(in))
		}
	}
	return e
}

func (s *stage) close(ctx context.Context) {
	if s.in != nil {
		s.in.close(ctx)
		s.in = nil
		s.module.e.metrics.instances.Dec()
		s.module.e.release(ctx, s.module)
	}
}

// MemoryBytes returns the size of the linear memories of the chain's
// instances: what the chain holds in memory beyond the engine's own
// bookkeeping.
func (c *Chain) MemoryBytes() int64 {
	var n int64
	for _, s := range c.stages {
		if s.in != nil {
			n += int64(s.in.mem.Size())
		}
	}
	return n
}

// Close closes the chain's instances. It is idempotent; the chain returns
// ErrClosed afterwards.
func (c *Chain) Close(ctx context.Context) error {
	for _, s := range c.stages {
		s.close(ctx)
	}
	c.stages = nil
	if c.err == nil {
		c.err = ErrClosed
	}
	return nil
}

// Process runs in through the chain and appends what the last module
// emits to out. Each output record carries the offset, timestamp and
// headers of the input record it came from; a record a module emits as it
// was is in's record itself, and the keys and values of new records are
// copies that stay valid until the next call of Process, TransformConsume
// or TransformProduce. Records cross into each module in batches (several
// calls for a large in). On failure Process returns out as it was and an
// *Error (or the caller's context error, wrapped in one), and the chain is
// dead.
func (c *Chain) Process(ctx context.Context, in, out []batch.Record) ([]batch.Record, error) {
	if c.err != nil {
		return out, c.err
	}
	n := len(out)
	cur := in
	for i, s := range c.stages {
		last := i == len(c.stages)-1
		s.arena = s.arena[:0]
		if len(cur) == 0 {
			break // nothing for the rest of the chain
		}
		dst := out
		if !last {
			dst = s.buf[:0]
		}
		res, err := s.run(ctx, cur, dst)
		if err != nil {
			c.err = err
			return out[:n], err
		}
		if last {
			out = res
		} else {
			s.buf, cur = res, res
		}
	}
	return out, nil
}

// run passes in through the stage and appends its outputs to out.
func (s *stage) run(ctx context.Context, in, out []batch.Record) ([]batch.Record, error) {
	if s.in == nil {
		return out, ErrClosed
	}
	start := time.Now()
	defer func() { s.metrics.seconds.Add(since(start)) }()
	s.metrics.in.Add(float64(len(in)))
	n := len(out)
	for len(in) > 0 {
		// Cut a call's worth of records.
		size, k := 4, 0
		for k < len(in) && k < maxCallRecords {
			r := &in[k]
			rs := 24 + len(r.Key) + len(r.Value)
			if k > 0 && size+rs > maxCallBytes {
				break
			}
			size += rs
			k++
		}
		var err error
		if out, err = s.call(ctx, in[:k], size, out); err != nil {
			s.metrics.errors.Inc()
			return out[:n], err
		}
		in = in[k:]
	}
	s.metrics.out.Add(float64(len(out) - n))
	return out, nil
}

// call makes one call of the kind function with in, whose encoding takes
// size bytes, and appends the outputs to out after checking them against
// the rules of the kind.
func (s *stage) call(ctx context.Context, in []batch.Record, size int, out []batch.Record) ([]batch.Record, error) {
	res, f := s.in.call(ctx, s.in.fn, size, func(b []byte) []byte {
		b = abi.AppendRecordCount(b, len(in))
		for i := range in {
			r := &in[i]
			b = abi.AppendRecord(b, abi.Record{Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value})
		}
		return b
	})
	if f != nil {
		return out, s.errorOf(f, in)
	}
	rr := &s.reader
	count, err := rr.Reset(res)
	if f := resultFailure(err); f != nil {
		return out, s.errorOf(f, in)
	}
	if (s.kind == abi.KindMap || s.kind == abi.KindAggregate) && count != len(in) {
		return out, s.ruleError(in, fmt.Sprintf("returned %d outputs for %d records (a %s emits exactly one per record)", count, len(in), s.kind))
	}
	n := len(out)
	prev := -1
	for i := range count {
		o, ok := rr.Next()
		if !ok {
			break
		}
		idx := int(o.Index)
		switch {
		case idx >= len(in):
			return out[:n], s.ruleError(in, fmt.Sprintf("output %d names record %d of a call with %d", i, o.Index, len(in)))
		case idx < prev:
			return out[:n], s.ruleError(in, fmt.Sprintf("output %d names record %d after record %d (outputs follow the order of the records)", i, idx, prev))
		case idx == prev && s.kind != abi.KindArrayMap:
			return out[:n], s.ruleErrorAt(in, idx, fmt.Sprintf("emitted several outputs for one record (only an array-map may; a %s emits %s)", s.kind, perRecord(s.kind)))
		case s.kind == abi.KindMap || s.kind == abi.KindAggregate:
			if idx != i {
				return out[:n], s.ruleErrorAt(in, i, fmt.Sprintf("emitted no output for a record (a %s emits exactly one per record)", s.kind))
			}
		case s.kind == abi.KindFilter && !o.Unchanged:
			return out[:n], s.ruleErrorAt(in, idx, "emitted a changed record (a filter only keeps or drops records; use a filter-map to change them)")
		}
		prev = idx
		r := in[idx]
		if !o.Unchanged {
			r.Key, r.Value = s.copyOut(o.Key), s.copyOut(o.Value)
			if r.Value == nil {
				r.Value = []byte{}
			}
		}
		out = append(out, r)
	}
	if err := rr.Err(); err != nil {
		return out[:n], s.errorOf(resultFailure(err), in)
	}
	return out, nil
}

// empty is the empty, non-nil key or value.
var empty = []byte{}

func perRecord(k abi.Kind) string {
	if k == abi.KindFilter || k == abi.KindFilterMap {
		return "at most one per record"
	}
	return "exactly one per record"
}

func (s *stage) ruleError(in []batch.Record, msg string) *Error {
	return s.errorOf(&failure{index: abi.NoRecord, message: "broke the ABI: " + msg, err: abi.ErrMalformed}, in)
}

func (s *stage) ruleErrorAt(in []batch.Record, idx int, msg string) *Error {
	return s.errorOf(&failure{index: uint32(idx), message: "broke the ABI: " + msg, err: abi.ErrMalformed}, in)
}

// copyOut copies b out of guest memory into the stage's arena; nil stays
// nil.
func (s *stage) copyOut(b []byte) []byte {
	if b == nil {
		return nil
	}
	if len(b) == 0 {
		return empty
	}
	if len(s.arena)+len(b) > cap(s.arena) {
		// Earlier copies keep the old arena alive; the next call reuses
		// the new one from its start.
		s.arena = make([]byte, 0, max(2*cap(s.arena), len(b), 64<<10))
	}
	start := len(s.arena)
	s.arena = append(s.arena, b...)
	return s.arena[start:len(s.arena):len(s.arena)]
}
