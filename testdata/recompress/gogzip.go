// gogzip writes the Go-made gzip fixtures of the recompress tests (go-*.gz beside it):
// deterministic text compressed by Go's compress/gzip at several levels. Run it from this
// directory with `go run gogzip.go`; the output is checked in so CI needs no Go.
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
)

func text(n int, seed uint64) []byte {
	words := []string{"fn", "let", "mut", "impl", "struct", "self", "return", "match",
		"Some", "None", "delta", "chunk", "store", "kit", "import", "verify", "{", "}",
		"(", ")", ";", "\n", "    ", "0x1f", "42", "recipe", "plain", "=>"}
	var b bytes.Buffer
	s := seed*6364136223846793005 + 1442695040888963407
	for b.Len() < n {
		s = s*6364136223846793005 + 1442695040888963407
		b.WriteString(words[(s>>33)%uint64(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func main() {
	data := text(60000, 11)
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression, gzip.HuffmanOnly} {
		var out bytes.Buffer
		w, err := gzip.NewWriterLevel(&out, level)
		if err != nil {
			panic(err)
		}
		w.Name = "data.txt"
		if _, err := w.Write(data); err != nil {
			panic(err)
		}
		if err := w.Close(); err != nil {
			panic(err)
		}
		name := fmt.Sprintf("go-level%d.gz", level)
		if err := os.WriteFile(name, out.Bytes(), 0o644); err != nil {
			panic(err)
		}
	}
}
