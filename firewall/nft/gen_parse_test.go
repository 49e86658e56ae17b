package nft

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// msg is one netlink message of type typ carrying data.
func msg(typ uint16, data []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(data)+4)
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(data)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// The kernel's answer to GETGEN, as parseGen reads it: the generation, an
// error, or neither.
func TestParseGen(t *testing.T) {
	newgen := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWGEN)
	attr := func(typ uint16, v uint32) []byte {
		b := binary.NativeEndian.AppendUint16(binary.NativeEndian.AppendUint16(nil, 8), typ)
		return binary.BigEndian.AppendUint32(b, v)
	}
	nfgen := make([]byte, sizeofNfgenmsg)
	withGen := append(append(append([]byte{}, nfgen...), attr(unix.NFTA_GEN_PROC_PID, 99)...), attr(unix.NFTA_GEN_ID, 7)...)
	if g, err := parseGen(msg(newgen, withGen)); err != nil || g != 7 {
		t.Errorf("an answer with generation 7: %d %v", g, err)
	}
	eperm := -int32(unix.EPERM)
	errno := binary.NativeEndian.AppendUint32(nil, uint32(eperm))
	if _, err := parseGen(msg(unix.NLMSG_ERROR, append(errno, make([]byte, 16)...))); !errors.Is(err, unix.EPERM) {
		t.Errorf("an error answer: %v, want EPERM", err)
	}
	if _, err := parseGen(msg(newgen, append(nfgen, attr(unix.NFTA_GEN_PROC_PID, 99)...))); err == nil {
		t.Error("an answer without a generation: no error")
	}
	if _, err := parseGen(msg(newgen, withGen)[:10]); err == nil {
		t.Error("a cut answer: no error")
	}
}
