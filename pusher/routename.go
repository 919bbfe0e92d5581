package pusher

// RouteName names the HTTP API endpoint a request path (after the route
// prefix) is for, for metrics: "events", "batch_events", "channels",
// "channel", "channel_users", "connections", "terminate_connections", "up",
// or "other" for anything else. It does not allocate.
func RouteName(path []byte) string {
	rt, _, _ := apiMatch(path)
	switch rt {
	case routeUp:
		return "up"
	case routeEvents:
		return "events"
	case routeBatch:
		return "batch_events"
	case routeChannels:
		return "channels"
	case routeChannel:
		return "channel"
	case routeUsers:
		return "channel_users"
	case routeTerminate:
		return "terminate_connections"
	case routeConnections:
		return "connections"
	}
	return "other"
}
