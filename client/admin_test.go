package client_test

import (
	"testing"
	"time"

	"github.com/spatehq/spate/client"
)

func TestAdmin(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "other", 1)
		c := newClient(t, url)

		for _, want := range []bool{true, false} {
			for p := range int32(2) {
				created, err := c.EnsurePartition(ctx, "t", p, client.PartitionConfig{Retention: -1, Durability: client.DurabilityFsync})
				if err != nil {
					t.Fatal(err)
				}
				if created != want {
					t.Errorf("EnsurePartition(t, %d): created %v, want %v", p, created, want)
				}
			}
		}
		infos, err := c.ListPartitions(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 2 || infos[0].Partition != 0 || infos[1].Partition != 1 || infos[0].Topic != "t" {
			t.Errorf("ListPartitions(t) = %+v", infos)
		}
		all, err := c.ListPartitions(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 || all[0].Topic != "other" {
			t.Errorf("ListPartitions() = %+v", all)
		}

		p := newProducer(t, c, "t", client.WithPartitioner(client.ManualPartitioner()))
		if _, err := p.ProduceSync(ctx, client.Record{Partition: 1, Value: []byte("a")}, client.Record{Partition: 1, Value: []byte("b")}); err != nil {
			t.Fatal(err)
		}
		offs, err := c.Offsets(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		want := []client.PartitionOffsets{{Partition: 0, Start: 0, End: 0}, {Partition: 1, Start: 0, End: 2}}
		if len(offs) != 2 || offs[0] != want[0] || offs[1] != want[1] {
			t.Errorf("Offsets(t) = %+v, want %+v", offs, want)
		}
		if offs, err := c.Offsets(ctx, "t", 1); err != nil || len(offs) != 1 || offs[0] != want[1] {
			t.Errorf("Offsets(t, 1) = %+v, %v", offs, err)
		}
		if _, err := c.Offsets(ctx, "t", 9); !client.IsNotFound(err) {
			t.Errorf("Offsets(t, 9): %v, want NotFound", err)
		}
		if _, err := c.Offsets(ctx, "nope"); !client.IsNotFound(err) {
			t.Errorf("Offsets(nope): %v, want NotFound", err)
		}

		for _, want := range []bool{true, false} {
			removed, err := c.RemovePartition(ctx, "t", 1)
			if err != nil {
				t.Fatal(err)
			}
			if removed != want {
				t.Errorf("RemovePartition: removed %v, want %v", removed, want)
			}
		}
	})
}

func TestAdminInvalid(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 1)
		c := newClient(t, url)
		tests := []struct {
			name      string
			topic     string
			partition int32
			cfg       client.PartitionConfig
		}{
			{"empty topic", "", 0, client.PartitionConfig{}},
			{"negative partition", "t", -1, client.PartitionConfig{}},
			{"negative segment size", "t", 0, client.PartitionConfig{SegmentBytes: -1}},
			{"unknown durability", "t", 0, client.PartitionConfig{Durability: 9}},
			{"local retention without tiering", "t", 0, client.PartitionConfig{LocalRetention: time.Hour}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := c.EnsurePartition(ctx, tt.topic, tt.partition, tt.cfg); err == nil {
					t.Error("no error")
				}
			})
		}
	})
}

func TestNewClient(t *testing.T) {
	for _, bad := range []string{"", "ftp://host:1", "http://", "http://a b"} {
		if _, err := client.New(client.WithSPU(bad)); err == nil {
			t.Errorf("New with SPU URL %q: no error", bad)
		}
	}
	spu := newFakeSPU(t, "t", 1)
	// A URL without a scheme gets http://.
	c := newClient(t, spu.srv.Listener.Addr().String())
	if _, err := c.ListPartitions(testContext(t), "t"); err != nil {
		t.Errorf("host:port URL: %v", err)
	}
}
