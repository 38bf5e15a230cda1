package topiccmd_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/topiccmd"
	"github.com/spatehq/spate/client/profile"
)

// fakeTopics is a TopicService that records the settings of each create
// and update, answers with them, and describes two topics: "history",
// tiered with a remote tier, and "plain".
type fakeTopics struct {
	controlplanev1connect.UnimplementedTopicServiceHandler

	mu   sync.Mutex                    // guards last
	last *controlplanev1.TopicSettings // the settings of the last request
}

func (f *fakeTopics) record(s *controlplanev1.TopicSettings) *controlplanev1.Topic {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = s
	return &controlplanev1.Topic{Spec: &controlplanev1.TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1, Settings: s},
		State: controlplanev1.TopicState_TOPIC_STATE_READY}
}

func (f *fakeTopics) settings() *controlplanev1.TopicSettings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeTopics) CreateTopic(_ context.Context, req *connect.Request[controlplanev1.CreateTopicRequest]) (*connect.Response[controlplanev1.CreateTopicResponse], error) {
	return connect.NewResponse(&controlplanev1.CreateTopicResponse{Topic: f.record(req.Msg.Spec.Settings)}), nil
}

func (f *fakeTopics) UpdateTopic(_ context.Context, req *connect.Request[controlplanev1.UpdateTopicRequest]) (*connect.Response[controlplanev1.UpdateTopicResponse], error) {
	return connect.NewResponse(&controlplanev1.UpdateTopicResponse{Topic: f.record(req.Msg.Settings)}), nil
}

func (f *fakeTopics) DescribeTopic(_ context.Context, req *connect.Request[controlplanev1.DescribeTopicRequest]) (*connect.Response[controlplanev1.DescribeTopicResponse], error) {
	const day = int64(24 * time.Hour / time.Millisecond)
	t := &controlplanev1.Topic{
		Spec:        &controlplanev1.TopicSpec{Name: req.Msg.Name, Partitions: 2, ReplicationFactor: 1, Settings: &controlplanev1.TopicSettings{Tiering: proto.Bool(false), RetentionMs: proto.Int64(7 * day)}},
		State:       controlplanev1.TopicState_TOPIC_STATE_READY,
		CreatedAtMs: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).UnixMilli(),
		Partitions: []*controlplanev1.PartitionStatus{
			{Partition: 0, Leader: 1, Replicas: []int32{1}, Status: "online", StartOffset: 0, EndOffset: 10, SizeBytes: 100, RemoteStartOffset: -1},
			{Partition: 1, Leader: 2, Replicas: []int32{2}, Status: "online", StartOffset: 0, EndOffset: 20, SizeBytes: 200, RemoteStartOffset: -1},
		},
	}
	if req.Msg.Name == "history" {
		t.Spec.Settings = &controlplanev1.TopicSettings{Tiering: proto.Bool(true), RetentionMs: proto.Int64(3 * 365 * day), LocalRetentionMs: proto.Int64(7 * day), LocalRetentionBytes: proto.Int64(-1)}
		p0, p1 := t.Partitions[0], t.Partitions[1]
		p0.StartOffset, p0.EndOffset, p0.SizeBytes, p0.RemoteStartOffset, p0.RemoteSizeBytes, p0.UploadLagBytes = 4000, 5000, 1000, 0, 4000, 0
		p1.StartOffset, p1.EndOffset, p1.SizeBytes, p1.UploadLagBytes, p1.TieringError = 0, 3000, 3000, 2500, "object store unreachable"
	}
	return connect.NewResponse(&controlplanev1.DescribeTopicResponse{Topic: t}), nil
}

