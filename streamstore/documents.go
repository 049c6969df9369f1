package streamstore

import (
	"bytes"
	"fmt"
)

// Documents are the gateway's own small metadata (topic rules, delivery
// streams, applications), kept with the streams' metadata in one
// transactional store: a kind ("rule") and a name map to opaque bytes.

func documentKey(kind, name string) []byte { return []byte(kind + "\x00" + name) }

// PutDocument stores (or replaces) a document.
func (s *Store) PutDocument(kind, name string, data []byte) error {
	return s.meta.db.Update(func(tx txn) error {
		return tx.Bucket(bucketDocuments).Put(documentKey(kind, name), data)
	})
}

// Document returns a document, or ErrNotFound.
func (s *Store) Document(kind, name string) ([]byte, error) {
	var out []byte
	err := s.meta.db.View(func(tx txn) error {
		v := tx.Bucket(bucketDocuments).Get(documentKey(kind, name))
		if v == nil {
			return fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// Documents returns every document of a kind, by name.
func (s *Store) Documents(kind string) (map[string][]byte, error) {
	out := map[string][]byte{}
	prefix := []byte(kind + "\x00")
	err := s.meta.db.View(func(tx txn) error {
		c := tx.Bucket(bucketDocuments).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out[string(k[len(prefix):])] = bytes.Clone(v)
		}
		return nil
	})
	return out, err
}

// DeleteDocument removes a document; deleting a missing one is ErrNotFound.
func (s *Store) DeleteDocument(kind, name string) error {
	return s.meta.db.Update(func(tx txn) error {
		b := tx.Bucket(bucketDocuments)
		if b.Get(documentKey(kind, name)) == nil {
			return fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
		}
		return b.Delete(documentKey(kind, name))
	})
}
