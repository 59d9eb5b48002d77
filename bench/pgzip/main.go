// pgzip compresses stdin to stdout the way LinuxKit compresses an initrd: with
// github.com/klauspost/pgzip at its default level. bench/build.py uses it (when Go and
// Debian's golang-github-klauspost-pgzip-dev are installed) to compare initrd sizes and
// times with LinuxKit's own compressor on the same bytes.
package main

import (
	"bufio"
	"io"
	"os"

	"github.com/klauspost/pgzip"
)

func main() {
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	zw := pgzip.NewWriter(out)
	if _, err := io.Copy(zw, bufio.NewReaderSize(os.Stdin, 1<<20)); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	if err := out.Flush(); err != nil {
		panic(err)
	}
}
