package streamstore

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"
)

// HashKey is a point in the 128-bit hash-key space that shards divide.
type HashKey struct{ Hi, Lo uint64 }

// MaxHashKey is 2^128-1, the end of the hash-key space.
var MaxHashKey = HashKey{^uint64(0), ^uint64(0)}

// HashPartitionKey maps a partition key to the hash-key space with MD5, as
// Kinesis does.
func HashPartitionKey(key string) HashKey {
	sum := md5.Sum([]byte(key))
	return HashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// ParseHashKey parses a decimal hash key in [0, 2^128).
func ParseHashKey(s string) (HashKey, error) {
	if s == "" || len(s) > 39 {
		return HashKey{}, fmt.Errorf("hash key %q: %w", s, ErrInvalid)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return HashKey{}, fmt.Errorf("hash key %q: %w", s, ErrInvalid)
		}
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.BitLen() > 128 {
		return HashKey{}, fmt.Errorf("hash key %q out of range: %w", s, ErrInvalid)
	}
	var b [16]byte
	n.FillBytes(b[:])
	return HashKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, nil
}

// String formats the key in decimal, as the Kinesis API shows it.
func (h HashKey) String() string {
	return formatUint128(h.Hi, h.Lo)
}

// formatUint128 writes hi<<64|lo in decimal without allocating big integers.
func formatUint128(hi, lo uint64) string {
	const chunk = 1e19 // largest power of ten below 2^64
	var buf [40]byte
	i := len(buf)
	for {
		var r uint64
		qHi := hi / chunk
		lo, r = bits.Div64(hi%chunk, lo, chunk)
		hi = qHi
		if hi == 0 && lo == 0 {
			for ; r > 0; r /= 10 {
				i--
				buf[i] = byte('0' + r%10)
			}
			break
		}
		for d := 0; d < 19; d++ {
			i--
			buf[i] = byte('0' + r%10)
			r /= 10
		}
	}
	if i == len(buf) {
		return "0"
	}
	return string(buf[i:])
}

// Cmp compares two keys: -1, 0 or +1.
func (h HashKey) Cmp(o HashKey) int {
	switch {
	case h.Hi < o.Hi:
		return -1
	case h.Hi > o.Hi:
		return 1
	case h.Lo < o.Lo:
		return -1
	case h.Lo > o.Lo:
		return 1
	}
	return 0
}

// Add1 returns h+1 (wrapping at the top of the space).
func (h HashKey) Add1() HashKey {
	lo, carry := bits.Add64(h.Lo, 1, 0)
	return HashKey{h.Hi + carry, lo}
}

// Sub1 returns h-1 (wrapping at zero).
func (h HashKey) Sub1() HashKey {
	lo, borrow := bits.Sub64(h.Lo, 1, 0)
	return HashKey{h.Hi - borrow, lo}
}

// splitSpace returns the start keys of n equal ranges over [start, end].
func splitSpace(start, end HashKey, n int) []HashKey {
	toBig := func(h HashKey) *big.Int {
		return new(big.Int).Or(new(big.Int).Lsh(new(big.Int).SetUint64(h.Hi), 64), new(big.Int).SetUint64(h.Lo))
	}
	s, e := toBig(start), toBig(end)
	width := new(big.Int).Sub(e, s)
	width.Add(width, big.NewInt(1))
	starts := make([]HashKey, n)
	for i := 0; i < n; i++ {
		off := new(big.Int).Mul(width, big.NewInt(int64(i)))
		off.Div(off, big.NewInt(int64(n)))
		off.Add(off, s)
		var b [16]byte
		off.FillBytes(b[:])
		starts[i] = HashKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	}
	return starts
}
