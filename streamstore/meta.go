package streamstore

import (
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
)

// StreamInfo describes a stream: its settings, shards (open and closed),
// consumers and tags. It is what the metadata store keeps.
type StreamInfo struct {
	Name           string
	Created        time.Time
	RetentionHours int
	OnDemand       bool
	MaxRecordKiB   int               // largest record accepted (data + key), KiB
	DiskBudget     int64             // bytes; 0 means no per-stream cap
	Shards         []ShardInfo       // in creation order
	Tags           map[string]string // user tags
	Consumers      []Consumer
	Labels         map[string]string // owner-defined attributes (e.g. the kind of stream)
	NextShard      uint32            // number the next new shard gets
	Dir            string            // directory under <data>/streams holding its shards
}

// ShardInfo describes one shard and its lineage.
type ShardInfo struct {
	ID             string
	Num            uint32
	Gen            uint32
	Parent         string // "" for none
	AdjacentParent string
	HashStart      HashKey
	HashEnd        HashKey
	Created        time.Time
	Closed         bool
	ClosedAt       time.Time
	End            uint64 // when closed: the index after its last record
}

// Consumer is a registered (enhanced fan-out) consumer of a stream.
type Consumer struct {
	Name    string
	Created time.Time
}

// Retention is how long the stream keeps records.
func (s *StreamInfo) Retention() time.Duration {
	if s.RetentionHours == 0 {
		return LiveRetention
	}
	return time.Duration(s.RetentionHours) * time.Hour
}

// StartSeq is the first sequence number the shard can hold.
func (s ShardInfo) StartSeq() Seq { return Seq{Gen: s.Gen, Shard: s.Num} }

// EndSeq is the last sequence number of a closed shard (its start when empty).
func (s ShardInfo) EndSeq() Seq {
	end := s.End
	if end > 0 {
		end--
	}
	return Seq{Gen: s.Gen, Shard: s.Num, Index: end}
}

// Shard returns the shard with the given id.
func (s *StreamInfo) Shard(id string) (ShardInfo, bool) {
	for _, sh := range s.Shards {
		if sh.ID == id {
			return sh, true
		}
	}
	return ShardInfo{}, false
}

// OpenShards returns the shards that accept writes, by hash-key order.
func (s *StreamInfo) OpenShards() []ShardInfo {
	var open []ShardInfo
	for _, sh := range s.Shards {
		if !sh.Closed {
			open = append(open, sh)
		}
	}
	sortByHash(open)
	return open
}

func (s *StreamInfo) clone() StreamInfo {
	c := *s
	c.Shards = append([]ShardInfo(nil), s.Shards...)
	c.Consumers = append([]Consumer(nil), s.Consumers...)
	c.Tags = cloneMap(s.Tags)
	c.Labels = cloneMap(s.Labels)
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

var (
	bucketStreams     = []byte("streams")
	bucketCheckpoints = []byte("checkpoints")
	bucketDocuments   = []byte("documents")
)

// metaDB is the metadata store: streams and checkpoints in bbolt, encoded
// with CBOR so fields can be added without a migration.
type metaDB struct{ db *bolt.DB }

func openMeta(path string) (*metaDB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketStreams, bucketCheckpoints, bucketDocuments} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &metaDB{db}, nil
}

// metaEnc keeps times at full precision (CBOR's default drops nanoseconds).
var metaEnc, _ = cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()

func (m *metaDB) putStream(info *StreamInfo) error {
	b, err := metaEnc.Marshal(info)
	if err != nil {
		return err
	}
	return m.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).Put([]byte(info.Name), b)
	})
}

func (m *metaDB) deleteStream(name string) error {
	return m.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketStreams).Delete([]byte(name)); err != nil {
			return err
		}
		// Checkpoints of the stream go with it.
		c := tx.Bucket(bucketCheckpoints).Cursor()
		var doomed [][]byte
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if _, stream, _ := splitCheckpointKey(k); stream == name {
				doomed = append(doomed, append([]byte(nil), k...))
			}
		}
		for _, k := range doomed {
			if err := tx.Bucket(bucketCheckpoints).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func (m *metaDB) streams() ([]StreamInfo, error) {
	var out []StreamInfo
	err := m.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).ForEach(func(_, v []byte) error {
			var info StreamInfo
			if err := cbor.Unmarshal(v, &info); err != nil {
				return err
			}
			out = append(out, info)
			return nil
		})
	})
	return out, err
}

func checkpointKey(group, stream, shard string) []byte {
	return []byte(group + "\x00" + stream + "\x00" + shard)
}

func splitCheckpointKey(k []byte) (group, stream, shard string) {
	parts := [3]string{}
	i := 0
	start := 0
	for j, c := range k {
		if c == 0 && i < 2 {
			parts[i] = string(k[start:j])
			i++
			start = j + 1
		}
	}
	parts[i] = string(k[start:])
	return parts[0], parts[1], parts[2]
}

type txn = *bolt.Tx
