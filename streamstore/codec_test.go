package streamstore

import (
	"math/big"
	"testing"
)

func TestSeqRoundTripAndOrder(t *testing.T) {
	seqs := []Seq{{0, 0, 0}, {0, 0, 1}, {0, 0, 1 << 40}, {0, 3, 0}, {1, 0, 0}, {1<<31 - 1, 1<<32 - 1, 1<<64 - 1}}
	for i, s := range seqs {
		str := s.String()
		if len(str) != 39 {
			t.Fatalf("%+v formats to %d digits", s, len(str))
		}
		got, err := ParseSeq(str)
		if err != nil || got != s {
			t.Fatalf("ParseSeq(%s) = %+v, %v; want %+v", str, got, err, s)
		}
		if i > 0 && str <= seqs[i-1].String() {
			t.Fatalf("%s not after %s", str, seqs[i-1].String())
		}
	}
	for _, bad := range []string{"", "12", "abc", "999999999999999999999999999999999999999", "100000000000000000000000000000000000000"} {
		if _, err := ParseSeq(bad); err == nil {
			t.Errorf("ParseSeq(%q) accepted", bad)
		}
	}
}

func TestHashKeyFormattingMatchesBigInt(t *testing.T) {
	for _, h := range []HashKey{{}, {0, 1}, {1, 0}, MaxHashKey, HashPartitionKey("a")} {
		n := new(big.Int).Lsh(new(big.Int).SetUint64(h.Hi), 64)
		n.Or(n, new(big.Int).SetUint64(h.Lo))
		if h.String() != n.String() {
			t.Fatalf("%v: %s != %s", h, h.String(), n.String())
		}
		back, err := ParseHashKey(h.String())
		if err != nil || back != h {
			t.Fatalf("round trip of %s: %v %v", h, back, err)
		}
	}
	if _, err := ParseHashKey("340282366920938463463374607431768211456"); err == nil {
		t.Fatal("2^128 accepted")
	}
	// The value kinesalite documents for the midpoint split.
	if got := splitSpace(HashKey{}, MaxHashKey, 2)[1].Sub1().String(); got != "170141183460469231731687303715884105727" {
		t.Fatalf("midpoint %s", got)
	}
}
