package main

import (
	"testing"

	"github.com/goreverb/reverb/cmd/reverb/config"
)

func TestMetricsWarning(t *testing.T) {
	for _, tc := range []struct {
		host, token string
		warn        bool
	}{
		{"127.0.0.1", "", false},
		{"::1", "", false},
		{"localhost", "", false},
		{"0.0.0.0", "", true},
		{"10.0.0.5", "", true},
		{"0.0.0.0", "secret", false},
	} {
		cfg := &config.Config{Metrics: config.MetricsConfig{Enabled: true, Host: tc.host, Port: 9601, Token: tc.token}}
		if got := metricsWarning(cfg) != ""; got != tc.warn {
			t.Errorf("host %q token %q: warning %v, want %v", tc.host, tc.token, got, tc.warn)
		}
	}
}
