package rules

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/streamgate/streamgate/gateway/sql"
	"github.com/streamgate/streamgate/mqtt"
)

// msgEnv is what a rule's SQL sees of a message: the payload's fields (when
// it is JSON), IoT SQL's functions, and for templates the SELECT's output
// (so templates may use AS aliases, which AWS does not allow).
type msgEnv struct {
	m   *mqtt.Message
	doc any            // the payload as JSON values; Undefined when it is not JSON
	out map[string]any // the SELECT's result, for substitution templates
}

func newMsgEnv(m *mqtt.Message) *msgEnv {
	e := &msgEnv{m: m, doc: sql.Undefined}
	d := json.NewDecoder(bytes.NewReader(m.Payload))
	d.UseNumber()
	var v any
	if d.Decode(&v) == nil && !d.More() {
		e.doc = sql.FromJSON(v)
	}
	return e
}

func (e *msgEnv) Lookup(name string) any {
	if e.out != nil {
		if v, ok := e.out[name]; ok {
			return v
		}
	}
	if m, ok := e.doc.(map[string]any); ok {
		if v, ok := m[name]; ok {
			return v
		}
	}
	return sql.Undefined
}

// Call implements IoT SQL's message functions.
func (e *msgEnv) Call(name string, args []any) (any, bool, error) {
	switch name {
	case "topic":
		if len(args) == 0 {
			return e.m.Topic, true, nil
		}
		n, ok := args[0].(int64)
		levels := strings.Split(e.m.Topic, "/")
		if !ok || n < 1 || int(n) > len(levels) {
			return sql.Undefined, true, nil
		}
		return levels[n-1], true, nil
	case "clientid":
		return e.m.ClientID, true, nil
	case "principal":
		return e.m.Username, true, nil
	case "timestamp":
		return e.m.Received.UnixMilli(), true, nil
	case "newuuid":
		return uuid.NewString(), true, nil
	case "get_user_properties":
		// get_user_properties('key') is IoT's: the values of one MQTT 5 user
		// property; without an argument (an extension): all of them as an
		// object of value lists.
		if len(args) == 0 {
			all := map[string]any{}
			for _, p := range e.m.UserProperties {
				vals, _ := all[p.Key].([]any)
				all[p.Key] = append(vals, p.Value)
			}
			return all, true, nil
		}
		var vals []any
		for _, p := range e.m.UserProperties {
			if args[0] == p.Key {
				vals = append(vals, p.Value)
			}
		}
		if vals == nil {
			return sql.Undefined, true, nil
		}
		return vals, true, nil
	case "encode":
		if len(args) != 2 || args[1] != "base64" {
			return nil, true, fmt.Errorf("takes a value (or *) and 'base64'")
		}
		if _, star := args[0].(sql.Star); star {
			return base64.StdEncoding.EncodeToString(e.m.Payload), true, nil
		}
		return base64.StdEncoding.EncodeToString([]byte(sql.String(args[0]))), true, nil
	}
	return nil, false, nil
}

// output runs the SELECT on a message: ok is false when WHERE does not
// hold. data is what actions send: the JSON of the result, or the payload
// itself for SELECT * of a payload that is not JSON.
func (c *compiled) output(e *msgEnv) (data []byte, ok bool, err error) {
	if c.sel.Where != nil {
		v, err := c.sel.Where.Eval(e)
		if err != nil {
			return nil, false, err
		}
		if !sql.True(v) {
			return nil, false, nil
		}
	}
	out := map[string]any{}
	for i, it := range c.sel.Items {
		if it.Star {
			m, isObject := e.doc.(map[string]any)
			if !isObject {
				if len(c.sel.Items) == 1 {
					e.out = out
					return e.m.Payload, true, nil // passed through as it came
				}
				continue
			}
			for k, v := range m {
				out[k] = v
			}
			continue
		}
		v, err := it.Expr.Eval(e)
		if err != nil {
			return nil, false, err
		}
		if sql.IsUndefined(v) {
			continue
		}
		out[itemName(it, i)] = v
	}
	e.out = out
	data, err = json.Marshal(out)
	return data, true, err
}

// itemName is an item's key in the result: its alias, the last name of a
// plain field path, or _<position> as IoT names other expressions.
func itemName(it *sql.SelectItem, i int) string {
	if it.Alias != "" {
		return string(it.Alias)
	}
	if u := it.Expr.Unary(); u != nil && u.Neg == "" && u.Primary.Name != "" {
		name := string(u.Primary.Name)
		for _, s := range u.Suffix {
			if s.Field != "" {
				name = string(s.Field)
			}
		}
		return name
	}
	return fmt.Sprintf("_%d", i+1)
}
