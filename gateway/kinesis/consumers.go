package kinesis

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

func (a *API) consumerARN(stream string, c streamstore.Consumer) string {
	return fmt.Sprintf("%s/consumer/%s:%d", a.streamARN(stream), c.Name, c.Created.Unix())
}

// parseConsumerARN splits arn:aws:kinesis:r:a:stream/S/consumer/C:T.
func parseConsumerARN(arn string) (stream, name string, created int64, ok bool) {
	stream, ok = nameFromARN(arn)
	if !ok {
		return
	}
	_, rest, found := strings.Cut(arn, "/consumer/")
	if !found {
		return "", "", 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		return "", "", 0, false
	}
	created, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil {
		return "", "", 0, false
	}
	return stream, rest[:i], created, true
}

func validateConsumerName(v *awsapi.Validator, name string) {
	v.Length("consumerName", name, 1, 128)
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			v.Fail("consumerName", name, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
			return
		}
	}
}

func (a *API) consumerShape(stream string, c streamstore.Consumer, status string, withStream bool) consumer {
	out := consumer{ConsumerName: c.Name, ConsumerARN: a.consumerARN(stream, c), ConsumerStatus: status,
		ConsumerCreationTimestamp: awsapi.NewTimestamp(c.Created)}
	if withStream {
		out.StreamARN = a.streamARN(stream)
	}
	return out
}

func (a *API) registerConsumer(r *awsapi.Request) (any, error) {
	var in consumerInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("streamARN", in.StreamARN != "")
	v.Required("consumerName", in.ConsumerName != "")
	if in.ConsumerName != "" {
		validateConsumerName(&v, in.ConsumerName)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	var added streamstore.Consumer
	_, err = a.store.UpdateStream(name, func(info *streamstore.StreamInfo) error {
		for _, c := range info.Consumers {
			if c.Name == in.ConsumerName {
				return awsapi.Errorf(awsapi.CodeResourceInUse, "Consumer %s under stream %s already exists for account %s.", in.ConsumerName, name, a.opts.Account)
			}
		}
		if len(info.Consumers) >= maxConsumersStream {
			return awsapi.Errorf(awsapi.CodeLimitExceeded, "Stream %s under account %s already has %d consumers, the limit.", name, a.opts.Account, maxConsumersStream)
		}
		added = streamstore.Consumer{Name: in.ConsumerName, Created: a.opts.Now().UTC().Truncate(time.Second)}
		info.Consumers = append(info.Consumers, added)
		return nil
	})
	if err != nil {
		return nil, a.storeError(name, err)
	}
	// AWS reports CREATING here and ACTIVE once ready; ours is ready at once.
	return struct{ Consumer consumer }{a.consumerShape(name, added, "CREATING", false)}, nil
}

// findConsumer resolves a consumer by ARN, or by stream ARN and name.
func (a *API) findConsumer(r *awsapi.Request, in consumerInput) (string, streamstore.Consumer, error) {
	var stream, cname string
	var created int64 = -1
	if in.ConsumerARN != "" {
		var ok bool
		if stream, cname, created, ok = parseConsumerARN(in.ConsumerARN); !ok {
			return "", streamstore.Consumer{}, awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid ConsumerARN %s.", in.ConsumerARN)
		}
	} else {
		if in.StreamARN == "" || in.ConsumerName == "" {
			return "", streamstore.Consumer{}, awsapi.Errorf(awsapi.CodeInvalidArgument, "Either ConsumerARN or both StreamARN and ConsumerName must be provided.")
		}
		var err error
		if stream, err = a.resolveName(streamRef{StreamARN: in.StreamARN}); err != nil {
			return "", streamstore.Consumer{}, err
		}
		cname = in.ConsumerName
	}
	info, err := a.stream(stream)
	if err != nil {
		return "", streamstore.Consumer{}, err
	}
	for _, c := range info.Consumers {
		if c.Name == cname && (created < 0 || c.Created.Unix() == created) {
			return stream, c, r.Authorize(a.consumerARN(stream, c))
		}
	}
	return "", streamstore.Consumer{}, awsapi.Errorf(awsapi.CodeResourceNotFound, "Consumer %s under stream %s not found for account %s.", cname, stream, a.opts.Account)
}

func (a *API) deregisterConsumer(r *awsapi.Request) (any, error) {
	var in consumerInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	stream, c, err := a.findConsumer(r, in)
	if err != nil {
		return nil, err
	}
	_, err = a.store.UpdateStream(stream, func(info *streamstore.StreamInfo) error {
		kept := info.Consumers[:0]
		for _, x := range info.Consumers {
			if x.Name != c.Name {
				kept = append(kept, x)
			}
		}
		info.Consumers = kept
		return nil
	})
	a.endConsumerSubscriptions(a.consumerARN(stream, c))
	return struct{}{}, a.storeError(stream, err)
}

func (a *API) describeConsumer(r *awsapi.Request) (any, error) {
	var in consumerInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	stream, c, err := a.findConsumer(r, in)
	if err != nil {
		return nil, err
	}
	return struct{ ConsumerDescription consumer }{a.consumerShape(stream, c, "ACTIVE", true)}, nil
}

func (a *API) listConsumers(r *awsapi.Request) (any, error) {
	var in listConsumersInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("streamARN", in.StreamARN != "")
	limit := v.Optional("maxResults", in.MaxResults, 100, 1, 10000)
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	after := ""
	if in.NextToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err != nil {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid NextToken.")
		}
		after = string(b)
	}
	cs := append([]streamstore.Consumer(nil), info.Consumers...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	out := struct {
		Consumers []consumer
		NextToken string `json:",omitempty"`
	}{Consumers: []consumer{}}
	for _, c := range cs {
		if c.Name <= after {
			continue
		}
		if len(out.Consumers) == limit {
			out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(out.Consumers[len(out.Consumers)-1].ConsumerName))
			break
		}
		out.Consumers = append(out.Consumers, a.consumerShape(name, c, "ACTIVE", false))
	}
	return out, nil
}
