// Command webhook-sink answers every POST with 200 and counts requests and
// events, so load runs can keep webhooks configured (bench/run-short.sh).
//
//	webhook-sink -addr 127.0.0.1:18099
//
// On SIGTERM or SIGINT it prints "<requests> requests, <events> events".
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18099", "listen address")
	flag.Parse()
	var requests, events atomic.Int64
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Events []json.RawMessage }
		b, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		_ = json.Unmarshal(b, &body)
		requests.Add(1)
		events.Add(int64(len(body.Events)))
		w.WriteHeader(http.StatusOK)
	})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		fmt.Printf("webhook sink: %d requests, %d events\n", requests.Load(), events.Load())
		os.Exit(0)
	}()
	log.Fatal(http.ListenAndServe(*addr, nil))
}
