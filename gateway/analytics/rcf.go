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
		f.trees = append(f.trees, &rcTree{root: none, rnd: rand.New(rand.NewPCG(seed, uint64(i)^0x9e3779b97f4a7c15))})
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
	leaf := t.insert(p)
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

// A random cut tree keeps its nodes in one slice and their boxes in
// another (a tree of a 256-point sample has at most 511 nodes), so an
// update walks memory that is close together and allocates nothing once
// the tree has grown: nodes are recycled through a free list.
type rcTree struct {
	nodes  []rcNode
	boxes  []float64 // per node: the box's low corner, then its high corner (a leaf's point twice)
	free   []int32
	dims   int
	root   int32 // none when the tree is empty
	sample sampleHeap
	rnd    *rand.Rand
}

// none is the index of no node.
const none = -1

// rcNode is a node: a leaf holds a point (mass times, for duplicates); an
// internal node a cut, its children and (in boxes) the bounding box of the
// points below it.
type rcNode struct {
	parent, left, right int32
	dim                 int32
	cut                 float64
	mass                int32
	leaf                bool
}

type sampled struct {
	leaf   int32
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

// box returns a node's low and high corners.
func (t *rcTree) box(n int32) ([]float64, []float64) {
	o := int(n) * 2 * t.dims
	return t.boxes[o : o+t.dims : o+t.dims], t.boxes[o+t.dims : o+2*t.dims : o+2*t.dims]
}

// alloc takes a node from the free list or grows the tree.
func (t *rcTree) alloc(n rcNode) int32 {
	if k := len(t.free); k > 0 {
		i := t.free[k-1]
		t.free = t.free[:k-1]
		t.nodes[i] = n
		return i
	}
	t.nodes = append(t.nodes, n)
	t.boxes = append(t.boxes, make([]float64, 2*t.dims)...)
	return int32(len(t.nodes) - 1)
}

// newLeaf makes a leaf holding p.
func (t *rcTree) newLeaf(p []float64, parent int32) int32 {
	i := t.alloc(rcNode{parent: parent, left: none, right: none, mass: 1, leaf: true})
	lo, hi := t.box(i)
	copy(lo, p)
	copy(hi, p)
	return i
}

// insert adds a point (the paper's InsertPoint) and returns its leaf.
func (t *rcTree) insert(p []float64) int32 {
	if t.dims == 0 {
		t.dims, t.root = len(p), none
	}
	if t.root == none {
		t.root = t.newLeaf(p, none)
		return t.root
	}
	n := t.root
	for {
		lo, hi := t.box(n)
		// A random cut in the box that also holds p, each dimension chosen
		// in proportion to its extent.
		var span float64
		for d := range p {
			span += max(hi[d], p[d]) - min(lo[d], p[d])
		}
		if span == 0 { // p equals the point of this leaf
			t.addMass(n, 1)
			return n
		}
		r := t.rnd.Float64() * span
		dim, cut := 0, 0.0
		for d := range p {
			a, b := min(lo[d], p[d]), max(hi[d], p[d])
			if r < b-a || d == len(p)-1 {
				dim, cut = d, a+min(r, b-a)
				break
			}
			r -= b - a
		}
		// The cut separates p from the box: p gets a new leaf here.
		if cut < lo[dim] || (cut >= hi[dim] && p[dim] > cut) {
			up := t.nodes[n].parent
			parent := t.alloc(rcNode{parent: up, dim: int32(dim), cut: cut, mass: t.nodes[n].mass + 1})
			leaf := t.newLeaf(p, parent)
			if p[dim] <= cut {
				t.nodes[parent].left, t.nodes[parent].right = leaf, n
			} else {
				t.nodes[parent].left, t.nodes[parent].right = n, leaf
			}
			plo, phi := t.box(parent)
			lo, hi = t.box(n) // boxes may have moved when the tree grew
			copy(plo, lo)
			copy(phi, hi)
			extend(plo, phi, p)
			t.replace(n, parent)
			t.nodes[n].parent = parent
			for m := up; m != none; m = t.nodes[m].parent {
				t.nodes[m].mass++
				mlo, mhi := t.box(m)
				extend(mlo, mhi, p)
			}
			return leaf
		}
		if t.nodes[n].leaf {
			// Every cut falls inside a leaf's zero-width box but p's: only
			// reached through rounding; treat p as a duplicate.
			t.addMass(n, 1)
			return n
		}
		if p[t.nodes[n].dim] <= t.nodes[n].cut {
			n = t.nodes[n].left
		} else {
			n = t.nodes[n].right
		}
	}
}

// addMass changes the mass of a node and its ancestors.
func (t *rcTree) addMass(n int32, by int32) {
	for ; n != none; n = t.nodes[n].parent {
		t.nodes[n].mass += by
	}
}

// extend grows a box, in place, to hold p.
func extend(lo, hi, p []float64) {
	for d := range p {
		lo[d], hi[d] = min(lo[d], p[d]), max(hi[d], p[d])
	}
}

// replace puts m where n was under n's parent.
func (t *rcTree) replace(n, m int32) {
	switch up := t.nodes[n].parent; {
	case up == none:
		t.root = m
	case t.nodes[up].left == n:
		t.nodes[up].left = m
	default:
		t.nodes[up].right = m
	}
}

// remove takes one copy of a leaf's point out (the paper's DeletePoint).
func (t *rcTree) remove(leaf int32) {
	if t.nodes[leaf].mass > 1 {
		t.addMass(leaf, -1)
		return
	}
	parent := t.nodes[leaf].parent
	t.free = append(t.free, leaf)
	if parent == none {
		t.root = none
		return
	}
	sibling := t.nodes[parent].left
	if sibling == leaf {
		sibling = t.nodes[parent].right
	}
	t.replace(parent, sibling)
	up := t.nodes[parent].parent
	t.nodes[sibling].parent = up
	t.free = append(t.free, parent)
	for m := up; m != none; m = t.nodes[m].parent {
		t.nodes[m].mass--
		t.fitBox(m)
	}
}

// fitBox recomputes, in place, an internal node's box from its children's.
func (t *rcTree) fitBox(n int32) {
	lo, hi := t.box(n)
	alo, ahi := t.box(t.nodes[n].left)
	blo, bhi := t.box(t.nodes[n].right)
	for d := range lo {
		lo[d], hi[d] = min(alo[d], blo[d]), max(ahi[d], bhi[d])
	}
}

// codisp is the point's collusive displacement: over its ancestors, the
// largest ratio of the sibling's mass to the mass of the subtree holding
// the point. It also spreads that score over the dimensions in which the
// point lies outside the sibling's box, as high or low contributions.
func (t *rcTree) codisp(leaf int32, p []float64, high, low []float64) float64 {
	best := 0.0
	bestNode := int32(none)
	for n := leaf; t.nodes[n].parent != none; n = t.nodes[n].parent {
		up := t.nodes[n].parent
		sib := t.nodes[up].left
		if sib == n {
			sib = t.nodes[up].right
		}
		if r := float64(t.nodes[sib].mass) / float64(t.nodes[n].mass); r > best {
			best, bestNode = r, sib
		}
	}
	if bestNode == none {
		return 0
	}
	lo, hi := t.box(bestNode)
	var gaps float64
	for d := range p {
		gaps += max(p[d]-hi[d], 0) + max(lo[d]-p[d], 0)
	}
	if gaps > 0 {
		for d := range p {
			high[d] += best * max(p[d]-hi[d], 0) / gaps
			low[d] += best * max(lo[d]-p[d], 0) / gaps
		}
	}
	return best
}
