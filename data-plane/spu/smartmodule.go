package spu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/data-plane/internal/modules"
	"github.com/spatehq/spate/internal/h2c"
	"github.com/spatehq/spate/smartmodule/engine"
)

// SmartModules configures the engine that runs SmartModules on the SPU.
// The engine keeps its compiled modules in DATA-DIR/smartmodules/compiled
// (so that a restart does not compile them again) and the modules fetched from the
// control plane's registry in DATA-DIR/smartmodules/blobs, by digest.
// Without a control plane, streams may still send modules inline.
type SmartModules struct {
	// MemoryLimitBytes bounds the linear memory of each module instance
	// (one per module, per partition of a stream). Default 64 MiB.
	MemoryLimitBytes int64
	// CallTimeout bounds one call into a module (one batch). Default 5s.
	CallTimeout time.Duration
}

// Validate reports negative limits.
func (s SmartModules) Validate() error {
	if s.MemoryLimitBytes < 0 || s.CallTimeout < 0 {
		return errors.New("spu: --smartmodule-memory-limit and --smartmodule-call-timeout must not be negative")
	}
	return nil
}

// smartModules is the SPU's engine and the resolver over it.
type smartModules struct {
	engine   *engine.Engine
	resolver *modules.Resolver
}

// openSmartModules starts the engine and the resolver: names resolve in the
// control plane's registry, called with the SPU's client certificate under
// TLS.
func openSmartModules(cfg Config, st *tlsState, reg prometheus.Registerer, logger *slog.Logger) (*smartModules, error) {
	dir := filepath.Join(cfg.DataDir, "smartmodules")
	eng, err := engine.New(context.Background(), engine.Config{
		CacheDir:         filepath.Join(dir, "compiled"),
		MemoryLimitBytes: cfg.SmartModules.MemoryLimitBytes,
		CallTimeout:      cfg.SmartModules.CallTimeout,
		Logger:           logger,
		Registerer:       reg,
	})
	if err != nil {
		return nil, fmt.Errorf("spu: smartmodule engine: %w", err)
	}
	var hc *http.Client
	if cfg.ControlPlane != "" {
		hc = h2c.NewClient()
		if st != nil {
			hc = h2c.NewTLSClient(st.clientConfig(st.controlPlane))
		}
	}
	res, err := modules.New(modules.Config{
		Engine:       eng,
		Dir:          filepath.Join(dir, "blobs"),
		ControlPlane: cfg.ControlPlane,
		HTTPClient:   hc,
		Logger:       logger,
	})
	if err != nil {
		eng.Close(context.Background())
		return nil, fmt.Errorf("spu: %w", err)
	}
	return &smartModules{engine: eng, resolver: res}, nil
}

// close stops the engine; streams are over by then.
func (s *smartModules) close() {
	if s != nil {
		s.engine.Close(context.Background())
	}
}
