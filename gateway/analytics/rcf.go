package analytics

import (
	"container/heap"
	"math"
	"math/rand/v2"
)

// forest is a robust random cut forest (Guha, Mishra, Roy and Schrijvers,
// "Robust Random Cut Forest Based Anomaly Detection on Streams", ICML
// 2016): trees of random cuts over a time-decayed sample of the stream.
// A point's anomaly score is its collusive displacement (CoDisp) averaged
// over the trees: how much of a tree the point's insertion displaces,
// taken at the ancestor where that is largest. Points that are easy to
// cut away from the rest (spikes, new patterns) score high.
type forest struct {
	trees  []*rcTree
	size   int     // sample size per tree
	lambda float64 // time decay: 1/timeDecay
	seen   int64
}

// newForest makes a forest; the seed makes a run reproducible (replays
// after a restart score alike). Each tree has its own random source.
// (Updating trees in parallel was tried: on two vCPUs it was slower, the
// work being pointer chasing that the siblings' shared cache bounds.)
func newForest(trees, sampleSize int, timeDecay float64, seed uint64) *forest {
	f := &forest{size: sampleSize}
	if timeDecay > 0 {
		f.lambda = 1 / timeDecay
	}
	for i := range trees {
		f.trees = append(f.trees, &rcTree{rnd: rand.New(rand.NewPCG(seed, uint64(i)^0x9e3779b97f4a7c15))})
	}
	return f
}

// score returns the point's anomaly score and, per dimension, how much of
// it the point's values above (high) and below (low) the rest account
// for; then it updates the samples with the point. The score is 0 until
// every tree has a full sample.
func (f *forest) score(p []float64) (float64, []float64, []float64) {
	f.seen++
	warm := f.seen > int64(f.size)
	high, low := make([]float64, len(p)), make([]float64, len(p))
	var total float64
	for _, t := range f.trees {
		total += t.update(p, warm, f.size, f.lambda, f.seen, high, low)
	}
	if !warm {
		return 0, high, low
	}
	n := float64(len(f.trees))
	for d := range high {
		high[d] /= n
		low[d] /= n
	}
	return total / n, high, low
}

// update inserts the point, scores it (when warm), and keeps it in the
// tree's sample or takes it out again.
func (t *rcTree) update(p []float64, warm bool, size int, lambda float64, seen int64, high, low []float64) float64 {
	leaf := t.insert(p, t.rnd)
	score := 0.0
	if warm {
		score = t.codisp(leaf, p, high, low)
	}
	// Time-decayed reservoir: a point's weight is log(-log u) - λ·t; each
	// tree keeps the size points of smallest weight.
	w := math.Log(-math.Log(t.rnd.Float64()+1e-300)) - lambda*float64(seen)
	switch {
	case t.sample.Len() < size:
		heap.Push(&t.sample, sampled{leaf: leaf, weight: w})
	case w < t.sample.items[0].weight:
		old := heap.Pop(&t.sample).(sampled)
		t.remove(old.leaf)
		heap.Push(&t.sample, sampled{leaf: leaf, weight: w})
	default:
		t.remove(leaf)
	}
	return score
}

// rcNode is a node of a random cut tree: a leaf holds a point (count
// times, for duplicates); an internal node a cut and the bounding box of
// the points below it.
type rcNode struct {
	parent      *rcNode
	left, right *rcNode
	dim         int
	cut         float64
	min, max    []float64
	mass        int
	point       []float64 // leaves only
}

func (n *rcNode) leaf() bool { return n.point != nil }

type rcTree struct {
	root   *rcNode
	sample sampleHeap
	rnd    *rand.Rand
}

type sampled struct {
	leaf   *rcNode
	weight float64
}

// sampleHeap is a max-heap of weights: the root is the first to go.
type sampleHeap struct{ items []sampled }

