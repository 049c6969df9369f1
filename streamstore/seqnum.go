package streamstore

import (
	"fmt"
	"math/big"
)

// Seq identifies a record: the shard's generation and number and the record's
// index in the shard. Its decimal form is the Kinesis sequence number:
//
//	2^127 | generation<<96 | shard number<<64 | index
//
// The top bit keeps every number at 39 digits, so string order equals numeric
// order. A child shard's generation exceeds its parents', so its numbers are
// greater than theirs; the index never repeats within a shard.
type Seq struct {
	Gen   uint32 // shard generation: 0 at stream creation, parent's + 1 after a split or merge
	Shard uint32 // shard number (shardId-000000000007 is 7)
	Index uint64 // record index within the shard
}

var seqTop = new(big.Int).Lsh(big.NewInt(1), 127)

// String formats the sequence number in decimal.
func (s Seq) String() string {
	hi := uint64(1)<<63 | uint64(s.Gen&0x7fffffff)<<32 | uint64(s.Shard)
	return formatUint128(hi, s.Index)
}

// ParseSeq parses a sequence number made by Seq.String.
func ParseSeq(str string) (Seq, error) {
	if len(str) != 39 {
		return Seq{}, fmt.Errorf("sequence number %q: %w", str, ErrInvalid)
	}
	n, ok := new(big.Int).SetString(str, 10)
	if !ok || n.Sign() < 0 || n.BitLen() != 128 || n.Cmp(seqTop) < 0 {
		return Seq{}, fmt.Errorf("sequence number %q: %w", str, ErrInvalid)
	}
	lo := new(big.Int).And(n, new(big.Int).SetUint64(^uint64(0))).Uint64()
	hi := new(big.Int).Rsh(n, 64).Uint64()
	return Seq{Gen: uint32(hi>>32) & 0x7fffffff, Shard: uint32(hi), Index: lo}, nil
}
