package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/streamgate/streamgate/gateway/firehose"
	"github.com/streamgate/streamgate/gateway/sql"
)

// Rule is an AWS IoT Core topic rule (its JSON shape is IoT's
// TopicRulePayload): SQL selecting messages and shaping them, and actions.
type Rule struct {
	Name        string   `json:"ruleName,omitempty" yaml:"-"`
	SQL         string   `json:"sql" yaml:"sql"`
	Description string   `json:"description,omitempty" yaml:"description,omitempty"`
	Disabled    bool     `json:"ruleDisabled" yaml:"rule_disabled,omitempty"`
	SQLVersion  string   `json:"awsIotSqlVersion,omitempty" yaml:"sql_version,omitempty"`
	Actions     []Action `json:"actions" yaml:"actions"`
	ErrorAction *Action  `json:"errorAction,omitempty" yaml:"error_action,omitempty"`
	CreatedAt   float64  `json:"createdAt,omitempty" yaml:"-"` // epoch seconds, as IoT reports it
}

// Action is one of IoT Core's rule actions that the gateway carries out.
type Action struct {
	Kinesis   *KinesisAction   `json:"kinesis,omitempty" yaml:"kinesis,omitempty"`
	Republish *RepublishAction `json:"republish,omitempty" yaml:"republish,omitempty"`
	Firehose  *FirehoseAction  `json:"firehose,omitempty" yaml:"firehose,omitempty"`
}

// FirehoseAction puts the rule's output into a Direct PUT delivery stream
// of this gateway, followed by the separator.
type FirehoseAction struct {
	DeliveryStreamName string `json:"deliveryStreamName" yaml:"delivery_stream_name"`
	Separator          string `json:"separator,omitempty" yaml:"separator,omitempty"` // "\n", "\t", "\r\n" or ","
	BatchMode          bool   `json:"batchMode,omitempty" yaml:"batch_mode,omitempty"`
	RoleArn            string `json:"roleArn,omitempty" yaml:"role_arn,omitempty"`
}

// KinesisAction writes the rule's output to a stream of this gateway.
type KinesisAction struct {
	StreamName   string `json:"streamName" yaml:"stream_name"`
	PartitionKey string `json:"partitionKey,omitempty" yaml:"partition_key,omitempty"` // a template; default: a new UUID
	RoleArn      string `json:"roleArn,omitempty" yaml:"role_arn,omitempty"`           // accepted, unused
}

// RepublishAction publishes the rule's output to a topic of the broker.
type RepublishAction struct {
	Topic   string `json:"topic" yaml:"topic"` // a template
	QoS     int    `json:"qos,omitempty" yaml:"qos,omitempty"`
	RoleArn string `json:"roleArn,omitempty" yaml:"role_arn,omitempty"`
}

// compiled is a rule ready to run.
type compiled struct {
	Rule
	sel     *sql.Select
	filter  []string // topic filter levels
	actions []compiledAction
	onError *compiledAction
}

type compiledAction struct {
	kind     string // "kinesis", "republish" or "firehose"
	sep      string // firehose: appended to each record
	resource string // the stream or the topic template's text
	stream   string
	key      *template // partition key (nil: a new UUID per record)
	topic    *template
	qos      byte
}

var ruleName = regexp.MustCompile(`^[a-zA-Z0-9_]{1,128}$`)

// compile checks a rule and prepares it; errors read like IoT's
// SqlParseException and InvalidRequestException messages.
func compile(r Rule) (*compiled, error) {
	if !ruleName.MatchString(r.Name) {
		return nil, fmt.Errorf("rule name %q: 1 to 128 letters, digits and underscores", r.Name)
	}
	if r.SQLVersion != "" && r.SQLVersion != "2016-03-23" && r.SQLVersion != "2015-10-08" && r.SQLVersion != "beta" {
		return nil, fmt.Errorf("awsIotSqlVersion %q is not supported (2016-03-23)", r.SQLVersion)
	}
	sel, err := sql.ParseSelect(r.SQL)
	if err != nil {
		return nil, &SQLError{err}
	}
	if sel.From.Topic == nil {
		return nil, &SQLError{errors.New("FROM takes a quoted topic filter, such as FROM 'fleet/+/telemetry'")}
	}
	filter := string(*sel.From.Topic)
	if err := validFilter(filter); err != nil {
		return nil, &SQLError{err}
	}
	if len(r.Actions) == 0 {
		return nil, errors.New("a rule needs at least one action")
	}
	c := &compiled{Rule: r, sel: sel, filter: strings.Split(filter, "/")}
	for i, a := range r.Actions {
		ca, err := compileAction(a)
		if err != nil {
			return nil, fmt.Errorf("actions[%d]: %w", i, err)
		}
		c.actions = append(c.actions, ca)
	}
	if r.ErrorAction != nil {
		ca, err := compileAction(*r.ErrorAction)
		if err != nil {
			return nil, fmt.Errorf("errorAction: %w", err)
		}
		c.onError = &ca
	}
	return c, nil
}

