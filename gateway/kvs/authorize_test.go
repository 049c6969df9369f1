package kvs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

type denyAll struct{}

func (denyAll) Allows(action, resource string) bool { return false }
func (denyAll) ARN() string                         { return "arn:aws:iam::000000000000:user/nobody" }

// Every operation asks for authorization before it changes or reveals
// anything: a caller allowed nothing gets AccessDeniedException everywhere,
// for existing and missing streams alike.
func TestEveryOperationIsAuthorized(t *testing.T) {
	store, err := streamstore.Open(streamstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := New(store, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	svc := a.Service()
	out, err := svc.Ops["CreateStream"](&awsapi.Request{Op: "CreateStream", Body: []byte(`{"StreamName":"s","DataRetentionInHours":2}`), R: httptest.NewRequest("POST", "/", nil), Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	arn := out.(struct {
		StreamARN string `json:"StreamARN"`
	}).StreamARN
	info, _ := store.Stream(namespace + "s")
	version := info.Labels[labelVersion]
	bodies := map[string]string{
		"CreateStream":               `{"StreamName":"t"}`,
		"DescribeStream":             `{"StreamName":"s"}`,
		"ListStreams":                `{}`,
		"DeleteStream":               `{"StreamARN":"` + arn + `"}`,
		"UpdateStream":               `{"StreamName":"s","CurrentVersion":"` + version + `","MediaType":"video/h264"}`,
		"UpdateDataRetention":        `{"StreamName":"s","CurrentVersion":"` + version + `","Operation":"INCREASE_DATA_RETENTION","DataRetentionChangeInHours":5}`,
		"TagStream":                  `{"StreamName":"s","Tags":{"a":"b"}}`,
		"UntagStream":                `{"StreamName":"s","TagKeyList":["a"]}`,
		"ListTagsForStream":          `{"StreamName":"s"}`,
		"TagResource":                `{"ResourceARN":"` + arn + `","Tags":[{"Key":"a","Value":"b"}]}`,
		"UntagResource":              `{"ResourceARN":"` + arn + `","TagKeyList":["a"]}`,
		"ListTagsForResource":        `{"ResourceARN":"` + arn + `"}`,
		"GetDataEndpoint":            `{"StreamName":"s","APIName":"GET_MEDIA"}`,
		"ListFragments":              `{"StreamName":"s"}`,
		"GetMediaForFragmentList":    `{"StreamName":"s","Fragments":["170141183460469231731687303715884105729"]}`,
		"GetMedia":                   `{"StreamName":"s","StartSelector":{"StartSelectorType":"EARLIEST"}}`,
		"GetHLSStreamingSessionURL":  `{"StreamName":"s","PlaybackMode":"ON_DEMAND","HLSFragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1,"EndTimestamp":2}}}`,
		"GetDASHStreamingSessionURL": `{"StreamName":"s","PlaybackMode":"LIVE"}`,
		"GetImages":                  `{"StreamName":"s","ImageSelectorType":"SERVER_TIMESTAMP","StartTimestamp":1,"EndTimestamp":2,"Format":"JPEG"}`,
		"GetClip":                    `{"StreamName":"s","ClipFragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1,"EndTimestamp":2}}}`,
	}
	for op := range svc.Ops {
		body, ok := bodies[op]
		if !ok {
			t.Errorf("no test body for %s: add one", op)
			continue
		}
		for _, b := range []string{body, strings.ReplaceAll(strings.ReplaceAll(body, `"s"`, `"missing"`), "stream/s/", "stream/missing/")} {
			w := httptest.NewRecorder()
			_, err := svc.Ops[op](&awsapi.Request{Op: op, Body: []byte(b), W: w, R: httptest.NewRequest("POST", "/", nil), Principal: denyAll{}, Service: svc})
			var ae *awsapi.Error
			if !errors.As(err, &ae) || ae.Code != awsapi.CodeAccessDenied || !strings.Contains(ae.Message, "kinesisvideo:"+op) {
				t.Errorf("%s %s: got %v, want AccessDeniedException naming kinesisvideo:%s", op, b, err, op)
			}
			if w.Body.Len() > 0 {
				t.Errorf("%s wrote %d bytes for a denied caller", op, w.Body.Len())
			}
		}
	}
	info, err = store.Stream(namespace + "s")
	if err != nil || info.RetentionHours != 2 || len(info.Tags) != 0 || info.Labels[labelVersion] != version {
		t.Fatalf("denied calls changed the stream: %v %+v", err, info)
	}
	if _, err := store.Stream(namespace + "t"); err == nil {
		t.Fatal("denied CreateStream created a stream")
	}
}

// A session token is refused when forged, expired, or when its stream was
// deleted and re-created under the same name.
func TestSessionTokens(t *testing.T) {
	store, err := streamstore.Open(streamstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a := New(store, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
	info, _ := a.create("cam", 1, map[string]string{}, nil)
	s := session{Stream: "cam", Created: info.Created.UnixMilli(), Mode: "LIVE", Max: 5, Expires: now.Unix() + 300}
	tok := a.sign(s)
	if got, err := a.openSession(tok); err != nil || got != s {
		t.Fatalf("a fresh token: %+v, %v", got, err)
	}
	code := func(err error) string {
		var ae *awsapi.Error
		if errors.As(err, &ae) {
			return ae.Code
		}
		return fmt.Sprint(err)
	}
	forged := []byte(tok)
	forged[3] ^= 1
	for name, bad := range map[string]string{"forged": string(forged), "empty": "", "garbage": "a.b", "other key": New(store, Options{}).sign(s)} {
		if _, err := a.openSession(bad); code(err) != "NotAuthorizedException" {
			t.Errorf("%s token: %v", name, err)
		}
	}
	now = now.Add(301 * time.Second)
	if _, err := a.openSession(tok); code(err) != "NotAuthorizedException" {
		t.Errorf("expired token: %v", err)
	}
	now = now.Add(-301 * time.Second)
	store.DeleteStream(namespace + "cam")
	time.Sleep(2 * time.Millisecond)
	a.create("cam", 1, map[string]string{}, nil)
	if _, err := a.openSession(tok); code(err) != codeNotFound {
		t.Errorf("token of a deleted stream, re-created: %v", err)
	}
}
