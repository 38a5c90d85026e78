package framework

import (
	"encoding/binary"
	"testing"
)

// TestFramerShortPacketSplit: a packet shorter than the 20-byte reply header is taken whole as its
// header, also when its bytes come in two reads; the replies after it are framed right.
func TestFramerShortPacketSplit(t *testing.T) {
	var f replyFramer
	// The connect response: length 36 and 36 bytes.
	connect := make([]byte, 40)
	binary.BigEndian.PutUint32(connect[0:4], 36)
	binary.BigEndian.PutUint32(connect[8:12], 10000)
	// A short packet: length 4, then 4 bytes (xid 5).
	short := make([]byte, 8)
	binary.BigEndian.PutUint32(short[0:4], 4)
	binary.BigEndian.PutUint32(short[4:8], 5)
	// A normal reply: length 16, xid 7, zxid, error 0.
	normal := make([]byte, 20)
	binary.BigEndian.PutUint32(normal[0:4], 16)
	binary.BigEndian.PutUint32(normal[4:8], 7)
	var xids []int32
	feed := func(b []byte) {
		for len(b) > 0 {
			n, done := f.advance(b)
			b = b[n:]
			if done && !f.first {
				xids = append(xids, f.xid)
			}
		}
	}
	feed(connect)
	feed(short[:6]) // the short packet split across two reads
	feed(append(short[6:], normal...))
	t.Logf("xids %v, skip %d", xids, f.skip)
	if len(xids) != 2 || xids[0] != 5 || xids[1] != 7 || f.skip != 0 {
		t.Fatalf("framed xids %v (skip %d), want [5 7] (skip 0)", xids, f.skip)
	}
}
