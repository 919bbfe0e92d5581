package cluster_test

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's tests on one redis-server and then again on a
// Redis Cluster of three masters, each test starting its own. Set
// REVERB_TEST_REDIS= "plain" or "cluster" to run one mode only.
func TestMain(m *testing.M) {
	switch redisMode {
	case "plain":
		redisMode = ""
		os.Exit(m.Run())
	case "cluster":
		os.Exit(m.Run())
	}
	code := m.Run()
	if code != 0 {
		os.Exit(code)
	}
	fmt.Println("=== the same tests on a Redis Cluster (REVERB_TEST_REDIS=cluster)")
	redisMode = "cluster"
	os.Exit(m.Run())
}
