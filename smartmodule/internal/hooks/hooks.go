// Package hooks holds what package smartmodule registers for the guest
// machinery (smartmodule/internal/guest) to call, which cannot import each
// other both ways: guest uses smartmodule's types.
package hooks

import "github.com/spatehq/spate/smartmodule/abi"

// Init lists the functions smartmodule.Init registered, in order. They run
// when the host calls spate_v1_init; the accumulator is nil when none was
// given and valid only during the call.
var Init []func(params []abi.Param, accumulator []byte) error
