package streamstore

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

func TestCRCCombineMatchesOneChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 64, 1000, 1 << 16, 3<<20 + 5} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		cut := rng.IntN(n + 1)
		a, c := b[:cut], b[cut:]
		got := crcCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(c, castagnoli), int64(len(c)))
		if want := crc32.Checksum(b, castagnoli); got != want {
			t.Errorf("len %d cut %d: combined %08x, want %08x", n, cut, got, want)
		}
	}
}

func FuzzCRCCombine(f *testing.F) {
	f.Add([]byte("head"), []byte("data"))
	f.Add([]byte{}, []byte{0})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		got := crcCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(len(b)))
		if want := crc32.Checksum(append(append([]byte{}, a...), b...), castagnoli); got != want {
			t.Fatalf("combined %08x, want %08x", got, want)
		}
	})
}
