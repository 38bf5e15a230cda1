package engine_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine"
)

func abiParam(k, v string) abi.Param { return abi.Param{Name: k, Value: v} }

var ctx = context.Background()

func TestEachKind(t *testing.T) {
	e := shared(t)
	tests := []struct {
		name   string
		module string
		params []string
		in     []batch.Record
		want   string
	}{
		{"filter keeps the records it is asked to", "filter", []string{"every=2"},
			records(10, "a", "b", "c", "d", "e"), "10:k10=a 12:k12=c 14:k14=e"},
		{"filter with no match emits nothing", "filter", []string{"contains=zzz"},
			records(0, "a", "b"), ""},
		{"map replaces each value", "uppercase", nil,
			records(5, "ab", "", "cd"), "5:k5=AB 6:k6= 7:k7=CD"},
		{"array-map makes zero or more records of each", "split", nil,
			records(3, "a,b", "", "c", "d,e,f"), "3:null=a 3:null=b 5:null=c 6:null=d 6:null=e 6:null=f"},
		{"filter-map drops or replaces", "evenonly", nil,
			records(0, "1", "2", "3", "4"), "1:k1=even:2 3:k3=even:4"},
		{"aggregate emits the running accumulator", "count", nil,
			records(0, "1", "2", "3"), "0:k0=1 1:k1=3 2:k2=6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chain(t, e, tt.module, tt.params...)
			prefix := records(100, "already there")
			out, err := c.Process(ctx, tt.in, prefix)
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if out[0].Offset != 100 {
				t.Fatalf("Process did not append to out: %s", show(out))
			}
			if got := show(out[1:]); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			// Every output keeps the timestamp and headers of its
			// record.
			for _, r := range out[1:] {
				if r.Timestamp != 1000+r.Offset || len(r.Headers) != 1 {
					t.Fatalf("output at offset %d: timestamp %d, headers %v", r.Offset, r.Timestamp, r.Headers)
				}
				if want := []byte(records(r.Offset, "")[0].Headers[0].Value); string(r.Headers[0].Value) != string(want) {
					t.Fatalf("output at offset %d carries header %q, want %q", r.Offset, r.Headers[0].Value, want)
				}
			}
		})
	}
}

func TestFilterOutputIsTheInputRecord(t *testing.T) {
	e := shared(t)
	c := chain(t, e, "filter")
	in := records(0, "a")
	out, err := c.Process(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0].Value[0] != &in[0].Value[0] {
		t.Fatal("a kept record's value was copied; want the input's own")
	}
}

func TestAggregateKeepsItsAccumulatorAcrossCalls(t *testing.T) {
	e := shared(t)
	sp := spec(t, e, "count")
	sp.InitialAccumulator = []byte("100")
	c, err := e.NewChain(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for i, want := range []string{"0:k0=101 1:k1=103", "2:k2=106"} {
		in := records(int64(2*i), "1", "2")[:2-i]
		if i == 1 {
			in = records(2, "3")
		}
		out, err := c.Process(ctx, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := show(out); got != want {
			t.Fatalf("call %d: got %s, want %s", i, got, want)
		}
	}
	// Another chain of the same module has its own accumulator.
	other := chain(t, e, "count")
	out, err := other.Process(ctx, records(0, "5"), nil)
	if err != nil || show(out) != "0:k0=5" {
		t.Fatalf("second chain: %s, %v; want 0:k0=5", show(out), err)
	}
}

func TestChainRunsModulesInOrder(t *testing.T) {
	e := shared(t)
	c, err := e.NewChain(ctx,
		spec(t, e, "filter", "contains=x"),
		spec(t, e, "uppercase"),
		spec(t, e, "split"),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	out, err := c.Process(ctx, records(0, "ax,bx", "no", "x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := show(out), "0:null=AX 0:null=BX 2:null=X"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// A call whose records the first module all drops reaches no other.
	out, err = c.Process(ctx, records(3, "no"), nil)
	if err != nil || len(out) != 0 {
		t.Fatalf("got %s, %v; want nothing", show(out), err)
	}
}

func TestLargeInputCrossesInSeveralCalls(t *testing.T) {
	e := shared(t)
	c := chain(t, e, "count")
	// 3 MiB of records: more than one call's worth.
	big := make([]byte, 3000)
	for i := range big {
		big[i] = '0'
	}
	var in []batch.Record
	for i := range 1000 {
		r := records(int64(i), "1")[0]
		r.Key = big
		in = append(in, r)
	}
	out, err := c.Process(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1000 || string(out[999].Value) != "1000" || out[999].Offset != 999 {
		t.Fatalf("%d outputs, last %s; want 1000 ending 999:...=1000", len(out), show(out[len(out)-1:]))
	}
}

func TestInitErrorNamesTheModule(t *testing.T) {
	e := shared(t)
	_, err := e.NewChain(ctx, spec(t, e, "filter", "every=often"))
	want := "smartmodule filter.wasm (filter) failed in init: parameter every=often is not a positive integer"
	if err == nil || err.Error() != want {
		t.Fatalf("NewChain: %v\nwant %s", err, want)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEngine(t, engine.Config{Registerer: reg})
	c := chain(t, e, "filter", "every=2")
	if _, err := c.Process(ctx, records(0, "a", "b", "c"), nil); err != nil {
		t.Fatal(err)
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		"spate_smartmodule_records_in_total,kind=filter,module=filter.wasm":  3,
		"spate_smartmodule_records_out_total,kind=filter,module=filter.wasm": 2,
		"spate_smartmodule_errors_total,kind=filter,module=filter.wasm":      0,
		"spate_smartmodule_instances":                                        1,
		"spate_smartmodule_compiles_total":                                   1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if got["spate_smartmodule_seconds_total,kind=filter,module=filter.wasm"] <= 0 {
		t.Error("no time counted in spate_smartmodule_seconds_total")
	}
	c.Close(ctx)
	if n := gather(t, reg)["spate_smartmodule_instances"]; n != 0 {
		t.Errorf("%v instances after Close, want 0", n)
	}
}

// gather returns the values of reg's metrics by name and labels:
// "name,label=value,...".
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			labels := ""
			for _, l := range m.GetLabel() {
				labels += "," + l.GetName() + "=" + l.GetValue()
			}
			got[mf.GetName()+labels] = v
		}
	}
	return got
}