// SQLError is a rule whose SQL does not parse or make sense.
type SQLError struct{ Err error }

func (e *SQLError) Error() string { return "SQL: " + e.Err.Error() }
func (e *SQLError) Unwrap() error { return e.Err }

func compileAction(a Action) (compiledAction, error) {
	n := 0
	for _, set := range []bool{a.Kinesis != nil, a.Republish != nil, a.Firehose != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return compiledAction{}, errors.New("each action is exactly one of kinesis, republish or firehose")
	}
	switch {
	case a.Firehose != nil:
		f := a.Firehose
		if f.DeliveryStreamName == "" {
			return compiledAction{}, errors.New("firehose action without deliveryStreamName")
		}
		switch f.Separator {
		case "", "\n", "\t", "\r\n", ",":
		default:
			return compiledAction{}, fmt.Errorf("firehose separator %q: want \\n, \\t, \\r\\n or ,", f.Separator)
		}
		// A Direct PUT delivery stream reads the hidden stream firehose/<name>.
		return compiledAction{kind: "firehose", stream: firehose.BackingStream(f.DeliveryStreamName), resource: f.DeliveryStreamName, sep: f.Separator}, nil
	case a.Kinesis != nil:
		if a.Kinesis.StreamName == "" {
			return compiledAction{}, errors.New("kinesis action without streamName")
		}
		ca := compiledAction{kind: "kinesis", stream: a.Kinesis.StreamName, resource: a.Kinesis.StreamName}
		if a.Kinesis.PartitionKey != "" {
			t, err := parseTemplate(a.Kinesis.PartitionKey)
			if err != nil {
				return compiledAction{}, fmt.Errorf("partitionKey: %w", err)
			}
			ca.key = t
		}
		return ca, nil
	case a.Republish != nil:
		if a.Republish.QoS < 0 || a.Republish.QoS > 1 {
			return compiledAction{}, errors.New("republish qos must be 0 or 1")
		}
		t, err := parseTemplate(a.Republish.Topic)
		if err != nil || a.Republish.Topic == "" {
			return compiledAction{}, fmt.Errorf("republish topic %q: %v", a.Republish.Topic, err)
		}
		return compiledAction{kind: "republish", topic: t, resource: a.Republish.Topic, qos: byte(a.Republish.QoS)}, nil
	}
	return compiledAction{}, errors.New("unreachable")
}

// validFilter checks an MQTT topic filter.
func validFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("topic filter %q: # must be the last level", f)
		case strings.Contains(l, "#") && l != "#", strings.Contains(l, "+") && l != "+":
			return fmt.Errorf("topic filter %q: a wildcard must be a whole level", f)
		}
	}
	return nil
}

// matches reports whether a topic matches the rule's filter (MQTT rules:
// + is one level, # the rest, and wildcards do not match $-topics).
func (c *compiled) matches(topic string) bool {
	if strings.HasPrefix(topic, "$") && (c.filter[0] == "+" || c.filter[0] == "#") {
		return false
	}
	levels := strings.Split(topic, "/")
	for i, f := range c.filter {
		if f == "#" {
			return true
		}
		if i >= len(levels) || (f != "+" && f != levels[i]) {
			return false
		}
	}
	return len(levels) == len(c.filter)
}

// template is a substitution template: text with ${expression} parts.
type template struct {
	text  string
	parts []templatePart
}

type templatePart struct {
	lit  string
	expr *sql.Expr
}

func parseTemplate(s string) (*template, error) {
	t := &template{text: s}
	for len(s) > 0 {
		i := strings.Index(s, "${")
		if i < 0 {
			t.parts = append(t.parts, templatePart{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{lit: s[:i]})
		}
		end := closingBrace(s[i+2:])
		if end < 0 {
			return nil, fmt.Errorf("unclosed ${ in %q", t.text)
		}
		x, err := sql.ParseExpr(s[i+2 : i+2+end])
		if err != nil {
			return nil, fmt.Errorf("${%s}: %w", s[i+2:i+2+end], err)
		}
		t.parts = append(t.parts, templatePart{expr: x})
		s = s[i+2+end+1:]
	}
	return t, nil
}

// closingBrace finds the } that ends a template expression, skipping
// quoted text.
func closingBrace(s string) int {
	quote := rune(0)
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '}':
			return i
		}
	}
	return -1
}

// render fills the template; an expression that is Undefined makes the
// whole template fail (as IoT does).
func (t *template) render(env sql.Env) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.expr.Eval(env)
		if err != nil {
			return "", err
		}
		if sql.IsUndefined(v) {
			return "", fmt.Errorf("%q: an expression is undefined for this message", t.text)
		}
		b.WriteString(sql.String(v))
	}
	return b.String(), nil
}
