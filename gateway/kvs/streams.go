package kvs

import (
	"encoding/base64"
	"maps"
	"net/http"
	"sort"
	"strings"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

type createStreamInput struct {
	DeviceName                 string            `json:"DeviceName"`
	StreamName                 string            `json:"StreamName"`
	MediaType                  string            `json:"MediaType"`
	KmsKeyId                   string            `json:"KmsKeyId"`
	DataRetentionInHours       *int              `json:"DataRetentionInHours"`
	Tags                       map[string]string `json:"Tags"`
	StreamStorageConfiguration *struct {
		DefaultStorageTier string `json:"DefaultStorageTier"`
	} `json:"StreamStorageConfiguration"`
}

func (a *API) createStream(r *awsapi.Request) (any, error) {
	var in createStreamInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("StreamName", in.StreamName != "")
	if in.StreamName != "" {
		validateName(&v, "StreamName", in.StreamName)
	}
	v.Length("DeviceName", in.DeviceName, 0, 128)
	v.Length("MediaType", in.MediaType, 0, 128)
	hours := 0
	if in.DataRetentionInHours != nil {
		hours = *in.DataRetentionInHours
		v.Range("DataRetentionInHours", int64(hours), 0, MaxRetentionHours)
	}
	tier := "HOT"
	if c := in.StreamStorageConfiguration; c != nil {
		switch c.DefaultStorageTier {
		case "HOT", "WARM":
			tier = c.DefaultStorageTier
		default:
			v.Fail("StreamStorageConfiguration.DefaultStorageTier", c.DefaultStorageTier, "Member must satisfy enum value set: [HOT, WARM]")
		}
	}
	if len(in.Tags) > maxTags {
		v.Fail("Tags", len(in.Tags), "Member must have length less than or equal to 50")
	}
	if err := validation(&v); err != nil {
		return nil, err
	}
	if err := r.Authorize(a.resourceARN(in.StreamName)); err != nil {
		return nil, err
	}
	info, err := a.create(in.StreamName, hours, map[string]string{
		labelMediaType: in.MediaType, labelDevice: in.DeviceName, labelKMS: in.KmsKeyId, labelStorageTier: tier,
	}, in.Tags)
	if err != nil {
		return nil, a.storeError(in.StreamName, err)
	}
	return struct {
		StreamARN string `json:"StreamARN"`
	}{a.streamARN(&info)}, nil
}

// create makes a video stream: one shard whose records are fragments.
func (a *API) create(name string, retentionHours int, labels, tags map[string]string) (streamstore.StreamInfo, error) {
	labels[labelVersion] = newVersion()
	cfg := streamstore.StreamConfig{
		Name: namespace + name, Shards: 1, RetentionHours: retentionHours, LiveOnly: retentionHours == 0,
		MaxRecordKiB: (a.opts.MaxFragmentBytes + 1023) >> 10, Tags: tags, Labels: labels,
	}
	if a.opts.StreamDiskBudget != nil {
		cfg.DiskBudget = a.opts.StreamDiskBudget(cfg.Name)
	}
	if cfg.LiveOnly && (cfg.DiskBudget == 0 || cfg.DiskBudget > liveBufferBytes) {
		cfg.DiskBudget = liveBufferBytes
	}
	return a.store.CreateStream(cfg)
}

// liveBufferBytes caps what a stream without retention keeps, like AWS's
// 200 MB host buffer.
const liveBufferBytes = 200 << 20

type streamInfo struct {
	DeviceName                 string            `json:"DeviceName,omitempty"`
	StreamName                 string            `json:"StreamName"`
	StreamARN                  string            `json:"StreamARN"`
	MediaType                  string            `json:"MediaType,omitempty"`
	KmsKeyId                   string            `json:"KmsKeyId,omitempty"`
	Version                    string            `json:"Version"`
	Status                     string            `json:"Status"`
	CreationTime               *awsapi.Timestamp `json:"CreationTime"`
	DataRetentionInHours       int               `json:"DataRetentionInHours"`
	StreamStorageConfiguration struct {
		DefaultStorageTier string `json:"DefaultStorageTier"`
	} `json:"StreamStorageConfiguration"`
	// Not in AWS's shape: the gateway's own view of the stream's source.
	Live   bool          `json:"Live"`
	Source *sourceStatus `json:"Source,omitempty"`
}

type sourceStatus struct {
	URL       string            `json:"URL"`
	State     string            `json:"State"`
	Since     *awsapi.Timestamp `json:"Since"`
	LastError string            `json:"LastError,omitempty"`
	Attempts  int               `json:"Attempts"`
}

func (a *API) describe(info *streamstore.StreamInfo) streamInfo {
	name := publicName(info)
	out := streamInfo{
		DeviceName: info.Labels[labelDevice], StreamName: name, StreamARN: a.streamARN(info),
		MediaType: info.Labels[labelMediaType], KmsKeyId: info.Labels[labelKMS], Version: info.Labels[labelVersion],
		Status: "ACTIVE", CreationTime: awsapi.NewTimestamp(info.Created), DataRetentionInHours: info.RetentionHours,
	}
	out.StreamStorageConfiguration.DefaultStorageTier = info.Labels[labelStorageTier]
	if out.StreamStorageConfiguration.DefaultStorageTier == "" {
		out.StreamStorageConfiguration.DefaultStorageTier = "HOT"
	}
	if a.live != nil {
		out.Live = a.live.IsLive(name)
		if st, ok := a.live.SourceStates()[name]; ok {
			out.Source = &sourceStatus{URL: st.URL, State: st.State, Since: awsapi.NewTimestamp(st.Since), LastError: st.LastError, Attempts: st.Attempts}
		}
	}
	return out
}

func (a *API) describeStream(r *awsapi.Request) (any, error) {
	var in streamRef
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	info, err := a.lookup(r, in)
	if err != nil {
		return nil, err
	}
	return struct {
		StreamInfo streamInfo `json:"StreamInfo"`
	}{a.describe(&info)}, nil
}

func (a *API) listStreams(r *awsapi.Request) (any, error) {
	var in struct {
		MaxResults          *int   `json:"MaxResults"`
		NextToken           string `json:"NextToken"`
		StreamNameCondition *struct {
			ComparisonOperator string `json:"ComparisonOperator"`
			ComparisonValue    string `json:"ComparisonValue"`
		} `json:"StreamNameCondition"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	limit := v.Optional("MaxResults", in.MaxResults, 10000, 1, 10000)
	prefix := ""
	if c := in.StreamNameCondition; c != nil {
		if c.ComparisonOperator != "" && c.ComparisonOperator != "BEGINS_WITH" {
			v.Fail("StreamNameCondition.ComparisonOperator", c.ComparisonOperator, "Member must satisfy enum value set: [BEGINS_WITH]")
		}
		prefix = c.ComparisonValue
	}
	if err := validation(&v); err != nil {
		return nil, err
	}
	if err := r.Authorize("*"); err != nil {
		return nil, err
	}
	after := ""
	if in.NextToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err != nil {
			return nil, invalid("Invalid NextToken.")
		}
		after = string(b)
	}
	var streams []streamstore.StreamInfo
	for _, s := range a.store.Streams() {
		name, ok := strings.CutPrefix(s.Name, namespace)
		if ok && strings.HasPrefix(name, prefix) && name > after {
			streams = append(streams, s)
		}
	}
	sort.Slice(streams, func(i, j int) bool { return streams[i].Name < streams[j].Name })
	out := struct {
		StreamInfoList []streamInfo `json:"StreamInfoList"`
		NextToken      string       `json:"NextToken,omitempty"`
	}{StreamInfoList: []streamInfo{}}
	for i := range streams {
		if len(out.StreamInfoList) == limit {
			out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(out.StreamInfoList[limit-1].StreamName))
			break
		}
		out.StreamInfoList = append(out.StreamInfoList, a.describe(&streams[i]))
	}
	return out, nil
}

func (a *API) deleteStream(r *awsapi.Request) (any, error) {
	var in struct {
		StreamARN      string `json:"StreamARN"`
		CurrentVersion string `json:"CurrentVersion"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.StreamARN == "" {
		return nil, invalid("StreamARN is required.")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	info, err := a.lookup(r, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	if in.CurrentVersion != "" && in.CurrentVersion != info.Labels[labelVersion] {
		return nil, versionMismatch(&info)
	}
	if err := a.store.DeleteStream(info.Name); err != nil {
		return nil, a.storeError(publicName(&info), err)
	}
	return struct{}{}, nil
}

func versionMismatch(info *streamstore.StreamInfo) error {
	return awsapi.Errorf(codeVersion, "The stream version %s does not match the version you specified.", info.Labels[labelVersion])
}

// update applies fn to a stream's metadata after an optional version check
// and gives the stream a new version.
func (a *API) update(r *awsapi.Request, ref streamRef, version string, fn func(*streamstore.StreamInfo) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	info, err := a.lookup(r, ref)
	if err != nil {
		return err
	}
	if version != "" && version != info.Labels[labelVersion] {
		return versionMismatch(&info)
	}
	_, err = a.store.UpdateStream(info.Name, func(s *streamstore.StreamInfo) error {
		if err := fn(s); err != nil {
			return err
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[labelVersion] = newVersion()
		return nil
	})
	return a.storeError(publicName(&info), err)
}

func (a *API) updateStream(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		CurrentVersion string  `json:"CurrentVersion"`
		DeviceName     *string `json:"DeviceName"`
		MediaType      *string `json:"MediaType"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.CurrentVersion == "" {
		return nil, invalid("CurrentVersion is required.")
	}
	err := a.update(r, in.streamRef, in.CurrentVersion, func(s *streamstore.StreamInfo) error {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		if in.DeviceName != nil {
			s.Labels[labelDevice] = *in.DeviceName
		}
		if in.MediaType != nil {
			s.Labels[labelMediaType] = *in.MediaType
		}
		return nil
	})
	return struct{}{}, err
}

func (a *API) updateDataRetention(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		CurrentVersion             string `json:"CurrentVersion"`
		Operation                  string `json:"Operation"`
		DataRetentionChangeInHours int    `json:"DataRetentionChangeInHours"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	if in.Operation != "INCREASE_DATA_RETENTION" && in.Operation != "DECREASE_DATA_RETENTION" {
		v.Fail("Operation", in.Operation, "Member must satisfy enum value set: [INCREASE_DATA_RETENTION, DECREASE_DATA_RETENTION]")
	}
	v.Range("DataRetentionChangeInHours", int64(in.DataRetentionChangeInHours), 1, MaxRetentionHours)
	if in.CurrentVersion == "" {
		v.Required("CurrentVersion", false)
	}
	if err := validation(&v); err != nil {
		return nil, err
	}
	err := a.update(r, in.streamRef, in.CurrentVersion, func(s *streamstore.StreamInfo) error {
		h := s.RetentionHours + in.DataRetentionChangeInHours
		if in.Operation == "DECREASE_DATA_RETENTION" {
			h = s.RetentionHours - in.DataRetentionChangeInHours
		}
		if h < 0 || h > MaxRetentionHours {
			return invalid("The resulting retention period (%d hours) must be between 0 and %d hours.", h, MaxRetentionHours)
		}
		if (h == 0) != (s.RetentionHours == 0) {
			// The store sizes a live-only buffer differently: say so rather than half-apply.
			return invalid("Changing a stream between no retention (0 hours) and retention is not supported; create a new stream.")
		}
		s.RetentionHours = h
		return nil
	})
	return struct{}{}, err
}

// Tagging. TagStream/UntagStream/ListTagsForStream name the stream;
// the *Resource operations take its ARN.

func (a *API) tagStream(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		Tags map[string]string `json:"Tags"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return struct{}{}, a.tag(r, in.streamRef, in.Tags)
}

func (a *API) tagResource(r *awsapi.Request) (any, error) {
	var in struct {
		ResourceARN string `json:"ResourceARN"`
		Tags        []struct {
			Key   string `json:"Key"`
			Value string `json:"Value"`
		} `json:"Tags"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for _, t := range in.Tags {
		tags[t.Key] = t.Value
	}
	return struct{}{}, a.tag(r, streamRef{StreamARN: in.ResourceARN}, tags)
}

func (a *API) tag(r *awsapi.Request, ref streamRef, tags map[string]string) error {
	var v awsapi.Validator
	if len(tags) == 0 {
		v.Required("Tags", false)
	}
	for k, val := range tags {
		v.Length("Tags.key", k, 1, 128)
		v.Length("Tags.value", val, 0, 256)
	}
	if err := validation(&v); err != nil {
		return err
	}
	return a.update(r, ref, "", func(s *streamstore.StreamInfo) error {
		merged := maps.Clone(s.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > maxTags {
			return awsapi.Errorf(codeTagLimit, "The stream would have more than %d tags.", maxTags)
		}
		s.Tags = merged
		return nil
	})
}

func (a *API) untagStream(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		TagKeyList []string `json:"TagKeyList"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return struct{}{}, a.untag(r, in.streamRef, in.TagKeyList)
}

func (a *API) untagResource(r *awsapi.Request) (any, error) {
	var in struct {
		ResourceARN string   `json:"ResourceARN"`
		TagKeyList  []string `json:"TagKeyList"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return struct{}{}, a.untag(r, streamRef{StreamARN: in.ResourceARN}, in.TagKeyList)
}

func (a *API) untag(r *awsapi.Request, ref streamRef, keys []string) error {
	if len(keys) == 0 {
		return invalid("TagKeyList must not be empty.")
	}
	return a.update(r, ref, "", func(s *streamstore.StreamInfo) error {
		s.Tags = maps.Clone(s.Tags)
		for _, k := range keys {
			delete(s.Tags, k)
		}
		return nil
	})
}

func (a *API) listTagsForStream(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		NextToken string `json:"NextToken"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	info, err := a.lookup(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	return tagsOutput(info.Tags), nil
}

// tagsOutput is the answer of both tag listings (a map in both, unlike
// TagResource's input list).
func tagsOutput(tags map[string]string) any {
	if tags == nil {
		tags = map[string]string{}
	}
	return struct {
		Tags map[string]string `json:"Tags"`
	}{tags}
}

func (a *API) listTagsForResource(r *awsapi.Request) (any, error) {
	var in struct {
		ResourceARN string `json:"ResourceARN"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	info, err := a.lookup(r, streamRef{StreamARN: in.ResourceARN})
	if err != nil {
		return nil, err
	}
	return tagsOutput(info.Tags), nil
}

func (a *API) getDataEndpoint(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		APIName string `json:"APIName"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	switch in.APIName {
	case "PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST", "GET_HLS_STREAMING_SESSION_URL",
		"GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES":
	default:
		var v awsapi.Validator
		v.Fail("APIName", in.APIName, "Member must satisfy enum value set: [PUT_MEDIA, GET_MEDIA, LIST_FRAGMENTS, GET_MEDIA_FOR_FRAGMENT_LIST, GET_HLS_STREAMING_SESSION_URL, GET_DASH_STREAMING_SESSION_URL, GET_CLIP, GET_IMAGES]")
		return nil, validation(&v)
	}
	if _, err := a.lookup(r, in.streamRef); err != nil {
		return nil, err
	}
	return struct {
		DataEndpoint string `json:"DataEndpoint"`
	}{baseURL(r.R)}, nil
}

// baseURL is the gateway's own address as the client reached it: every data
// endpoint is the gateway itself.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
