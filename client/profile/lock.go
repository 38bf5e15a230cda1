package profile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// Lock takes the lock of the configuration file at path (a file next to
// it, path + ".lock", mode 0600), waiting for other processes until ctx
// ends, and returns the function that releases it. Hold it around a
// read-modify-write of the file (Update does) and around the refresh of a
// login's tokens, so that two processes never spend the same refresh
// token: the control plane revokes a login whose refresh token is used
// twice.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("profile: create config directory: %w", err)
	}
	fl := flock.New(path+".lock", flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil || !ok {
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("profile: lock config file %s: %w", path, err)
	}
	return func() { _ = fl.Unlock() }, nil
}

// Update locks the configuration file at path, loads it, applies change
// and, if change succeeds, saves it, so that concurrent spate processes do
// not undo each other's changes. It returns the updated Config.
func Update(ctx context.Context, path string, change func(*Config) error) (*Config, error) {
	unlock, err := Lock(ctx, path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := change(c); err != nil {
		return nil, err
	}
	if err := c.Save(); err != nil {
		return nil, err
	}
	return c, nil
}