func (h sampleHeap) Len() int           { return len(h.items) }
func (h sampleHeap) Less(i, j int) bool { return h.items[i].weight > h.items[j].weight }
func (h sampleHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *sampleHeap) Push(x any)        { h.items = append(h.items, x.(sampled)) }
func (h *sampleHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// insert adds a point (the paper's InsertPoint) and returns its leaf.
func (t *rcTree) insert(p []float64, rnd *rand.Rand) *rcNode {
	if t.root == nil {
		t.root = &rcNode{point: append([]float64(nil), p...), mass: 1}
		return t.root
	}
	n := t.root
	for {
		lo, hi := n.bounds()
		// A random cut in the box that also holds p, each dimension chosen
		// in proportion to its extent.
		var span float64
		for d := range p {
			span += math.Max(hi[d], p[d]) - math.Min(lo[d], p[d])
		}
		if span == 0 { // p equals the point of this leaf
			for m := n; m != nil; m = m.parent {
				m.mass++
			}
			return n
		}
		r := rnd.Float64() * span
		dim, cut := 0, 0.0
		for d := range p {
			a, b := math.Min(lo[d], p[d]), math.Max(hi[d], p[d])
			if r < b-a || d == len(p)-1 {
				dim, cut = d, a+math.Min(r, b-a)
				break
			}
			r -= b - a
		}
		// The cut separates p from the box: p gets a new leaf here.
		if cut < lo[dim] || (cut >= hi[dim] && p[dim] > cut) {
			leaf := &rcNode{point: append([]float64(nil), p...), mass: 1}
			parent := &rcNode{dim: dim, cut: cut, parent: n.parent, mass: n.mass + 1}
			if p[dim] <= cut {
				parent.left, parent.right = leaf, n
			} else {
				parent.left, parent.right = n, leaf
			}
			parent.min, parent.max = append([]float64(nil), lo...), append([]float64(nil), hi...)
			extend(parent.min, parent.max, p)
			t.replace(n, parent)
			leaf.parent, n.parent = parent, parent
			for m := parent.parent; m != nil; m = m.parent {
				m.mass++
				extend(m.min, m.max, p)
			}
			return leaf
		}
		if n.leaf() {
			// Every cut falls inside a leaf's zero-width box but p's: only
			// reached through rounding; treat p as a duplicate.
			for m := n; m != nil; m = m.parent {
				m.mass++
			}
			return n
		}
		if p[n.dim] <= n.cut {
			n = n.left
		} else {
			n = n.right
		}
	}
}

func (n *rcNode) bounds() ([]float64, []float64) {
	if n.leaf() {
		return n.point, n.point
	}
	return n.min, n.max
}

// extend grows a box, in place, to hold p.
func extend(lo, hi, p []float64) {
	for d := range p {
		lo[d], hi[d] = math.Min(lo[d], p[d]), math.Max(hi[d], p[d])
	}
}

// replace puts m where n was under n's parent.
func (t *rcTree) replace(n, m *rcNode) {
	switch {
	case n.parent == nil:
		t.root = m
	case n.parent.left == n:
		n.parent.left = m
	default:
		n.parent.right = m
	}
}

// remove takes one copy of a leaf's point out (the paper's DeletePoint).
func (t *rcTree) remove(leaf *rcNode) {
	if leaf.mass > 1 {
		for m := leaf; m != nil; m = m.parent {
			m.mass--
		}
		return
	}
	parent := leaf.parent
	if parent == nil {
		t.root = nil
		return
	}
	sibling := parent.left
	if sibling == leaf {
		sibling = parent.right
	}
	t.replace(parent, sibling)
	sibling.parent = parent.parent
	for m := sibling.parent; m != nil; m = m.parent {
		m.mass--
		m.fitBox()
	}
}

// fitBox recomputes, in place, an internal node's box from its children's.
func (n *rcNode) fitBox() {
	alo, ahi := n.left.bounds()
	blo, bhi := n.right.bounds()
	for d := range n.min {
		n.min[d], n.max[d] = math.Min(alo[d], blo[d]), math.Max(ahi[d], bhi[d])
	}
}

// codisp is the point's collusive displacement: over its ancestors, the
// largest ratio of the sibling's mass to the mass of the subtree holding
// the point. It also spreads that score over the dimensions in which the
// point lies outside the sibling's box, as high or low contributions.
func (t *rcTree) codisp(leaf *rcNode, p []float64, high, low []float64) float64 {
	best := 0.0
	var bestNode *rcNode
	for n := leaf; n.parent != nil; n = n.parent {
		sib := n.parent.left
		if sib == n {
			sib = n.parent.right
		}
		if r := float64(sib.mass) / float64(n.mass); r > best {
			best, bestNode = r, sib
		}
	}
	if bestNode == nil {
		return 0
	}
	lo, hi := bestNode.bounds()
	var gaps float64
	for d := range p {
		gaps += math.Max(p[d]-hi[d], 0) + math.Max(lo[d]-p[d], 0)
	}
	if gaps > 0 {
		for d := range p {
			high[d] += best * math.Max(p[d]-hi[d], 0) / gaps
			low[d] += best * math.Max(lo[d]-p[d], 0) / gaps
		}
	}
	return best
}
