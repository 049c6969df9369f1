package analytics

import (
	"sort"
	"strings"

	"github.com/axiomhq/hyperloglog"
	"github.com/streamgate/streamgate/gateway/sql"
)

// exactDistinct is how many distinct items COUNT_DISTINCT_ITEMS_TUMBLING
// counts exactly (as KDA does) before it estimates with HyperLogLog.
const exactDistinct = 10000

// itemsTumbling compiles TOP_K_ITEMS_TUMBLING(cursor, 'column', K,
// windowSeconds) and COUNT_DISTINCT_ITEMS_TUMBLING(cursor, 'column',
// windowSeconds): per tumbling ROWTIME window, the K most frequent values
// of the column with their counts (MOST_FREQUENT_VALUES; counted exactly,
// where KDA approximates), or the number of distinct values
// (NUMBER_OF_DISTINCT_ITEMS).
func (e *engine) itemsTumbling(pumpName, name string, tc *sql.TableCall, cursor *inAppStream) (*inAppStream, error) {
	if len(tc.Args) == 0 {
		return nil, codeErrorf(tc.Pos.Line, tc.Pos.Column, "%s needs the column's name in quotes", strings.ToUpper(name))
	}
	colName, _ := tc.Args[0].Eval(&rowEnv{})
	cn, ok := colName.(string)
	if !ok {
		return nil, codeErrorf(tc.Pos.Line, tc.Pos.Column, "%s: the column's name is a 'quoted' string", strings.ToUpper(name))
	}
	col, ok := cursor.column(cn)
	if !ok {
		return nil, codeErrorf(tc.Pos.Line, tc.Pos.Column, "%s: the cursor has no column %q", strings.ToUpper(name), cn)
	}
	rest := &sql.TableCall{Pos: tc.Pos, Name: tc.Name, Args: tc.Args[1:]}
	st := &itemsStage{col: col, counts: map[string]*itemCount{}, e: e}
	var out *inAppStream
	bigint, _ := parseType("BIGINT")
	if name == "top_k_items_tumbling" {
		params, err := constArgs(rest, []int64{10, 60}, [][2]int64{{1, 100000}, {1, 3600}}, 0)
		if err != nil {
			return nil, err
		}
		st.k, st.size = int(params[0]), params[1]*1000
		out = &inAppStream{name: pumpName + "$TOPK", cols: []column{cursor.cols[col], {"MOST_FREQUENT_VALUES", bigint}}}
	} else {
		params, err := constArgs(rest, []int64{60}, [][2]int64{{1, 3600}}, 0)
		if err != nil {
			return nil, err
		}
		st.size, st.distinct = params[0]*1000, true
		out = &inAppStream{name: pumpName + "$DISTINCT", cols: []column{{"NUMBER_OF_DISTINCT_ITEMS", bigint}}}
	}
	st.out = out
	e.streams[out.name] = out
	e.stages = append(e.stages, st)
	cursor.readers = append(cursor.readers, st.push)
	return out, nil
}

// itemsStage counts a column's values per tumbling window.
type itemsStage struct {
	col      int
	k        int
	size     int64
	distinct bool
	out      *inAppStream

	start  int64
	open   bool
	mark   *mark
	counts map[string]*itemCount
	order  []*itemCount
	hll    *hyperloglog.Sketch
	e      *engine
	key    []byte
}

type itemCount struct {
	value any
	n     int64
	first int // arrival order, for ties
}

func (s *itemsStage) push(r *row) {
	start := sql.FloorDiv(r.rowtime, s.size) * s.size
	if s.open && start != s.start {
		s.flush()
	}
	if !s.open {
		s.start, s.open, s.mark = start, true, r.mark
		if s.mark == nil && s.e.markFn != nil {
			s.mark = s.e.markFn()
		}
	}
	v := r.vals[s.col]
	if v == nil {
		return
	}
	s.key = appendKey(s.key[:0], v)
	if s.hll != nil {
		s.hll.Insert(s.key)
		return
	}
	c := s.counts[string(s.key)]
	if c == nil {
		c = &itemCount{value: v, first: len(s.order)}
		s.counts[string(s.key)] = c
		s.order = append(s.order, c)
		if s.distinct && len(s.order) > exactDistinct {
			s.hll = hyperloglog.New14()
			for k := range s.counts {
				s.hll.Insert([]byte(k))
			}
			clear(s.counts)
			s.order = s.order[:0]
		}
	}
	c.n++
}

func (s *itemsStage) flush() {
	end := s.start + s.size
	switch {
	case s.distinct:
		n := int64(len(s.order))
		if s.hll != nil {
			n = int64(s.hll.Estimate())
		}
		s.out.insert(&row{rowtime: end, vals: []any{n}, mark: s.mark})
	default:
		sort.SliceStable(s.order, func(i, j int) bool {
			if s.order[i].n != s.order[j].n {
				return s.order[i].n > s.order[j].n
			}
			return s.order[i].first < s.order[j].first
		})
		for _, c := range s.order[:min(s.k, len(s.order))] {
			s.out.insert(&row{rowtime: end, vals: []any{c.value, c.n}, mark: s.mark})
		}
	}
	clear(s.counts)
	s.order, s.hll, s.open, s.mark = s.order[:0], nil, false, nil
}

func (s *itemsStage) advance(watermark int64) {
	if s.open && watermark >= s.start+s.size {
		s.flush()
	}
}

func (s *itemsStage) nextClose() (int64, bool) { return s.start + s.size, s.open }

func (s *itemsStage) oldestMark() *mark {
	if !s.open {
		return nil
	}
	return s.mark
}
