//go:build linux

package bench

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// samples returns n draws from a distribution shaped like real latencies:
// a log-normal body around 1 ms plus a sprinkle of small and huge values.
func samples(r *rand.Rand, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		switch r.IntN(20) {
		case 0:
			out[i] = r.Int64N(200) // exact region and the first octaves
		case 1:
			out[i] = r.Int64N(1 << 40) // far tail
		default:
			out[i] = int64(math.Exp(r.NormFloat64()*1.5 + math.Log(1e6)))
		}
	}
	return out
}

var quantiles = []float64{0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1}

// TestHistogramQuantilesVsSorted compares every reported percentile with
// the exact order statistic of the same rank: the bucket layout promises
// an error of at most 1/64 of the value.
func TestHistogramQuantilesVsSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 1000, 100000} {
		vals := samples(r, n)
		var h Histogram
		for _, v := range vals {
			h.Record(v)
		}
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		for _, q := range quantiles {
			rank := max(int(math.Ceil(q*float64(n))), 1)
			want := sorted[rank-1]
			got := h.Quantile(q)
			if tol := want/64 + 1; got < want-tol || got > want+tol {
				t.Errorf("n=%d q=%v: got %d, exact %d (tolerance %d)", n, q, got, want, tol)
			}
		}
		if h.Count() != uint64(n) || h.Min() != sorted[0] || h.Max() != sorted[n-1] {
			t.Errorf("n=%d: count/min/max %d/%d/%d, want %d/%d/%d", n, h.Count(), h.Min(), h.Max(), n, sorted[0], sorted[n-1])
		}
	}
}

// TestHistogramBuckets checks that every value falls inside the bounds of
// its bucket and that bucket indices never decrease with the value.
func TestHistogramBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	prev := -1
	for v := int64(0); v < 5000; v++ {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index(%d)=%d < index(%d)=%d", v, i, v-1, prev)
		}
		prev = i
	}
	for range 100000 {
		v := r.Int64N(1 << 47)
		lo, w := histBounds(histIndex(v))
		if v < lo || v >= lo+w {
			t.Fatalf("value %d outside its bucket [%d,%d)", v, lo, lo+w)
		}
		if lo >= histSub && w*histSub > lo {
			t.Fatalf("bucket [%d,+%d) wider than 1/64", lo, w)
		}
	}
	if i := histIndex(math.MaxInt64); i != histBuckets-1 {
		t.Fatalf("max value lands in bucket %d, want the last", i)
	}
}

// TestHistogramMergeAndWire checks that histograms recorded separately,
// sent through JSON and merged equal one histogram of all samples, which is
// how worker results combine.
func TestHistogramMergeAndWire(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	vals := samples(r, 30000)
	var whole Histogram
	parts := make([]Histogram, 3)
	for i, v := range vals {
		whole.Record(v)
		parts[i%3].Record(v)
	}
	var merged Histogram
	for i := range parts {
		b, err := json.Marshal(&parts[i])
		if err != nil {
			t.Fatal(err)
		}
		var back Histogram
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		merged.Merge(&back)
	}
	if merged.counts != whole.counts || merged.Count() != whole.Count() || merged.Min() != whole.Min() || merged.Max() != whole.Max() {
		t.Fatal("merged histogram differs from the single one")
	}
	if math.Abs(merged.Mean()-whole.Mean()) > 1e-6*whole.Mean() {
		t.Fatalf("mean %v vs %v", merged.Mean(), whole.Mean())
	}
	var bad Histogram
	if err := json.Unmarshal([]byte(`{"n":5,"b":[1,2]}`), &bad); err == nil {
		t.Fatal("a count that does not match the buckets was accepted")
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Summary().Count != 0 {
		t.Fatal("empty histogram reports samples")
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := range b.N {
		h.Record(int64(i) * 7919)
	}
}
