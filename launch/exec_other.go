//go:build !linux

package launch

import "errors"

// Exec fails: zones are Linux network namespaces.
func Exec(o Options) error {
	return &ExitError{Code: ExitSetup, Err: errors.New("nszone exec works only on Linux")}
}
