package service

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/modules"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/smartmodule/engine"
)

// SmartModules on the data path.
//
// Consume: a stream that names SmartModules gets one chain per partition.
// The modules are resolved and the first partition's chain started before
// the first response, so that a missing module, a kind mismatch or a
// failing init refuses the stream; the other partitions start theirs in
// their own goroutines, at their first response. Each response's batches
// are replaced by the chain's output: derived batches (batch.AttrDerived)
// holding only the records the chain emitted, with the offsets of the
// stored records they came from, from the offset the stream had reached
// on; next_offset stays that of the stored batches read. A chain error
// ends the whole stream with INVALID_ARGUMENT and the engine's message
// (module, kind, offset, the module's own words); other streams go on.
//
// Produce: a request that names SmartModules sets the chain of the stream;
// every topic and partition the stream writes to gets its own instance,
// started at its first request. Batches are transformed before they are
// written (the leader is checked first, so a non-leader runs nothing); a
// request whose records the chain all drops writes nothing and is
// acknowledged with base_offset = the partition's end offset and
// last_offset = base_offset - 1. A chain that failed fails every later
// request of its partition in the stream with the same error; modules
// that cannot run (not found, say) fail every later request of the stream
// until a request names modules that can. ProduceOne starts a chain per
// call.
//
// Produced batches with AttrDerived are refused with INVALID_ARGUMENT,
// whether or not modules run: by the log's validation of an append, or by
// the chain's TransformProduce.

// maxProduceChains bounds the partitions one produce stream may run a chain
// for.
const maxProduceChains = 1024

// errNoSmartModules refuses SmartModules on an SPU built without them.
var errNoSmartModules = connect.NewError(connect.CodeUnimplemented, errors.New("this SPU does not run SmartModules"))

// withSmartModules returns send as it is when the request names no
// SmartModules; else it starts a chain per partition of msg and returns a
// send that passes each response's batches through its partition's chain.
// The chains are closed when ctx ends (when the stream's handler returns).
func (c *Consume) withSmartModules(ctx context.Context, msg *dataplanev1.ConsumeRequest, send func(*dataplanev1.ConsumeResponse) error) (func(*dataplanev1.ConsumeResponse) error, error) {
	if len(msg.GetSmartmodules()) == 0 {
		return send, nil
	}
	if c.SmartModules == nil {
		return nil, errNoSmartModules
	}
	plan, err := c.SmartModules.Plan(ctx, msg.GetSmartmodules())
	if err != nil {
		return nil, err
	}
	first, err := c.SmartModules.Start(ctx, plan)
	if err != nil {
		return nil, err
	}
	parts := make(map[int32]*consumeChain, len(msg.Partitions))
	for i, pc := range msg.Partitions {
		p := &consumeChain{start: func() (*engine.Chain, error) { return c.SmartModules.Start(ctx, plan) }, from: -1}
		if i == 0 {
			p.chain = first
		}
		parts[pc.Partition] = p
	}
	context.AfterFunc(ctx, func() {
		for _, p := range parts {
			p.close()
		}
	})
	return func(resp *dataplanev1.ConsumeResponse) error {
		p := parts[resp.Partition]
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.transform(ctx, resp); err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) {
				c.Logger.Error("smartmodule input unreadable", "topic", msg.Topic, "partition", resp.Partition, "err", err)
				return toConnect(err)
			}
			if ctx.Err() == nil {
				c.Logger.Info("smartmodule ended a consume stream", "topic", msg.Topic, "partition", resp.Partition, "err", err)
			}
			return err
		}
		return send(resp)
	}, nil
}

// consumeChain is the chain of one partition of a consume stream.
type consumeChain struct {
	mu     sync.Mutex    // held while the chain runs and its output is sent
	chain  *engine.Chain // nil until started
	start  func() (*engine.Chain, error)
	from   int64  // the stream's position: records below it were sent; -1 before the first response
	buf    []byte // the last output, reused: a response is marshalled when send returns
	closed bool
}

// transform replaces resp's batches by the chain's output.
func (p *consumeChain) transform(ctx context.Context, resp *dataplanev1.ConsumeResponse) error {
	if p.closed {
		return connect.NewError(connect.CodeCanceled, errors.New("the consume stream ended"))
	}
	if p.chain == nil {
		var err error
		if p.chain, err = p.start(); err != nil {
			return err
		}
	}
	from := p.from
	if from < 0 {
		from = resp.NextOffset // the first response confirms the stream at its start offset
	}
	if len(resp.Batches) > 0 {
		out, err := p.chain.TransformConsume(ctx, p.buf[:0], resp.Batches, from)
		if err != nil {
			var ee *engine.Error
			if !errors.As(err, &ee) {
				return fmt.Errorf("partition %d: %w", resp.Partition, err) // the stored batches: logged by the caller
			}
			return modules.ChainError(err)
		}
		p.buf = out
		resp.Batches = out
	}
	p.from = max(from, resp.NextOffset)
	return nil
}

// close closes the chain once it is not running.
func (p *consumeChain) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed && p.chain != nil {
		p.chain.Close(context.Background())
	}
	p.closed = true
}

