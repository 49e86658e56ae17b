package lab

import _ "embed" // for Zones

// Zones is the zones file for the lab: the built-in default (wan, lan,
// offline) written out, so that the lab shows the file a user would write,
// with the lab's servers as the targets of nszone check. nszone lab uses
// it, and the end-to-end tests start from it.
//
//go:embed zones.yaml
var Zones string
