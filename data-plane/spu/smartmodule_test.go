package spu_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// smartSPU starts a standalone SPU with topic "t" of one partition holding
// the values, produced in batches of batchSize, and returns a client of it.
func smartSPU(t *testing.T, batchSize int, vals ...string) (*sputest.SPU, *client.Client) {
	t.Helper()
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "t", 1, nil)
	for i := 0; i < len(vals); i += batchSize {
		if _, err := c.produceOne(t, "t", 0, makeBatch(t, 0, vals[i:min(i+batchSize, len(vals))]...)); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := client.New(client.WithSPU(s.URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return s, cl
}

// consumed is "offset:value" of each record of a consume of topic "t" with
// opts, up to the end offset when it started.
func consumed(t *testing.T, cl *client.Client, opts ...client.ConsumeOption) ([]string, error) {
	t.Helper()
	ctx := testContext(t)
	cons, err := cl.Consume(ctx, "t", append([]client.ConsumeOption{client.WithStopAtEnd()}, opts...)...)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	var out []string
	for {
		r, err := cons.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, fmt.Sprintf("%d:%s", r.Offset, r.Value))
	}
}

func wasmModule(t *testing.T, name, kind string, params ...string) client.Transform {
	m := client.Transform{Wasm: smtest.Example(t, name), Kind: kind}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		m.Params = append(m.Params, client.TransformParam{Name: k, Value: v})
	}
	return m
}

