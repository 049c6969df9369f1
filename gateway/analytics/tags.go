package analytics

import (
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// tagRequest is the body of the tagging operations.
type tagRequest struct {
	ResourceARN string
	Tags        []Tag
	TagKeys     []string
}

// withTagged runs a tagging operation on the application its ResourceARN
// names, with the service locked.
func (s *Service) withTagged(r *awsapi.Request, op func(a *Application, in tagRequest) (any, error)) (any, error) {
	var in tagRequest
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	name, ok := arnName(in.ResourceARN, "application")
	if !ok {
		return nil, invalid("%s is not an application ARN.", in.ResourceARN)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.app(r, name)
	if err != nil {
		return nil, err
	}
	return op(a, in)
}

func (s *Service) tag(r *awsapi.Request) (any, error) {
	return s.withTagged(r, func(a *Application, in tagRequest) (any, error) {
		tags := append([]Tag(nil), a.Tags...)
		for _, t := range in.Tags {
			if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
				return nil, invalid("A tag key is 1 to 128 characters and its value at most 256.")
			}
			replaced := false
			for i := range tags {
				if tags[i].Key == t.Key {
					tags[i].Value, replaced = t.Value, true
				}
			}
			if !replaced {
				tags = append(tags, t)
			}
		}
		if len(tags) > 50 {
			return nil, awsapi.Errorf("TooManyTagsException", "An application has at most 50 tags.")
		}
		a.Tags = tags
		return map[string]any{}, s.save(a)
	})
}

func (s *Service) untag(r *awsapi.Request) (any, error) {
	return s.withTagged(r, func(a *Application, in tagRequest) (any, error) {
		drop := map[string]bool{}
		for _, k := range in.TagKeys {
			drop[k] = true
		}
		var kept []Tag
		for _, t := range a.Tags {
			if !drop[t.Key] {
				kept = append(kept, t)
			}
		}
		a.Tags = kept
		return map[string]any{}, s.save(a)
	})
}

func (s *Service) listTags(r *awsapi.Request) (any, error) {
	return s.withTagged(r, func(a *Application, _ tagRequest) (any, error) {
		tags := a.Tags
		if tags == nil {
			tags = []Tag{}
		}
		return map[string]any{"Tags": tags}, nil
	})
}
