package zktest

import "encoding/binary"

// ZooKeeper request opcodes that create a znode.
const (
	opCreate          = 1
	opCreate2         = 15
	opCreateContainer = 19
	opCreateTTL       = 21
)

func isCreate(op int32) bool {
	switch op {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL:
		return true
	}
	return false
}

// Header lengths, including the 4-byte length prefix, that a framer decodes.
const (
	requestHeaderLen = 12 // length, xid, opcode
	replyHeaderLen   = 8  // length, xid (then zxid and err, not decoded)
)

// A framer follows the packet boundaries of one direction of a ZooKeeper
// connection as its bytes stream past, however they are split into reads.
//
// Every packet is a 4-byte big-endian length followed by that many bytes.
// The first packet of a connection, the connect request or response, has no
// further header. Every later packet starts with an int32 xid; requests
// follow it with an int32 opcode. The framer decodes these.
//
// Bytes that are not ZooKeeper packets, such as a four-letter-word command,
// leave the framer confused but do no harm.
type framer struct {
	hdrLen  int   // requestHeaderLen or replyHeaderLen
	started bool  // the connect packet has passed
	pos     int64 // bytes of the current packet seen
	size    int64 // length of the current packet, prefix included; 0 until known
	hdr     [requestHeaderLen]byte
	xid, op int32 // of the current packet, once its header is known
}

// advance consumes a prefix of b and returns its length n. It stops early,
// right after the header of a packet (other than the first) is complete,
// reporting header, and right after the end of a packet, reporting end.
// Both may be reported at once.
func (f *framer) advance(b []byte) (n int, header, end bool) {
	want := int64(4)
	if f.started {
		want = int64(f.hdrLen)
	}
	for n < len(b) && f.pos < want && (f.size == 0 || f.pos < f.size) {
		f.hdr[f.pos] = b[n]
		f.pos++
		n++
		if f.pos == 4 {
			l := int64(int32(binary.BigEndian.Uint32(f.hdr[:4])))
			f.size = 4 + max(l, 0)
		}
		if f.started && f.pos == want && f.size >= want {
			f.xid = int32(binary.BigEndian.Uint32(f.hdr[4:8]))
			if f.hdrLen >= requestHeaderLen {
				f.op = int32(binary.BigEndian.Uint32(f.hdr[8:12]))
			}
			header = true
		}
	}
	if !header && f.size > 0 {
		k := min(int64(len(b)-n), f.size-f.pos)
		f.pos += k
		n += int(k)
	}
	if f.size > 0 && f.pos == f.size {
		end = true
		f.started = true
		f.pos, f.size = 0, 0
	}
	return n, header, end
}
