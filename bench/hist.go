//go:build linux

package bench

import (
	"encoding/json"
	"errors"
	"math"
	"math/bits"
	"time"
)

// Bucket layout: values below histSub are exact; above, every power of two
// is split into histSub linear sub-buckets, so a bucket is never wider than
// 1/64 of its lower bound and a reported percentile is within 1.6 % of the
// true sample. Values at or above 2^(histMaxExp+1) ns (~3 days) share the
// last bucket.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histMaxExp  = 47
	histBuckets = histSub + (histMaxExp-histSubBits+1)*histSub
)

// Histogram counts non-negative int64 samples (nanoseconds here) in
// log-linear buckets. Histograms from different loops and processes merge by
// adding counts, which is how workers' latencies become one distribution.
// The zero value is empty and ready. Not safe for concurrent use: keep one
// per goroutine and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

func histIndex(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	sh := e - histSubBits
	return sh*histSub + int(v>>sh)
}

// histBounds returns the smallest value of bucket i and its width.
func histBounds(i int) (lo, width int64) {
	if i < histSub {
		return int64(i), 1
	}
	k := i - histSub
	sh := k / histSub
	sub := int64(k%histSub + histSub)
	return sub << sh, 1 << sh
}

// Record adds one sample; negative samples count as 0 (a receiver whose
// clock reads slightly behind the sender's). It does not allocate.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every sample of o to h. o is only read.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest sample, 0 when empty.
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest sample, 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the arithmetic mean, 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the sample of rank ceil(q*n) (q in [0,1]) as the middle
// of its bucket, clamped to the exact min and max; 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return h.max
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum < rank {
			continue
		}
		lo, w := histBounds(i)
		v := lo + (w-1)/2
		return min(max(v, h.min), h.max)
	}
	return h.max
}

// Summary returns the usual percentiles in one value for reports.
func (h *Histogram) Summary() LatencySummary {
	return LatencySummary{
		Count: h.n,
		Mean:  Dur(h.Mean()),
		Min:   Dur(h.min),
		P50:   Dur(h.Quantile(0.50)),
		P90:   Dur(h.Quantile(0.90)),
		P99:   Dur(h.Quantile(0.99)),
		P999:  Dur(h.Quantile(0.999)),
		Max:   Dur(h.max),
	}
}

// LatencySummary is a histogram reduced to what reports print. Durations
// marshal as float milliseconds.
type LatencySummary struct {
	Count uint64 `json:"count"`
	Mean  Dur    `json:"mean_ms"`
	Min   Dur    `json:"min_ms"`
	P50   Dur    `json:"p50_ms"`
	P90   Dur    `json:"p90_ms"`
	P99   Dur    `json:"p99_ms"`
	P999  Dur    `json:"p999_ms"`
	Max   Dur    `json:"max_ms"`
}

// Dur is a duration in nanoseconds that marshals as milliseconds with
// microsecond precision, the unit latency readers compare.
type Dur int64

// MarshalJSON writes d as float milliseconds.
func (d Dur) MarshalJSON() ([]byte, error) {
	return json.Marshal(math.Round(float64(d)/1e3) / 1e3)
}

// String formats d the way time.Duration does, rounded to 3 significant
// figures below a second.
func (d Dur) String() string {
	t := time.Duration(d)
	switch {
	case t >= time.Second:
		return t.Round(time.Millisecond).String()
	case t >= time.Millisecond:
		return t.Round(10 * time.Microsecond).String()
	case t >= time.Microsecond:
		return t.Round(10 * time.Nanosecond).String()
	}
	return t.String()
}

// histWire is the sparse JSON form workers send: B holds index,count pairs
// of the non-empty buckets.
type histWire struct {
	N   uint64   `json:"n"`
	Sum float64  `json:"sum"`
	Min int64    `json:"min"`
	Max int64    `json:"max"`
	B   []uint64 `json:"b"`
}

// MarshalJSON encodes the non-empty buckets only.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	w := histWire{N: h.n, Sum: h.sum, Min: h.min, Max: h.max}
	for i, c := range h.counts {
		if c != 0 {
			w.B = append(w.B, uint64(i), c)
		}
	}
	return json.Marshal(w)
}

var errHistWire = errors.New("bench: malformed histogram")

// UnmarshalJSON replaces h with the encoded histogram.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var w histWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if len(w.B)%2 != 0 {
		return errHistWire
	}
	*h = Histogram{n: w.N, sum: w.Sum, min: w.Min, max: w.Max}
	var total uint64
	for i := 0; i < len(w.B); i += 2 {
		if w.B[i] >= histBuckets {
			return errHistWire
		}
		h.counts[w.B[i]] += w.B[i+1]
		total += w.B[i+1]
	}
	if total != w.N {
		return errHistWire
	}
	return nil
}
