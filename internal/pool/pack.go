package pool

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash"
)

// Object types as a pack file numbers them.
const (
	objCommit   = 1
	objTree     = 2
	objOfsDelta = 6
)

// maxDepth bounds a delta chain, as git's pack.depth does: reading a tree at the
// end of a long chain applies every delta before it.
const maxDepth = 50

// packWriter writes a pack file (git's format, version 2) in memory: whole
// objects and deltas against an earlier object of the same pack. It never decides
// an object's name: the objects' ids are computed by the caller, and git's
// index-pack hashes every object of the pack again before any of it is used.
type packWriter struct {
	buf   bytes.Buffer
	count uint32
	zw    *zlib.Writer
	sum   func() hash.Hash
}

func newPackWriter(sum func() hash.Hash) *packWriter {
	p := &packWriter{sum: sum}
	p.buf.Write([]byte{'P', 'A', 'C', 'K', 0, 0, 0, 2, 0, 0, 0, 0}) // the count is set by bytes
	p.zw, _ = zlib.NewWriterLevel(&p.buf, zlib.BestSpeed)           // the level is valid
	return p
}

// whole writes an object as itself and returns its offset in the pack.
func (p *packWriter) whole(typ int, data []byte) int {
	off := p.buf.Len()
	p.header(typ, len(data))
	p.deflate(data)
	return off
}

// delta writes target as a delta against the object at baseOff, whose content is
// base, and returns its offset.
func (p *packWriter) delta(baseOff int, base, target []byte) int {
	off := p.buf.Len()
	d := makeDelta(base, target)
	p.header(objOfsDelta, len(d))
	// The base's distance back, in the pack's own variable-length form.
	var b [10]byte
	i := len(b) - 1
	dist := uint64(off - baseOff)
	b[i] = byte(dist & 0x7f)
	for dist >>= 7; dist != 0; dist >>= 7 {
		dist--
		i--
		b[i] = 0x80 | byte(dist&0x7f)
	}
	p.buf.Write(b[i:])
	p.deflate(d)
	return off
}

func (p *packWriter) header(typ, size int) {
	c := byte(typ<<4) | byte(size&0x0f)
	for size >>= 4; size != 0; size >>= 7 {
		p.buf.WriteByte(c | 0x80)
		c = byte(size & 0x7f)
	}
	p.buf.WriteByte(c)
	p.count++
}

func (p *packWriter) deflate(data []byte) {
	p.zw.Reset(&p.buf)
	_, _ = p.zw.Write(data) // a bytes.Buffer does not fail
	_ = p.zw.Close()
}

// bytes ends the pack: the object count in the header and the checksum after.
func (p *packWriter) bytes() []byte {
	b := p.buf.Bytes()
	binary.BigEndian.PutUint32(b[8:12], p.count)
	h := p.sum()
	h.Write(b)
	return h.Sum(b)
}

// makeDelta is git's delta format for target made from base: the sizes, a copy of
// the part both start with, the new bytes between, a copy of the part both end
// with. That is the whole of a tree's change when a lock moves: one entry out of
// or into a directory whose other entries stay as they are.
func makeDelta(base, target []byte) []byte {
	// Compared a block at a time first: directories are large, their changes small.
	const block = 256
	n := min(len(base), len(target))
	pre := 0
	for pre+block <= n && bytes.Equal(base[pre:pre+block], target[pre:pre+block]) {
		pre += block
	}
	for pre < n && base[pre] == target[pre] {
		pre++
	}
	suf := 0
	for suf+block <= n-pre && bytes.Equal(base[len(base)-suf-block:len(base)-suf], target[len(target)-suf-block:len(target)-suf]) {
		suf += block
	}
	for suf < n-pre && base[len(base)-1-suf] == target[len(target)-1-suf] {
		suf++
	}
	d := binary.AppendUvarint(nil, uint64(len(base)))
	d = binary.AppendUvarint(d, uint64(len(target)))
	d = copyOps(d, 0, pre)
	for ins := target[pre : len(target)-suf]; len(ins) > 0; {
		n := min(len(ins), 0x7f)
		d = append(append(d, byte(n)), ins[:n]...)
		ins = ins[n:]
	}
	return copyOps(d, len(base)-suf, suf)
}

// copyOps appends copy instructions for base[off:off+n], at most 64 KiB each (the
// largest a size of zero stands for, and what every git reads).
func copyOps(d []byte, off, n int) []byte {
	for n > 0 {
		size := min(n, 0x10000)
		op, args := byte(0x80), make([]byte, 0, 7)
		for i := range 4 {
			if b := byte(off >> (8 * i)); b != 0 {
				op |= 1 << i
				args = append(args, b)
			}
		}
		for i := range 3 {
			if b := byte(size >> (8 * i) & 0xff); b != 0 && size != 0x10000 {
				op |= 1 << (4 + i)
				args = append(args, b)
			}
		}
		d = append(append(d, op), args...)
		off += size
		n -= size
	}
	return d
}
