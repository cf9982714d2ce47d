// gen writes the fixtures of recompress/tests/goflate.rs: the raw deflate streams Go's
// compress/flate writes for deterministic inputs at every level, so the Rust port
// (recompress/src/goflate) can be checked byte for byte without Go installed.
//
//	go run gen.go                 # rewrite the checked-in fixtures (run in this directory)
//	go run gen.go -out DIR -long  # also the large inputs, every stream written out, and a
//	                              # 2.3 GB level 1 stream kept as a digest (OUK_LONG_TESTS)
//	go run gen.go -bench          # time Go's encoder at levels 1, 6 and 9
//
// manifest.tsv lists one stream per line: name, kind, size, seed (the Rust test rebuilds
// the input from these with the same generators), level, how it was written ("all": one
// Write then Close; "flush:N": Flush after every N bytes), the stream's length and
// SHA-256, and the file holding it ("-" for the large inputs, checked by digest only).
// Before writing, gen checks that Go's output does not depend on how the input is split
// across Write calls. It refuses Go 1.27 and later, whose compress/flate is a different
// encoder (golang/go#75532).
package main

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// splitmix64, mirrored in the Rust test.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) below(n int) int { return int(r.next() % uint64(n)) }

var words = []string{"the", "delta", "chunk", "store", "kit", "import", "verify", "signed",
	"offline", "update", "host", "generation", "layer", "image", "registry", "manifest",
	"a", "of", "to", "and", "in", "is", "that", "for", "with", "on", "as", "recipe",
	"plain", "bytes", "compressed", "window", "match", "literal", "Huffman", "block"}

func text(n int, seed uint64) []byte {
	r := rng{seed}
	b := make([]byte, 0, n+32)
	for len(b) < n {
		b = append(b, words[r.below(len(words))]...)
		switch r.below(16) {
		case 0:
			b = append(b, ".\n"...)
		case 1:
			b = append(b, ", "...)
		default:
			b = append(b, ' ')
		}
	}
	return b[:n]
}

func jsonRows(n int, seed uint64) []byte {
	r := rng{seed}
	b := make([]byte, 0, n+200)
	for i := 0; len(b) < n; i++ {
		name := words[r.below(len(words))]
		score := r.below(100000)
		active := r.below(2) == 1
		t1 := words[r.below(len(words))]
		t2 := words[r.below(len(words))]
		b = append(b, fmt.Sprintf(`{"id":%d,"name":"%s","score":%d,"active":%t,"tags":["%s","%s"]}`+"\n",
			i, name, score, active, t1, t2)...)
	}
	return b[:n]
}

func random(n int, seed uint64) []byte {
	r := rng{seed}
	b := make([]byte, 0, n+8)
	for len(b) < n {
		b = binary.LittleEndian.AppendUint64(b, r.next())
	}
	return b[:n]
}

func repetitive(n int, seed uint64) []byte {
	r := rng{seed}
	pattern := []byte("ouk-delta-chunk|")
	b := make([]byte, 0, n+20000)
	for len(b) < n {
		switch r.below(4) {
		case 0:
			b = append(b, make([]byte, r.below(4000)+1)...)
		case 1:
			b = append(b, bytes.Repeat(pattern, r.below(200)+1)...)
		case 2:
			c := byte(r.below(256))
			b = append(b, bytes.Repeat([]byte{c}, r.below(1000)+1)...)
		default:
			p := append([]byte(nil), pattern...)
			i := r.below(len(p))
			p[i] = byte(r.below(256))
			b = append(b, p...)
		}
	}
	return b[:n]
}

// mix concatenates pieces of every kind and copies of earlier pieces (far matches).
func mix(n int, seed uint64) []byte {
	r := rng{seed}
	b := make([]byte, 0, n+30000)
	for len(b) < n {
		switch r.below(5) {
		case 0:
			m := r.below(20000) + 100
			b = append(b, text(m, r.next())...)
		case 1:
			m := r.below(20000) + 100
			b = append(b, jsonRows(m, r.next())...)
		case 2:
			m := r.below(3000) + 50
			b = append(b, random(m, r.next())...)
		case 3:
			m := r.below(8000) + 10
			b = append(b, repetitive(m, r.next())...)
		default:
			if len(b) == 0 {
				continue
			}
			start := r.below(len(b))
			m := r.below(2000) + 1
			end := start + m
			if end > len(b) {
				end = len(b)
			}
			b = append(b, b[start:end]...)
		}
	}
	return b[:n]
}

