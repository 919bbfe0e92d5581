// Command reverb-bench is a load generator for Pusher protocol 7 servers
// (Laravel Reverb, soketi, ours) and a bare reference server that gives the
// machine's ceiling. See bench/README.md. It runs on Linux only (raw epoll,
// eventfd, /proc); built for another OS it says so and exits with status 1.
//
//	reverb-bench connect|fanout|whisper|churn|http|compare [flags]
//	reverb-bench ref [--host 127.0.0.1] [--port 8090] [--loops 0]
//	reverb-bench worker   (internal: started by the coordinator)
package main
