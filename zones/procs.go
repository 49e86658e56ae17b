package zones

// Process is a program running inside a zone.
type Process struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
}
