package analytics

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/sql"
)

// tableFunction compiles FROM TABLE(f(CURSOR(SELECT STREAM ...), args)): the
// cursor's query runs as a pump into a hidden stream, the function reads
// that and writes its result rows to another hidden stream, which the
// outer query reads.
func (e *engine) tableFunction(pumpName string, tc *sql.TableCall) (*inAppStream, error) {
	name := strings.ToLower(tc.Name)
	switch name {
	case "random_cut_forest", "random_cut_forest_with_explanation", "top_k_items_tumbling", "count_distinct_items_tumbling":
	default:
		return nil, codeErrorf(tc.Pos.Line, tc.Pos.Column, "no table function %s (there are RANDOM_CUT_FOREST, RANDOM_CUT_FOREST_WITH_EXPLANATION, TOP_K_ITEMS_TUMBLING and COUNT_DISTINCT_ITEMS_TUMBLING)", strings.ToUpper(tc.Name))
	}
	inner := tc.Cursor
	if inner.From.Stream == "" {
		return nil, codeErrorf(inner.Pos.Line, inner.Pos.Column, "the CURSOR's query reads an in-application stream")
	}
	src, ok := e.stream(string(inner.From.Stream))
	if !ok {
		return nil, codeErrorf(inner.From.Pos.Line, inner.From.Pos.Column, "stream %q does not exist", inner.From.Stream)
	}
	cursor := &inAppStream{name: pumpName + "$CURSOR", cols: selectColumns(inner, src)}
	e.streams[cursor.name] = cursor
	cp, err := e.compilePump(&sql.CreatePump{Name: sql.Ident(cursor.name), Into: sql.Ident(cursor.name), Select: inner}, inner.Pos.Line, inner.Pos.Column)
	if err != nil {
		return nil, err
	}
	e.pumps = append(e.pumps, cp)

	if name == "top_k_items_tumbling" || name == "count_distinct_items_tumbling" {
		return e.itemsTumbling(pumpName, name, tc, cursor)
	}
	return e.randomCutForest(pumpName, name, tc, cursor)
}

// constArgs evaluates a table function's constant arguments: integers
// within limits, in order; missing ones keep their defaults.
func constArgs(tc *sql.TableCall, defaults []int64, limits [][2]int64, ignoreExtra int) ([]int64, error) {
	params := append([]int64(nil), defaults...)
	name := strings.ToUpper(tc.Name)
	if len(tc.Args) > len(params)+ignoreExtra {
		return nil, codeErrorf(tc.Pos.Line, tc.Pos.Column, "%s takes at most %d parameters after the cursor", name, len(params)+ignoreExtra)
	}
	for i, a := range tc.Args {
		if i >= len(params) {
			break
		}
		v, err := a.Eval(&rowEnv{})
		n, ok := v.(int64)
		if err != nil || !ok || n < limits[i][0] || n > limits[i][1] {
			return nil, codeErrorf(tc.Pos.Line, tc.Pos.Column, "%s parameter %d must be an integer from %d to %d", name, i+1, limits[i][0], limits[i][1])
		}
		params[i] = n
	}
	return params, nil
}

// randomCutForest is RANDOM_CUT_FOREST(cursor, numberOfTrees,
// subSampleSize, timeDecay, shingleSize), with KDA's defaults, and its
// _WITH_EXPLANATION form (which also takes withDirectionality; directions
// are always given).
func (e *engine) randomCutForest(pumpName, name string, tc *sql.TableCall, cursor *inAppStream) (*inAppStream, error) {
	explain := name == "random_cut_forest_with_explanation"
	extra := 0
	if explain {
		extra = 1
	}
	params, err := constArgs(tc, []int64{100, 256, 100000, 1}, [][2]int64{{1, 1000}, {1, 100000}, {1, 1 << 40}, {1, 100}}, extra)
	if err != nil {
		return nil, err
	}
	out := &inAppStream{name: pumpName + "$RCF", cols: append([]column(nil), cursor.cols...)}
	t, _ := parseType("DOUBLE")
	out.cols = append(out.cols, column{"ANOMALY_SCORE", t})
	if explain {
		t, _ := parseType("VARCHAR(20480)")
		out.cols = append(out.cols, column{"ANOMALY_EXPLANATION", t})
	}
	e.streams[out.name] = out
	h := fnv.New64a()
	h.Write([]byte(pumpName))
	st := &rcfStage{cols: cursor.cols, out: out, explain: explain, shingle: int(params[3]),
		forest: newForest(int(params[0]), int(params[1]), float64(params[2]), h.Sum64())}
	cursor.readers = append(cursor.readers, st.push)
	return out, nil
}

// rcfStage scores each row of a cursor with a random cut forest over its
// numeric columns (shingled: the last shingleSize rows make one point).
type rcfStage struct {
	cols    []column
	out     *inAppStream
	forest  *forest
	explain bool
	shingle int
	dims    []int // the numeric columns, fixed by the first row
	history [][]float64
}

func (s *rcfStage) push(r *row) {
	if s.dims == nil {
		s.dims = []int{}
		for i, c := range s.cols {
			if _, ok := toFloat(r.vals[i]); ok && (c.typ.kind == kInt || c.typ.kind == kFloat || c.typ.kind == kAny) {
				s.dims = append(s.dims, i)
			}
		}
	}
	vec := make([]float64, len(s.dims))
	for k, i := range s.dims {
		vec[k], _ = toFloat(r.vals[i]) // NULL counts as 0
	}
	s.history = append(s.history, vec)
	if len(s.history) > s.shingle {
		s.history = s.history[1:]
	}
	vals := append(append([]any(nil), r.vals...), 0.0)
	if len(s.history) == s.shingle && len(s.dims) > 0 {
		point := make([]float64, 0, len(s.dims)*s.shingle)
		for _, v := range s.history {
			point = append(point, v...)
		}
		score, high, low := s.forest.score(point)
		vals[len(r.vals)] = score
		if s.explain {
			vals = append(vals, s.explanation(score, high, low))
		}
	} else if s.explain {
		vals = append(vals, "{}")
	}
	s.out.insert(&row{rowtime: r.rowtime, arrival: r.arrival, vals: vals, mark: r.mark})
}

// explanation is RANDOM_CUT_FOREST_WITH_EXPLANATION's JSON: per numeric
// column, its share of the score (ATTRIBUTION_SCORE), that share relative
// to the others (STRENGTH) and whether the value is high or low
// (DIRECTION), summed over the shingle.
func (s *rcfStage) explanation(score float64, high, low []float64) string {
	type attr struct {
		Direction   string `json:"DIRECTION"`
		Strength    string `json:"STRENGTH"`
		Attribution string `json:"ATTRIBUTION_SCORE"`
	}
	hi, lo := make([]float64, len(s.dims)), make([]float64, len(s.dims))
	var total float64
	for i := range high {
		hi[i%len(s.dims)] += high[i]
		lo[i%len(s.dims)] += low[i]
		total += high[i] + low[i]
	}
	out := map[string]attr{}
	for k, i := range s.dims {
		a := hi[k] + lo[k]
		dir := "HIGH"
		if lo[k] > hi[k] {
			dir = "LOW"
		}
		strength := 0.0
		if total > 0 {
			strength = a / total
		}
		out[s.cols[i].name] = attr{dir, strconv.FormatFloat(strength, 'f', 4, 64), strconv.FormatFloat(a, 'f', 4, 64)}
	}
	b, _ := json.Marshal(out)
	return string(b)
}