// produceChains is a produce stream's SmartModules: the specs the last
// request that named any set, and a chain per topic and partition.
type produceChains struct {
	p      *Produce
	plan   *modules.Plan                        // nil: the stream runs no modules
	err    error                                // why the last request that named modules could not set them
	invs   []*dataplanev1.SmartModuleInvocation // what the stream named last, planned again while err is UNAVAILABLE
	chains map[replica.Key]*produceChain
}

// produceChain is one partition's chain, or the error that broke it.
type produceChain struct {
	chain *engine.Chain
	err   error
}

// smartModules returns the SmartModule state of a new produce stream.
func (p *Produce) smartModules() *produceChains {
	return &produceChains{p: p}
}

// close closes every chain of the stream.
func (s *produceChains) close() {
	for _, c := range s.chains {
		c.chain.Close(context.Background())
	}
	s.chains = nil
}

// write writes req's batches, through the partition's chain when the
// stream has one. It sets the stream's chain when req names SmartModules.
func (s *produceChains) write(ctx context.Context, req *dataplanev1.ProduceRequest) (base, last int64, syncLog *commitlog.Log, err error) {
	invs := req.GetSmartmodules()
	if len(invs) > 0 {
		s.invs = invs
	} else if s.err != nil && connect.CodeOf(s.err) == connect.CodeUnavailable {
		// The registry was unreachable when the stream named its modules:
		// try again, rather than failing every later request of a stream
		// that names them only once.
		invs = s.invs
	}
	if len(invs) > 0 {
		s.close()
		if s.p.SmartModules == nil {
			s.plan, s.err = nil, errNoSmartModules
		} else {
			s.plan, s.err = s.p.SmartModules.Plan(ctx, invs)
		}
	}
	if s.err != nil {
		// Never write unchanged what the producer meant to transform.
		return 0, 0, nil, s.err
	}
	if s.plan == nil {
		return s.p.write(req.Topic, req.Partition, req.Batches, req.Acks)
	}
	key := replica.Key{Topic: req.Topic, Partition: req.Partition}
	c := s.chains[key]
	if c == nil {
		if err := s.p.checkLeader(req.Topic, req.Partition); err != nil {
			return 0, 0, nil, err
		}
		if len(s.chains) >= maxProduceChains {
			return 0, 0, nil, invalidArgument("a produce stream may run SmartModules on at most %d partitions", maxProduceChains)
		}
		chain, err := s.p.SmartModules.Start(ctx, s.plan)
		if err != nil {
			return 0, 0, nil, err
		}
		c = &produceChain{chain: chain}
		if s.chains == nil {
			s.chains = map[replica.Key]*produceChain{}
		}
		s.chains[key] = c
	}
	if c.err != nil {
		return 0, 0, nil, c.err
	}
	return s.p.writeThrough(ctx, c, req.Topic, req.Partition, req.Batches, req.Acks)
}

// writeOne is ProduceOne's write: through a chain of its own when the
// request names SmartModules.
func (p *Produce) writeOne(ctx context.Context, req *dataplanev1.ProduceOneRequest) (base, last int64, syncLog *commitlog.Log, err error) {
	if len(req.GetSmartmodules()) == 0 {
		return p.write(req.Topic, req.Partition, req.Batches, req.Acks)
	}
	if p.SmartModules == nil {
		return 0, 0, nil, errNoSmartModules
	}
	if err := p.checkLeader(req.Topic, req.Partition); err != nil {
		return 0, 0, nil, err
	}
	chain, err := p.SmartModules.Chain(ctx, req.GetSmartmodules())
	if err != nil {
		return 0, 0, nil, err
	}
	defer chain.Close(context.Background())
	return p.writeThrough(ctx, &produceChain{chain: chain}, req.Topic, req.Partition, req.Batches, req.Acks)
}

// writeThrough transforms batches with c's chain and writes the result.
// A chain error breaks c for good; a malformed batch fails the request
// only, as without modules.
func (p *Produce) writeThrough(ctx context.Context, c *produceChain, topic string, partition int32, batches []byte, acks dataplanev1.Acks) (base, last int64, syncLog *commitlog.Log, err error) {
	if err := p.checkLeader(topic, partition); err != nil {
		return 0, 0, nil, err
	}
	if len(batches) == 0 {
		return p.write(topic, partition, batches, acks) // refused there, as without modules
	}
	out, err := c.chain.TransformProduce(ctx, batches)
	if err != nil {
		var ee *engine.Error
		if !errors.As(err, &ee) {
			return 0, 0, nil, err // the producer's batch, not the module, is at fault
		}
		c.err = modules.ChainError(err)
		p.Logger.Info("smartmodule refused a produce request", "topic", topic, "partition", partition, "err", err)
		return 0, 0, nil, c.err
	}
	if len(out) == 0 {
		// The chain kept nothing: nothing is written.
		r, err := p.Replicas.Get(topic, partition)
		if err != nil {
			return 0, 0, nil, err
		}
		end := r.Log.EndOffset()
		return end, end - 1, nil, nil
	}
	return p.write(topic, partition, out, acks)
}

// checkLeader reports why this SPU may not write to the partition.
func (p *Produce) checkLeader(topic string, partition int32) error {
	r, err := p.Replicas.Get(topic, partition)
	if err != nil {
		return err
	}
	return r.CheckLeader()
}
