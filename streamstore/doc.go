// Package streamstore is the shard log: streams, shards over the 128-bit
// hash-key space, append-only segment files, sparse indexes, readers,
// retention, disk budgets and consumer checkpoints. It knows nothing of HTTP,
// AWS or codecs; every protocol package reads and writes through it.
//
// # Layout
//
//	<dir>/meta.db                               bbolt: streams, shards, consumers, tags, checkpoints
//	<dir>/streams/<name>@<created ns>/<shard>/  one directory per shard
//	    00000000000000000000.log                segment: frames of records, named by its first index
//	    00000000000000000000.idx                sparse index of a sealed segment
//
// # Segment format
//
// A segment is a sequence of frames, each
//
//	uint32 length | uint32 CRC32C(payload) | payload
//	payload = uint64 index | int64 arrival ns | int64 producer ns | uvarint key length | key | data
//
// big-endian. Indexes are contiguous within a segment. Arrival times never
// decrease within a shard, so one sparse index (an entry per 64 KiB:
// index, offset, arrival) serves lookups by sequence and by time. The active
// segment keeps its index in memory; sealing a segment writes the index to
// the .idx file (with its own CRC), and a missing or damaged .idx is rebuilt
// by scanning the segment.
//
// # Lifecycle
//
// Open recovers each shard: the tail segment is scanned and cut after its
// last intact frame (a torn write), then sealed; appends after a restart go to
// a new segment. Append writes frames under the shard's lock and then waits
// for durability outside it: with FsyncAlways the first waiter fsyncs
// everything written so far and the others find their records covered (group
// commit). Records become readable when durable, and readers waiting on
// Changed are woken at once. A failed fsync or write faults the shard until
// restart; ENOSPC only fails the write (ErrNoSpace) and the shard recovers when
// space returns. Retention deletes whole sealed segments by age and by disk
// budget, oldest first; closed shards disappear once all their data expired.
//
//	s, _ := streamstore.Open(streamstore.Options{Dir: "data"})
//	s.CreateStream(streamstore.StreamConfig{Name: "cam1", Shards: 1})
//	res, _ := s.Append("cam1", []streamstore.Entry{{PartitionKey: "k", Data: b}})
//
// # Sequence numbers
//
// A record's sequence number is Seq{shard generation, shard number, index}
// written as a 39-digit decimal (see Seq); it increases within a shard, a
// child shard's numbers exceed its parents', and indexes are never reused:
// under the interval and never fsync policies, where a reader may see a record
// a crash then loses, the first segment after a restart skips 2^20 indexes.
package streamstore
