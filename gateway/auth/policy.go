package auth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Policy is an IAM-style identity policy.
type Policy struct {
	Version   string      `json:"Version,omitempty"`
	Statement []Statement `json:"Statement"`
}

// Statement allows or denies actions on resources.
type Statement struct {
	Sid      string     `json:"Sid,omitempty"`
	Effect   string     `json:"Effect"`
	Action   stringList `json:"Action"`
	Resource stringList `json:"Resource"`
}

// stringList reads a JSON string or array of strings, as IAM allows.
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings")
	}
	*s = many
	return nil
}

// AdminPolicy allows everything.
func AdminPolicy() Policy {
	return Policy{Version: "2012-10-17", Statement: []Statement{{Effect: "Allow", Action: stringList{"*"}, Resource: stringList{"*"}}}}
}

// ParsePolicy reads and validates a policy document.
func ParsePolicy(doc []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("policy: %w", err)
	}
	return p, p.Validate()
}

// Validate checks a policy's shape.
func (p Policy) Validate() error {
	if len(p.Statement) == 0 {
		return fmt.Errorf("policy: no Statement")
	}
	for i, st := range p.Statement {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return fmt.Errorf("policy: statement %d: Effect %q (want Allow or Deny)", i, st.Effect)
		}
		if len(st.Action) == 0 || len(st.Resource) == 0 {
			return fmt.Errorf("policy: statement %d needs Action and Resource", i)
		}
		for _, a := range st.Action {
			if a != "*" && !strings.Contains(a, ":") {
				return fmt.Errorf("policy: statement %d: action %q (want service:Action)", i, a)
			}
		}
	}
	return nil
}

// Allows evaluates the policy for an action ("kinesis:PutRecord") on a
// resource ARN: allowed when some statement allows it and none denies it.
func (p Policy) Allows(action, resource string) bool {
	return p.AllowsWith(action, resource, nil)
}

// AllowsWith is Allows with policy variables: "${name}" in a Resource
// stands for vars[name] (such as iot:ClientId), literally: a value with a
// wildcard character never matches, so a client cannot widen its access
// by its choice of name. A variable without a value never matches.
func (p Policy) AllowsWith(action, resource string, vars map[string]string) bool {
	allowed := false
	for _, st := range p.Statement {
		if !anyMatch(st.Action, action, true) || !anyMatch(substitute(st.Resource, vars), resource, false) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

// substitute fills policy variables into resource patterns, dropping
// patterns whose variables have no usable value.
func substitute(patterns []string, vars map[string]string) []string {
	if !slices.ContainsFunc(patterns, func(p string) bool { return strings.Contains(p, "${") }) {
		return patterns
	}
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		ok := true
		p = varPattern.ReplaceAllStringFunc(p, func(v string) string {
			val, found := vars[v[2:len(v)-1]]
			if !found || val == "" || strings.ContainsAny(val, "*?") {
				ok = false
			}
			return val
		})
		if ok {
			out = append(out, p)
		}
	}
	return out
}

var varPattern = regexp.MustCompile(`\$\{[^}]*\}`)

// anyMatch reports whether one of the patterns matches s. Actions compare
// case-insensitively, as IAM does; resources case-sensitively.
func anyMatch(patterns []string, s string, fold bool) bool {
	if fold {
		s = strings.ToLower(s)
	}
	for _, p := range patterns {
		if fold {
			p = strings.ToLower(p)
		}
		if wildcard(p, s) {
			return true
		}
	}
	return false
}

// wildcard matches IAM patterns: * any run of characters (including /),
// ? any one character.
func wildcard(pattern, s string) bool {
	if pattern == "*" {
		return true
	}
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	return globMatch(pattern, s)
}

func globMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(p, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			p, s = p[1:], s[1:]
		default:
			if s == "" || p[0] != s[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return s == ""
}
