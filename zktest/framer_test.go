package zktest

import (
	"encoding/binary"
	"testing"
)

// packet returns a ZooKeeper packet: a length prefix and the fields.
func packet(fields ...[]byte) []byte {
	var body []byte
	for _, f := range fields {
		body = append(body, f...)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func i32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

type frame struct {
	header  bool
	end     bool
	xid, op int32
	pos     int // stream offset just after the event
}

// run feeds stream to a framer in chunks of the given size and returns the
// events it reports.
func run(hdrLen int, stream []byte, chunk int) []frame {
	f := framer{hdrLen: hdrLen}
	var got []frame
	off := 0
	for off < len(stream) {
		data := stream[off:min(off+chunk, len(stream))]
		for len(data) > 0 {
			n, header, end := f.advance(data)
			if n == 0 && !header && !end {
				panic("no progress")
			}
			data = data[n:]
			off += n
			if header || end {
				fr := frame{header: header, end: end, pos: off}
				if header {
					fr.xid, fr.op = f.xid, f.op
				}
				got = append(got, fr)
			}
		}
	}
	return got
}

func TestFramerRequests(t *testing.T) {
	connectReq := packet(make([]byte, 44))
	create := packet(i32(7), i32(opCreate), []byte("path and data"))
	ping := packet(i32(-2), i32(11))
	empty := packet()
	odd := packet(i32(3)) // too short for a request header
	getData := packet(i32(8), i32(4), []byte("/x"), []byte{0})
	var stream []byte
	for _, p := range [][]byte{connectReq, create, ping, empty, odd, getData} {
		stream = append(stream, p...)
	}
	want := []frame{
		{end: true, pos: len(connectReq)},
		{header: true, xid: 7, op: opCreate, pos: len(connectReq) + 12},
		{end: true, pos: len(connectReq) + len(create)},
		{header: true, end: true, xid: -2, op: 11, pos: len(connectReq) + len(create) + 12},
		{end: true, pos: len(connectReq) + len(create) + len(ping) + 4},
		{end: true, pos: len(connectReq) + len(create) + len(ping) + 4 + 8},
		{header: true, xid: 8, op: 4, pos: len(stream) - len(getData) + 12},
		{end: true, pos: len(stream)},
	}
	for chunk := 1; chunk <= len(stream); chunk++ {
		got := run(requestHeaderLen, stream, chunk)
		if len(got) != len(want) {
			t.Fatalf("chunk %d: got %d events %+v; want %+v", chunk, len(got), got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("chunk %d: event %d = %+v; want %+v", chunk, i, got[i], want[i])
			}
		}
	}
}

func TestFramerReplies(t *testing.T) {
	connectResp := packet(make([]byte, 36))
	reply := packet(i32(7), make([]byte, 12), []byte("/path"))
	watch := packet(i32(-1), make([]byte, 12))
	stream := append(append(append([]byte(nil), connectResp...), reply...), watch...)
	for chunk := 1; chunk <= len(stream); chunk++ {
		var xids []int32
		for _, fr := range run(replyHeaderLen, stream, chunk) {
			if fr.header {
				xids = append(xids, fr.xid)
			}
		}
		if len(xids) != 2 || xids[0] != 7 || xids[1] != -1 {
			t.Fatalf("chunk %d: reply xids %v; want [7 -1]", chunk, xids)
		}
	}
}

func TestIsCreate(t *testing.T) {
	for op, want := range map[int32]bool{1: true, 15: true, 19: true, 21: true, 2: false, 4: false, 14: false, 11: false} {
		if isCreate(op) != want {
			t.Errorf("isCreate(%d) = %v; want %v", op, !want, want)
		}
	}
}
