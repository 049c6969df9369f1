package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Key is an access key: a principal with a policy.
type Key struct {
	ID      string    `json:"AccessKeyId"`
	Secret  string    `json:"SecretAccessKey"`
	Name    string    `json:"Name"`
	Created time.Time `json:"Created"`
	Policy  Policy    `json:"Policy"`
	// RequestsPerSecond limits the key's API calls (0: no limit), with a
	// burst of one second's worth.
	RequestsPerSecond float64 `json:"RequestsPerSecond,omitempty"`
}

// keysFile is the on-disk form of the key store.
type keysFile struct {
	Keys []Key `json:"Keys"`
}

// KeysPath is where a data directory keeps its keys.
func KeysPath(dataDir string) string { return filepath.Join(dataDir, "auth", "keys.json") }

// LoadKeys reads a keys file.
func LoadKeys(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]bool{}
	for _, k := range f.Keys {
		if k.ID == "" || k.Secret == "" || seen[k.ID] {
			return nil, fmt.Errorf("%s: key %q is empty or repeated", path, k.ID)
		}
		seen[k.ID] = true
		if err := k.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", path, k.ID, err)
		}
	}
	return f.Keys, nil
}

// SaveKeys writes a keys file atomically (temp file, fsync, rename), 0600.
func SaveKeys(path string, keys []Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Created.Before(keys[j].Created) })
	b, err := json.MarshalIndent(keysFile{Keys: keys}, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// NewKey makes a key with a random id and secret.
func NewKey(name string, p Policy) Key {
	const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 16)
	rand.Read(b)
	id := make([]byte, 16)
	for i := range id {
		id[i] = idChars[int(b[i])%len(idChars)]
	}
	secret := make([]byte, 30)
	rand.Read(secret)
	return Key{ID: "SGAK" + string(id), Secret: strings.NewReplacer("+", "A", "/", "B").Replace(base64.StdEncoding.EncodeToString(secret)),
		Name: name, Created: time.Now().UTC().Truncate(time.Second), Policy: p}
}

// Store is the live key set, reloaded when the file changes.
type Store struct {
	path string
	log  *slog.Logger

	mu    sync.RWMutex
	keys  map[string]Key
	mtime time.Time
	size  int64

	missMu   sync.Mutex
	lastMiss time.Time
}

// OpenStore loads the keys of a data directory. When there are none yet it
// creates an admin key and returns it (to be shown once).
func OpenStore(dataDir string, log *slog.Logger) (*Store, *Key, error) {
	s := &Store{path: KeysPath(dataDir), log: log, keys: map[string]Key{}}
	var created *Key
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		k := NewKey("admin", AdminPolicy())
		if err := SaveKeys(s.path, []Key{k}); err != nil {
			return nil, nil, err
		}
		created = &k
	}
	if err := s.reload(); err != nil {
		return nil, nil, err
	}
	return s, created, nil
}

// Lookup finds a key by id. An unknown id rereads the file (at most every
// 200 ms), so a key made by `streamgate keys create` works at once.
func (s *Store) Lookup(id string) (Key, bool) {
	return s.find(func(keys map[string]Key) (Key, bool) {
		k, ok := keys[id]
		return k, ok
	})
}

// LookupName finds a key by its name (a device's certificate names its
// key), rereading the file like Lookup.
func (s *Store) LookupName(name string) (Key, bool) {
	return s.find(func(keys map[string]Key) (Key, bool) {
		for _, k := range keys {
			if k.Name == name {
				return k, true
			}
		}
		return Key{}, false
	})
}

// find looks a key up, and again after rereading the file on a miss.
func (s *Store) find(match func(map[string]Key) (Key, bool)) (Key, bool) {
	s.mu.RLock()
	k, ok := match(s.keys)
	s.mu.RUnlock()
	if ok {
		return k, true
	}
	s.missMu.Lock()
	due := time.Since(s.lastMiss) > 200*time.Millisecond
	if due {
		s.lastMiss = time.Now()
	}
	s.missMu.Unlock()
	if !due || s.reload() != nil {
		return Key{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return match(s.keys)
}

// Len is the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}

// reload rereads the file if it changed. A broken file keeps the old keys.
func (s *Store) reload() error {
	st, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	s.mu.RLock()
	same := st.ModTime().Equal(s.mtime) && st.Size() == s.size
	s.mu.RUnlock()
	if same {
		return nil
	}
	keys, err := LoadKeys(s.path)
	if err != nil {
		return err
	}
	m := make(map[string]Key, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	s.mu.Lock()
	s.keys, s.mtime, s.size = m, st.ModTime(), st.Size()
	s.mu.Unlock()
	return nil
}

// Watch reloads the keys file every interval until done is closed, so
// `streamgate keys create|delete` take effect without a restart.
func (s *Store) Watch(done <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			before := s.Len()
			if err := s.reload(); err != nil {
				s.log.Error("keys file unreadable; keeping the keys loaded before", "path", s.path, "err", err)
			} else if after := s.Len(); after != before {
				s.log.Info("keys reloaded", "keys", after)
			}
		}
	}
}
