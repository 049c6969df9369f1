package rules

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/gateway/sql"
)

// Service is the AWS IoT topic rule API (CreateTopicRule, GetTopicRule,
// ListTopicRules, ReplaceTopicRule, DeleteTopicRule, Enable/DisableTopicRule)
// at IoT's paths (/rules/...), so `aws iot create-topic-rule` works against
// the gateway, and the same under /mqtt/rules.
func (r *Router) Service() *awsapi.Service {
	s := &awsapi.Service{SigningName: "iot", Action: "iot", Routes: map[string]string{}, Ops: map[string]awsapi.Op{
		"CreateTopicRule":  r.createRule,
		"ReplaceTopicRule": r.replaceRule,
		"GetTopicRule":     r.getRule,
		"ListTopicRules":   r.listRules,
		"DeleteTopicRule":  r.deleteRule,
		"EnableTopicRule":  func(q *awsapi.Request) (any, error) { return r.setDisabled(q, false) },
		"DisableTopicRule": func(q *awsapi.Request) (any, error) { return r.setDisabled(q, true) },
	}}
	for _, prefix := range []string{"/rules", "/mqtt/rules"} {
		s.Routes["POST "+prefix+"/{ruleName}"] = "CreateTopicRule"
		s.Routes["PATCH "+prefix+"/{ruleName}"] = "ReplaceTopicRule"
		s.Routes["GET "+prefix+"/{ruleName}"] = "GetTopicRule"
		s.Routes["GET "+prefix] = "ListTopicRules"
		s.Routes["DELETE "+prefix+"/{ruleName}"] = "DeleteTopicRule"
		s.Routes["POST "+prefix+"/{ruleName}/enable"] = "EnableTopicRule"
		s.Routes["POST "+prefix+"/{ruleName}/disable"] = "DisableTopicRule"
	}
	return s
}

func (r *Router) ruleARN(name string) string {
	return "arn:aws:iot:" + r.region + ":" + r.account + ":rule/" + name
}

func apiError(code string, status int, msg string) error {
	return &awsapi.Error{Code: code, Status: status, Message: msg}
}

// ruleFromRequest reads the TopicRulePayload body.
func (r *Router) ruleFromRequest(q *awsapi.Request) (Rule, error) {
	name := q.PathParams["ruleName"]
	if err := q.Authorize(r.ruleARN(name)); err != nil {
		return Rule{}, err
	}
	var rule Rule
	if err := q.Decode(&rule); err != nil {
		return Rule{}, err
	}
	rule.Name = name
	return rule, nil
}

// putError turns a compile or store error into IoT's error.
func putError(name string, err error) error {
	var se *SQLError
	var pe *sql.Error
	switch {
	case errors.As(err, &se) && errors.As(err, &pe):
		return apiError("SqlParseException", http.StatusBadRequest, "Syntax error in the SQL at line "+strconv.Itoa(pe.Line)+", column "+strconv.Itoa(pe.Column)+": "+pe.Msg)
	case errors.As(err, &se):
		return apiError("SqlParseException", http.StatusBadRequest, se.Error())
	case errors.Is(err, errExists):
		return apiError("ResourceAlreadyExistsException", http.StatusConflict, "Rule "+name+" already exists")
	case errors.Is(err, errNotFound):
		return apiError("ResourceNotFoundException", http.StatusNotFound, "Rule "+name+" does not exist")
	}
	if strings.HasPrefix(err.Error(), "rule name") || strings.Contains(err.Error(), "action") || strings.Contains(err.Error(), "awsIotSqlVersion") {
		return apiError("InvalidRequestException", http.StatusBadRequest, err.Error())
	}
	return err
}

func (r *Router) createRule(q *awsapi.Request) (any, error) {
	rule, err := r.ruleFromRequest(q)
	if err != nil {
		return nil, err
	}
	if err := r.put(rule, false); err != nil {
		return nil, putError(rule.Name, err)
	}
	r.log.Info("topic rule created", "rule", rule.Name, "sql", rule.SQL)
	return struct{}{}, nil
}

func (r *Router) replaceRule(q *awsapi.Request) (any, error) {
	rule, err := r.ruleFromRequest(q)
	if err != nil {
		return nil, err
	}
	if err := r.put(rule, true); err != nil {
		return nil, putError(rule.Name, err)
	}
	return struct{}{}, nil
}

func (r *Router) getRule(q *awsapi.Request) (any, error) {
	name := q.PathParams["ruleName"]
	if err := q.Authorize(r.ruleARN(name)); err != nil {
		return nil, err
	}
	rule, ok := r.get(name)
	if !ok {
		return nil, putError(name, errNotFound)
	}
	if rule.SQLVersion == "" {
		rule.SQLVersion = "2016-03-23"
	}
	return map[string]any{"ruleArn": r.ruleARN(name), "rule": rule}, nil
}

func (r *Router) listRules(q *awsapi.Request) (any, error) {
	if err := q.Authorize("arn:aws:iot:" + r.region + ":" + r.account + ":rule/*"); err != nil {
		return nil, err
	}
	type item struct {
		ARN          string  `json:"ruleArn"`
		Name         string  `json:"ruleName"`
		TopicPattern string  `json:"topicPattern"`
		CreatedAt    float64 `json:"createdAt,omitempty"`
		Disabled     bool    `json:"ruleDisabled"`
	}
	out := []item{}
	topic := q.R.URL.Query().Get("topic")
	r.mu.RLock()
	for _, rule := range r.listLocked() {
		pattern := string(*rule.sel.From.Topic)
		if topic != "" && topic != pattern {
			continue
		}
		out = append(out, item{r.ruleARN(rule.Name), rule.Name, pattern, rule.CreatedAt, rule.Disabled})
	}
	r.mu.RUnlock()
	return map[string]any{"rules": out}, nil
}

func (r *Router) deleteRule(q *awsapi.Request) (any, error) {
	name := q.PathParams["ruleName"]
	if err := q.Authorize(r.ruleARN(name)); err != nil {
		return nil, err
	}
	if err := r.remove(name); err != nil {
		return nil, putError(name, err)
	}
	return struct{}{}, nil
}

func (r *Router) setDisabled(q *awsapi.Request, disabled bool) (any, error) {
	name := q.PathParams["ruleName"]
	if err := q.Authorize(r.ruleARN(name)); err != nil {
		return nil, err
	}
	rule, ok := r.get(name)
	if !ok {
		return nil, putError(name, errNotFound)
	}
	rule.Disabled = disabled
	if err := r.put(rule, true); err != nil {
		return nil, putError(name, err)
	}
	return struct{}{}, nil
}