// tarball is a tar of mixed files; its gzip (Go level 9) is checked in as tar.gz.
func tarball() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	add := func(name string, typ byte, body []byte, link string) {
		h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(body)),
			ModTime: mtime, Uname: "ouk", Gname: "ouk", Linkname: link, Format: tar.FormatPAX}
		if typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := tw.Write(body); err != nil {
			panic(err)
		}
	}
	add("etc/", tar.TypeDir, nil, "")
	add("etc/README", tar.TypeReg, text(3000, 21), "")
	add("etc/data.json", tar.TypeReg, jsonRows(20000, 22), "")
	add("usr/lib/blob.bin", tar.TypeReg, random(10000, 23), "")
	add("usr/lib/zeros.img", tar.TypeReg, make([]byte, 30000), "")
	add("usr/lib/empty", tar.TypeReg, nil, "")
	add("usr/lib/link", tar.TypeSymlink, nil, "blob.bin")
	add("usr/share/doc/notes.txt", tar.TypeReg, text(40000, 24), "")
	add("usr/share/doc/mixed.bin", tar.TypeReg, mix(25000, 25), "")
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

type input struct {
	name, kind string
	size       int
	seed       uint64
	big        bool // digest only
}

func (in input) data(tarData []byte) []byte {
	switch in.kind {
	case "text":
		return text(in.size, in.seed)
	case "json":
		return jsonRows(in.size, in.seed)
	case "random":
		return random(in.size, in.seed)
	case "repetitive":
		return repetitive(in.size, in.seed)
	case "mix":
		return mix(in.size, in.seed)
	case "zeros":
		return make([]byte, in.size)
	case "tar":
		return tarData
	}
	panic("unknown kind " + in.kind)
}

func inputs(long bool) []input {
	in := []input{
		{"empty", "zeros", 0, 0, false},
		{"one", "text", 1, 1, false},
		{"text-16", "text", 16, 2, false},
		{"text-17", "text", 17, 2, false},
		{"text-127", "text", 127, 2, false},
		{"text-128", "text", 128, 2, false},
		{"text-300", "text", 300, 2, false},
		{"text", "text", 48000, 3, false},
		{"json", "json", 48000, 4, false},
		{"random", "random", 20000, 5, false},
		{"repetitive", "repetitive", 100000, 6, false},
		{"zeros", "zeros", 70000, 0, false},
		{"tar", "tar", 0, 0, false},
		{"mix-65535", "mix", 65535, 7, false},
		{"mix-65536", "mix", 65536, 7, false},
		{"mix-65537", "mix", 65537, 7, false},
		{"mix-3m", "mix", 3 << 20, 8, true},
	}
	if long {
		in = append(in,
			input{"mix-40m", "mix", 40 << 20, 9, true},
			input{"random-5m", "random", 5 << 20, 10, true},
			input{"repetitive-20m", "repetitive", 20 << 20, 11, true},
		)
	}
	return in
}

var levels = []int{-2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

// compress writes data with Write calls of at most chunk bytes (0: one Write), calling
// Flush after every flushEvery bytes when flushEvery > 0.
func compress(data []byte, level, chunk, flushEvery int) []byte {
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, level)
	if err != nil {
		panic(err)
	}
	write := func(p []byte) {
		for len(p) > 0 {
			n := len(p)
			if chunk > 0 && n > chunk {
				n = chunk
			}
			if _, err := w.Write(p[:n]); err != nil {
				panic(err)
			}
			p = p[n:]
		}
	}
	if flushEvery > 0 {
		for len(data) > 0 {
			n := flushEvery
			if n > len(data) {
				n = len(data)
			}
			write(data[:n])
			if err := w.Flush(); err != nil {
				panic(err)
			}
			data = data[n:]
		}
	} else {
		write(data)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
}

func gzipped(data []byte, level int) []byte {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, level)
	if err != nil {
		panic(err)
	}
	if _, err := w.Write(data); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
}

