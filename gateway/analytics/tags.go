package analytics

import (
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// appByARN finds the application a tagging call names.
func (s *Service) appByARN(r *awsapi.Request, arn string) (*Application, error) {
	name, ok := arnName(arn, "application")
	if !ok {
		return nil, invalid("%s is not an application ARN.", arn)
	}
	return s.app(r, name)
}

func (s *Service) tag(r *awsapi.Request) (any, error) {
	var in struct {
		ResourceARN string
		Tags        []Tag
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appByARN(r, in.ResourceARN)
	if err != nil {
		return nil, err
	}
	for _, t := range in.Tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return nil, invalid("A tag key is 1 to 128 characters and its value at most 256.")
		}
		replaced := false
		for i := range a.Tags {
			if a.Tags[i].Key == t.Key {
				a.Tags[i].Value, replaced = t.Value, true
			}
		}
		if !replaced {
			a.Tags = append(a.Tags, t)
		}
	}
	if len(a.Tags) > 50 {
		return nil, awsapi.Errorf("TooManyTagsException", "An application has at most 50 tags.")
	}
	return map[string]any{}, s.save(a)
}

func (s *Service) untag(r *awsapi.Request) (any, error) {
	var in struct {
		ResourceARN string
		TagKeys     []string
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appByARN(r, in.ResourceARN)
	if err != nil {
		return nil, err
	}
	drop := map[string]bool{}
	for _, k := range in.TagKeys {
		drop[k] = true
	}
	kept := a.Tags[:0]
	for _, t := range a.Tags {
		if !drop[t.Key] {
			kept = append(kept, t)
		}
	}
	a.Tags = kept
	return map[string]any{}, s.save(a)
}

func (s *Service) listTags(r *awsapi.Request) (any, error) {
	var in struct{ ResourceARN string }
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.appByARN(r, in.ResourceARN)
	if err != nil {
		return nil, err
	}
	tags := a.Tags
	if tags == nil {
		tags = []Tag{}
	}
	return map[string]any{"Tags": tags}, nil
}
