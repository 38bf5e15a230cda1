// Package provisioner gives code outside the control plane (the CLI's
// `spate control-plane serve`, tests) the provisioners that run SPUs, to
// pass as server.Config.Provisioner. The implementations live in the
// control plane's internal provision package.
package provisioner

import (
	"log/slog"

	"github.com/spatehq/spate/control-plane/internal/provision"
)

// Provisioner runs the SPUs of clusters; see server.Config.Provisioner.
type Provisioner = provision.Provisioner

// LocalConfig configures the local-process provisioner: where the SPUs'
// data and logs go, which binary runs them, which ports they get.
type LocalConfig = provision.LocalConfig

// Local runs each SPU as a `spate spu serve` process on this machine and
// restarts one that dies.
type Local = provision.Local

// NewLocal returns a local-process provisioner; see provision.NewLocal.
func NewLocal(cfg LocalConfig, logger *slog.Logger) *Local { return provision.NewLocal(cfg, logger) }
