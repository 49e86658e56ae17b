package firewall

// For the external tests (apply_test.go), which use firewalltest's fake and
// so cannot live in this package.
var (
	SamplePolicy = samplePolicy
	HookRule     = hookRule
	ManyZones    = manyZones
)