func levelName(l int) string {
	if l < 0 {
		return fmt.Sprintf("m%d", -l)
	}
	return fmt.Sprint(l)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	outDir := flag.String("out", ".", "directory to write the fixtures to")
	long := flag.Bool("long", false, "add the large inputs and write every stream out")
	bench := flag.Bool("bench", false, "time Go's encoder instead")
	flag.Parse()

	// Go 1.27 replaced the encoder (golang/go#75532); the port follows Go 1.7..1.26.
	var minor int
	if _, err := fmt.Sscanf(runtime.Version(), "go1.%d", &minor); err != nil || minor < 7 || minor > 26 {
		fmt.Fprintf(os.Stderr, "gen.go needs Go 1.7 to 1.26 (this is %s): Go 1.27 replaced the "+
			"compress/flate encoder the port follows; point GO at an older toolchain\n", runtime.Version())
		os.Exit(2)
	}
	if *bench {
		runBench()
		return
	}
	tarData := tarball()
	must(os.MkdirAll(filepath.Join(*outDir, "out"), 0o755))
	must(os.WriteFile(filepath.Join(*outDir, "tar.gz"), gzipped(tarData, 9), 0o644))

	var manifest strings.Builder
	manifest.WriteString("# name\tkind\tsize\tseed\tlevel\twrites\tlength\tsha256\tfile (written by gen.go with " +
		runtime.Version() + ")\n")
	emit := func(in input, level int, mode string, stream []byte) {
		sum := sha256.Sum256(stream)
		file := "-"
		if !in.big || *long {
			file = fmt.Sprintf("out/%s.%s.%s.deflate", in.name, levelName(level), strings.ReplaceAll(mode, ":", ""))
			must(os.WriteFile(filepath.Join(*outDir, file), stream, 0o644))
		}
		fmt.Fprintf(&manifest, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%s\t%s\n", in.name, in.kind, in.size, in.seed,
			level, mode, len(stream), hex.EncodeToString(sum[:]), file)
	}
	for _, in := range inputs(*long) {
		data := in.data(tarData)
		for _, level := range levels {
			stream := compress(data, level, 0, 0)
			// Go's output must not depend on the Write sizes (the Rust streaming API
			// promises the same).
			chunks := []int{7, 4096, 65535, 65536, 65537, 100003}
			if len(data) <= 70000 {
				chunks = append(chunks, 1)
			}
			for _, chunk := range chunks {
				if !bytes.Equal(compress(data, level, chunk, 0), stream) {
					panic(fmt.Sprintf("%s level %d: output depends on the write size %d", in.name, level, chunk))
				}
			}
			if other := compress(data, flate.DefaultCompression, 0, 0); level == 6 && !bytes.Equal(other, stream) {
				panic("DefaultCompression is not level 6")
			}
			emit(in, level, "all", stream)
		}
	}
	if *long {
		// Past 2 GiB level 1 rebases its int32 offsets (deflatefast.go shiftOffsets): a
		// 3 MiB mix input repeated, streamed through Go into a digest.
		const size = 2300 << 20
		n, sum := cycleStream(size, 8, 1)
		fmt.Fprintf(&manifest, "cycle-2300m\tcycle\t%d\t8\t1\tall\t%d\t%s\t-\n", size, n, hex.EncodeToString(sum))
	}
	// Flush points change the blocks; these check the port's flush.
	for _, name := range []string{"text", "mix-65537"} {
		for _, in := range inputs(false) {
			if in.name != name {
				continue
			}
			data := in.data(tarData)
			for _, level := range levels {
				emit(in, level, "flush:10000", compress(data, level, 0, 10000))
			}
		}
	}
	must(os.WriteFile(filepath.Join(*outDir, "manifest.tsv"), []byte(manifest.String()), 0o644))

	// Whole gzip members with Go's default header, for the port's gzip framing.
	text := text(48000, 3)
	for _, level := range []int{-1, 1, 9} {
		name := fmt.Sprintf("out/text.%s.gz", levelName(level))
		must(os.WriteFile(filepath.Join(*outDir, name), gzipped(text, level), 0o644))
	}
}

type countWriter struct {
	w io.Writer
	n int
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return c.w.Write(p)
}

// cycleStream compresses size bytes of mix(3 MiB, seed) repeated, returning the stream's
// length and SHA-256 without keeping it.
func cycleStream(size int, seed uint64, level int) (int, []byte) {
	base := mix(3<<20, seed)
	h := sha256.New()
	cw := &countWriter{w: h}
	w, err := flate.NewWriter(cw, level)
	must(err)
	for left := size; left > 0; {
		n := len(base)
		if n > left {
			n = left
		}
		_, err := w.Write(base[:n])
		must(err)
		left -= n
	}
	must(w.Close())
	return cw.n, h.Sum(nil)
}

func runBench() {
	data := mix(3<<20, 8)
	txt := text(3<<20, 3)
	for _, c := range []struct {
		name string
		data []byte
	}{{"mix-3m", data}, {"text-3m", txt}} {
		for _, level := range []int{1, 6, 9} {
			const rounds = 5
			start := time.Now()
			for i := 0; i < rounds; i++ {
				w, _ := flate.NewWriter(io.Discard, level)
				w.Write(c.data)
				w.Close()
			}
			secs := time.Since(start).Seconds()
			fmt.Printf("go %s %s level %d: %.1f MB/s\n", runtime.Version(), c.name, level,
				float64(len(c.data)*rounds)/secs/1e6)
		}
	}
}
