package analytics

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// Injected spikes rank above normal points: of the 20 highest scores in a
// noisy periodic signal, the 10 spikes take the top 10.
func TestRandomCutForestRanksSpikes(t *testing.T) {
	f := newForest(50, 128, 100000, 1)
	rnd := rand.New(rand.NewPCG(7, 7))
	type scored struct {
		i     int
		score float64
		spike bool
	}
	var all []scored
	spikes := map[int]bool{}
	for k := range 10 {
		spikes[600+k*137] = true
	}
	var spikeHigh, spikeLow float64
	for i := range 2000 {
		x := 10*math.Sin(float64(i)/20) + rnd.NormFloat64()
		y := 5 + rnd.NormFloat64()
		if spikes[i] {
			x += 40
		}
		s, high, low := f.score([]float64{x, y})
		if spikes[i] {
			spikeHigh += high[0]
			spikeLow += low[0] + high[1] + low[1]
		}
		if i >= 300 {
			all = append(all, scored{i, s, spikes[i]})
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a].score > all[b].score })
	for k := range 10 {
		if !all[k].spike {
			t.Fatalf("rank %d is point %d (score %.2f), not a spike; top: %v", k, all[k].i, all[k].score, all[:12])
		}
	}
	if spikeHigh <= 4*spikeLow {
		t.Fatalf("the spikes' explanation should blame x being high: x high %.2f, everything else %.2f", spikeHigh, spikeLow)
	}
}

// The forest forgets: after the sample is replaced, trees hold exactly
// their sample, and removing every point leaves them empty.
func TestRandomCutTreeMass(t *testing.T) {
	f := newForest(3, 16, 0, 2)
	for i := range 500 {
		f.score([]float64{float64(i % 7), float64(i % 5)})
	}
	for _, tr := range f.trees {
		if int(tr.nodes[tr.root].mass) != tr.sample.Len() {
			t.Fatalf("root mass %d, sample %d", tr.nodes[tr.root].mass, tr.sample.Len())
		}
		for tr.sample.Len() > 0 {
			tr.remove(tr.sample.items[tr.sample.Len()-1].leaf)
			tr.sample.items = tr.sample.items[:tr.sample.Len()-1]
		}
		if tr.root != none || len(tr.free) != len(tr.nodes) {
			t.Fatalf("after removing everything: root %d, %d of %d nodes free", tr.root, len(tr.free), len(tr.nodes))
		}
	}
}