func TestConsumeRunsAFilterOnTheSPUAndKeepsStoredOffsets(t *testing.T) {
	s, cl := smartSPU(t, 3,
		`{"level":"info"}`, `{"level":"error","n":1}`, `{"level":"info"}`,
		`{"level":"error","n":2}`, `{"level":"debug"}`, `{"level":"error","n":3}`)
	filter := client.WithSmartModules(wasmModule(t, "jsonfilter", "filter", "field=level", "equals=error"))

	got, err := consumed(t, cl, filter)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`1:{"level":"error","n":1}`, `3:{"level":"error","n":2}`, `5:{"level":"error","n":3}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("filtered consume = %q, want %q", got, want)
	}

	// From the middle of the second stored batch: the records before the
	// start are not run nor sent.
	got, err = consumed(t, cl, filter, client.WithStart(client.At(4)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`5:{"level":"error","n":3}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("filtered consume from offset 4 = %q, want %q", got, want)
	}
	// The SPU counts, per module, the records in and out.
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`spate_smartmodule_records_in_total\{kind="filter",module="inline module sha256:[0-9a-f]{12}"\} 8\n`),
		regexp.MustCompile(`spate_smartmodule_records_out_total\{kind="filter",module="inline module sha256:[0-9a-f]{12}"\} 4\n`),
	} {
		if !want.Match(metrics) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(string(metrics), "spate_smartmodule"))
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestConsumeRunsAChainInOrder(t *testing.T) {
	_, cl := smartSPU(t, 10, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`)
	// The filter-map keeps the even n as their text; the sum adds them.
	got, err := consumed(t, cl, client.WithSmartModules(
		wasmModule(t, "filtermap", "filter-map"),
		wasmModule(t, "sum", "aggregate"),
	))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1:2", "3:6"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("filter-map then sum = %q, want %q", got, want)
	}
}

func TestConsumeArrayMapRepeatsOffsetsAndAggregateStartsFromTheInitialValue(t *testing.T) {
	_, cl := smartSPU(t, 2, `[1,2]`, `[]`, `["a"]`)
	got, err := consumed(t, cl, client.WithSmartModules(wasmModule(t, "flatten", "array-map")))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0:1", "0:2", `2:"a"`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("flatten = %q, want %q", got, want)
	}

	_, cl = smartSPU(t, 2, "1", "2", "3")
	sum := wasmModule(t, "sum", "aggregate")
	sum.InitialAccumulator = []byte("100")
	got, err = consumed(t, cl, client.WithSmartModules(sum))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0:101", "1:103", "2:106"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sum from 100 = %q, want %q", got, want)
	}
}

func TestConsumeRefusesWhatCannotRun(t *testing.T) {
	_, cl := smartSPU(t, 1, "x")
	for _, tc := range []struct {
		name   string
		module client.Transform
		code   connect.Code
		says   string
	}{
		{"another kind", wasmModule(t, "uppercase", "filter"), connect.CodeInvalidArgument, "is a map, not a filter"},
		{"a missing parameter", wasmModule(t, "jsonfilter", "filter"), connect.CodeInvalidArgument, "field"},
		{"not wasm", client.Transform{Wasm: []byte("hello")}, connect.CodeInvalidArgument, "not a WebAssembly module"},
		{"a name without a registry", client.Transform{Name: "acme/x"}, connect.CodeUnimplemented, "without a control plane"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := consumed(t, cl, client.WithSmartModules(tc.module))
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("consume = %v; want %v saying %q", err, tc.code, tc.says)
			}
		})
	}
}

func TestAFailingModuleEndsOnlyItsStream(t *testing.T) {
	s, cl := smartSPU(t, 2, `{"n":2}`, `{"n":4}`, `not json`, `{"n":6}`)
	ctx := testContext(t)
	// A plain consumer that waits for more records keeps its stream.
	plain, err := cl.Consume(ctx, "t", client.WithStart(client.End()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	// One stored batch per response: the first is sent before the
	// second fails.
	got, err := consumed(t, cl, client.WithMaxBytes(1), client.WithSmartModules(wasmModule(t, "filtermap", "filter-map")))
	if err == nil || connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("consume through a module that fails at offset 2 = %q, %v; want INVALID_ARGUMENT", got, err)
	}
	for _, want := range []string{"smartmodule inline module sha256:", "(filter-map)", "offset 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if fmt.Sprint(got) != "[0:2 1:4]" {
		t.Errorf("records before the failure = %q, want [0:2 1:4]", got)
	}

	if _, err := newClients(s.URL).produceOne(t, "t", 0, makeBatch(t, 0, "after")); err != nil {
		t.Fatal(err)
	}
	r, err := plain.Next(ctx)
	if err != nil || string(r.Value) != "after" {
		t.Fatalf("the plain consumer's next record = %q, %v; want \"after\"", r.Value, err)
	}
}

func TestProduceRunsTheChainBeforeWriting(t *testing.T) {
	s, cl := smartSPU(t, 1)
	ctx := testContext(t)
	p, err := cl.NewProducer(ctx, "t", client.WithSmartModules(wasmModule(t, "uppercase", "map")))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := p.ProduceSync(ctx, client.Record{Value: []byte("hello")}, client.Record{Value: []byte("world")})
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Offset != -1 {
		t.Errorf("a record produced through modules has offset %d; want -1 (the chain decides what is written)", recs[0].Offset)
	}
	p.Close()
	got, err := consumed(t, cl)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0:HELLO", "1:WORLD"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored after an uppercasing produce = %q, want %q", got, want)
	}

	// ProduceOne with a filter that keeps nothing writes nothing.
	c := newClients(s.URL)
	inv := &dataplanev1.SmartModuleInvocation{
		Module: &dataplanev1.SmartModuleInvocation_Wasm{Wasm: smtest.Example(t, "jsonfilter")},
		Params: []*dataplanev1.SmartModuleParam{{Name: "field", Value: "level"}, {Name: "equals", Value: "error"}},
	}
	resp, err := c.produce.ProduceOne(ctx, connect.NewRequest(&dataplanev1.ProduceOneRequest{
		Topic: "t", Batches: makeBatch(t, 0, `{"level":"info"}`), Smartmodules: []*dataplanev1.SmartModuleInvocation{inv},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.BaseOffset != 2 || resp.Msg.LastOffset != 1 {
		t.Fatalf("ProduceOne whose records the filter drops = base %d last %d; want 2 and 1 (nothing written)", resp.Msg.BaseOffset, resp.Msg.LastOffset)
	}
}

func TestProduceRefusesDerivedBatches(t *testing.T) {
	s, _ := smartSPU(t, 1)
	b := batch.NewBuilder(batch.None)
	b.AppendAt(batch.Record{Value: []byte("x")}, 0)
	derived, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	c := newClients(s.URL)
	_, err = c.produceOne(t, "t", 0, derived)
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "derived") {
		t.Fatalf("produce of a derived batch = %v; want INVALID_ARGUMENT naming it derived", err)
	}
	// Through a module too: the chain refuses it rather than transform it.
	inv := &dataplanev1.SmartModuleInvocation{Module: &dataplanev1.SmartModuleInvocation_Wasm{Wasm: smtest.Example(t, "uppercase")}}
	_, err = c.produce.ProduceOne(testContext(t), connect.NewRequest(&dataplanev1.ProduceOneRequest{
		Topic: "t", Batches: derived, Smartmodules: []*dataplanev1.SmartModuleInvocation{inv},
	}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "derived") {
		t.Fatalf("produce of a derived batch through a module = %v; want INVALID_ARGUMENT naming it derived", err)
	}
}

// BenchmarkConsumeThroughFilter consumes 100,000 stored records of 100
// bytes through a filter keeping 1% (keep1pct) and through the JSON filter,
// client and SPU in one process; records/s counts stored records.
func BenchmarkConsumeThroughFilter(b *testing.B) {
	s := sputest.Start(b, spu.Config{})
	c := newClients(s.URL)
	if _, err := c.replicas.EnsureReplica(context.Background(), connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: "t", Partition: 0})); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	for i := 0; i < n; i += 1000 {
		vals := make([]string, 1000)
		for j := range vals {
			level := "info "
			if (i+j)%100 == 0 {
				level = "error"
			}
			v := fmt.Sprintf(`{"level":%q,"n":%12d,"pad":"`, level, i+j)
			vals[j] = v + strings.Repeat("x", 98-len(v)) + `"}`
		}
		if _, err := c.produce.ProduceOne(context.Background(), connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: "t", Batches: makeBatch(b, 0, vals...)})); err != nil {
			b.Fatal(err)
		}
	}
	cl, err := client.New(client.WithSPU(s.URL))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for _, bc := range []struct {
		name string
		t    []client.Transform
	}{
		{"none", nil},
		{"keep1pct", []client.Transform{{Wasm: smtest.Example(b, "keep1pct")}}},
		{"jsonfilter", []client.Transform{{Wasm: smtest.Example(b, "jsonfilter"), Params: []client.TransformParam{{Name: "field", Value: "level"}, {Name: "equals", Value: "error"}}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				ctx := context.Background()
				cons, err := cl.Consume(ctx, "t", client.WithStopAtEnd(), client.WithSmartModules(bc.t...))
				if err != nil {
					b.Fatal(err)
				}
				for {
					_, err := cons.NextBatch(ctx)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				cons.Close()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func TestEveryPartitionOfAStreamGetsItsOwnInstance(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "t", 2, nil)
	for p := range int32(2) {
		if _, err := c.produceOne(t, "t", p, makeBatch(t, 0, "1", "2", "3")); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := client.New(client.WithSPU(s.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testContext(t)
	cons, err := cl.Consume(ctx, "t", client.WithStopAtEnd(), client.WithPartitions(0, 1), client.WithSmartModules(wasmModule(t, "sum", "aggregate")))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[int32][]string{}
	for {
		r, err := cons.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.Partition] = append(got[r.Partition], string(r.Value))
	}
	// Each partition's sum starts from 0: the accumulators are apart.
	if fmt.Sprint(got[0]) != "[1 3 6]" || fmt.Sprint(got[1]) != "[1 3 6]" {
		t.Fatalf("running sums per partition = %v; want [1 3 6] in each", got)
	}
}

func TestAProduceStreamWhoseModulesCannotRunWritesNothingUnchanged(t *testing.T) {
	s, _ := smartSPU(t, 1)
	c := newClients(s.URL)
	stream := c.produce.Produce(testContext(t))
	defer stream.CloseRequest()
	send := func(id uint64, invs ...*dataplanev1.SmartModuleInvocation) *dataplanev1.ProduceResponse {
		t.Helper()
		if err := stream.Send(&dataplanev1.ProduceRequest{RequestId: id, Topic: "t", Batches: makeBatch(t, 0, "x"), Smartmodules: invs}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Receive()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// No registry on a standalone SPU: the module cannot run, and the
	// requests after it, which name no modules, are refused too.
	named := &dataplanev1.SmartModuleInvocation{Module: &dataplanev1.SmartModuleInvocation_Name{Name: "acme/upper"}}
	for id, invs := range [][]*dataplanev1.SmartModuleInvocation{{named}, nil} {
		resp := send(uint64(id), invs...)
		if connect.Code(resp.ErrorCode) != connect.CodeUnimplemented || !strings.Contains(resp.ErrorMessage, "acme/upper") {
			t.Fatalf("request %d = code %v %q; want UNIMPLEMENTED naming acme/upper", id, connect.Code(resp.ErrorCode), resp.ErrorMessage)
		}
	}
	// A request that names modules that run sets the chain again.
	upper := &dataplanev1.SmartModuleInvocation{Module: &dataplanev1.SmartModuleInvocation_Wasm{Wasm: smtest.Example(t, "uppercase")}}
	if resp := send(2, upper); resp.ErrorCode != 0 || resp.BaseOffset != 0 {
		t.Fatalf("request with a module that runs = %+v; want offset 0 written", resp)
	}
	if resp := send(3); resp.ErrorCode != 0 || resp.BaseOffset != 1 {
		t.Fatalf("the request after it = %+v; want offset 1 written", resp)
	}
	if got := recordValues(c.consumeRange(t, "t", 0, nil, 2), 0); fmt.Sprint(got) != "[X X]" {
		t.Fatalf("stored = %q; want [X X]", got)
	}
}