// env is a fake control plane and a config file whose profile uses it.
type env struct {
	t      *testing.T
	topics *fakeTopics
	config string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, topics: &fakeTopics{}, config: filepath.Join(t.TempDir(), "config.toml")}
	mux := http.NewServeMux()
	mux.Handle(controlplanev1connect.NewTopicServiceHandler(e.topics))
	srv := httptest.NewUnstartedServer(mux)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	cfg, err := profile.Load(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Set("fake", profile.Profile{ControlPlane: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Switch("fake"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs `spate topic ARGS` in-process, as root.Main would.
func (e *env) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, ConfigPath: e.config}
	root := &cobra.Command{Use: "spate", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	root.AddCommand(topiccmd.NewCmdTopic(f))
	root.SetArgs(append([]string{"topic"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString(cmdutil.Explain(err, f.Hint()))
	}
	return out.String(), errOut.String(), cmdutil.ExitCode(err)
}

// TestTieringFlags: the flags of create and update become the settings
// on the wire, or a usage error before anything is sent.
func TestTieringFlags(t *testing.T) {
	e := newEnv(t)
	const day = int64(24 * time.Hour / time.Millisecond)
	tests := []struct {
		name string
		args []string
		want *controlplanev1.TopicSettings // nil: a usage error saying msg
		msg  string
	}{
		{name: "seven days on the SPU, three years in S3",
			args: []string{"create", "history", "--no-wait", "--tiering", "--retention-time", "3y", "--local-retention-time", "7d"},
			want: &controlplanev1.TopicSettings{Tiering: proto.Bool(true), RetentionMs: proto.Int64(3 * 365 * day), LocalRetentionMs: proto.Int64(7 * day)}},
		{name: "local bytes",
			args: []string{"create", "history", "--no-wait", "--tiering", "--retention-bytes", "-1", "--local-retention-bytes", "1073741824"},
			want: &controlplanev1.TopicSettings{Tiering: proto.Bool(true), RetentionBytes: proto.Int64(-1), LocalRetentionBytes: proto.Int64(1 << 30)}},
		{name: "create without --tiering leaves it to the cluster",
			args: []string{"create", "plain", "--no-wait", "--retention-time", "7d"},
			want: &controlplanev1.TopicSettings{RetentionMs: proto.Int64(7 * day)}},
		{name: "update turns tiering off",
			args: []string{"update", "history", "--tiering=false"},
			want: &controlplanev1.TopicSettings{Tiering: proto.Bool(false)}},
		{name: "update local retention only",
			args: []string{"update", "history", "--local-retention-time", "1d"},
			want: &controlplanev1.TopicSettings{LocalRetentionMs: proto.Int64(day)}},
		{name: "local as long as the whole log",
			args: []string{"update", "history", "--local-retention-time", "forever", "--local-retention-bytes", "-1"},
			want: &controlplanev1.TopicSettings{LocalRetentionMs: proto.Int64(-1), LocalRetentionBytes: proto.Int64(-1)}},
		{name: "nothing to update", args: []string{"update", "history"}, msg: "--tiering, --local-retention-time, --local-retention-bytes"},
		{name: "bad local bytes", args: []string{"update", "history", "--local-retention-bytes", "-2"}, msg: "--local-retention-bytes must be positive, or -1"},
		{name: "bad local duration", args: []string{"update", "history", "--local-retention-time", "7w"}, msg: "unknown unit"},
		{name: "local longer than whole", args: []string{"create", "x", "--tiering", "--retention-time", "1d", "--local-retention-time", "2d"},
			msg: "--local-retention-time 2d exceeds --retention-time 1d"},
		{name: "local larger than whole", args: []string{"create", "x", "--tiering", "--retention-bytes", "1000", "--local-retention-bytes", "2000"},
			msg: "--local-retention-bytes 2000 exceeds --retention-bytes 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.topics.record(nil)
			out, errOut, code := e.run(tt.args...)
			if tt.want == nil {
				if code != cmdutil.ExitUsage || !strings.Contains(errOut, tt.msg) {
					t.Fatalf("exit %d, want %d saying %q\nstderr: %s", code, cmdutil.ExitUsage, tt.msg, errOut)
				}
				if got := e.topics.settings(); got != nil {
					t.Errorf("sent %v", got)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if got := e.topics.settings(); !proto.Equal(got, tt.want) {
				t.Errorf("sent %v, want %v", got, tt.want)
			}
		})
	}
	// update says what tiering is now.
	out, _, _ := e.run("update", "history", "--tiering", "--local-retention-time", "7d")
	if !strings.Contains(out, "tiering on, local retention 7d, local retention bytes default") {
		t.Errorf("update said %q", out)
	}
	out, _, _ = e.run("update", "history", "--tiering=false")
	if !strings.Contains(out, "tiering off") {
		t.Errorf("update said %q", out)
	}
}

// TestDescribeTiering: describe shows the tiering settings and, per
// partition, the local and remote tiers, in each output format.
func TestDescribeTiering(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		args  []string
		want  []string // regular expressions, each matched against stdout
		avoid []string
	}{
		{name: "table", args: []string{"describe", "history"}, want: []string{
			`(?m)^Tiering:\s+on$`,
			`(?m)^Retention time:\s+3y$`,
			`(?m)^Local retention time:\s+7d$`,
			`(?m)^Local retention bytes:\s+no limit below retention bytes$`,
			`(?m)^PARTITION\s+LEADER\s+REPLICAS\s+STATUS\s+LOCAL START\s+REMOTE START\s+END\s+LOCAL SIZE\s+REMOTE SIZE\s+UPLOAD LAG$`,
			`(?m)^0\s+1\s+\[1\]\s+online\s+4000\s+0\s+5000\s+1000\s+4000\s+0$`,
			`(?m)^1\s+2\s+\[2\]\s+online\s+0\s+-\s+3000\s+3000\s+0\s+2500$`,
			`(?m)^partition 1: uploads failing: object store unreachable$`,
		}},
		{name: "untiered table", args: []string{"describe", "plain"}, want: []string{
			`(?m)^Tiering:\s+off$`,
			`(?m)^PARTITION\s+LEADER\s+REPLICAS\s+STATUS\s+START\s+END\s+SIZE$`,
		}, avoid: []string{`REMOTE`, `Local retention`}},
		{name: "json", args: []string{"describe", "history", "-o", "json"}, want: []string{
			`"tiering": true`,
			`"local_retention_ns": 604800000000000`,
			`"local_retention_bytes": -1`,
			`"remote_start_offset": 0,\s+"remote_size_bytes": 4000,\s+"upload_lag_bytes": 0`,
			`"remote_start_offset": -1,\s+"remote_size_bytes": 0,\s+"upload_lag_bytes": 2500,\s+"tiering_error": "object store unreachable"`,
		}},
		{name: "yaml", args: []string{"describe", "history", "-o", "yaml"}, want: []string{
			`tiering: true`,
			`local_retention: 168h0m0s`,
			`remote_size_bytes: 4000`,
			`upload_lag_bytes: 2500`,
			`tiering_error: object store unreachable`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := e.run(tt.args...)
			if code != 0 {
				t.Fatalf("exit %d\nstderr: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !regexp.MustCompile(w).MatchString(out) {
					t.Errorf("output does not match %s:\n%s", w, out)
				}
			}
			for _, a := range tt.avoid {
				if regexp.MustCompile(a).MatchString(out) {
					t.Errorf("output matches %s:\n%s", a, out)
				}
			}
		})
	}
}
