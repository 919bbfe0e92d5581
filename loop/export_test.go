package loop

import "github.com/goreverb/reverb/pusher"

// WithAPIBackend makes the HTTP API use wrap(hub) as its backend, e.g. one
// whose queries block like a clustered node's.
func WithAPIBackend(wrap func(pusher.Backend) pusher.Backend) func(*Config) {
	return func(c *Config) { c.wrapAPI = wrap }
}

// APIInFlight returns how many API requests were handed off the loop and
// not yet answered or dropped on it.
func APIInFlight(s *Server) int64 { return s.apiInFlight.Load() }

// PendingConnections returns the node's connections not yet upgraded.
func PendingConnections(s *Server) int64 { return s.preUpgrade.Load() }
