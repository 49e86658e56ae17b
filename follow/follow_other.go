//go:build !linux

package follow

import (
	"context"
	"errors"
	"log/slog"
)

// Subscribe fails: there is no netlink outside Linux.
func Subscribe(ctx context.Context, log *slog.Logger) (<-chan Event, error) {
	return nil, errors.ErrUnsupported
}
