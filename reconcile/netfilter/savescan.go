package netfilter

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"unsafe"
)

// streamSaver is a Netfilter that hands out iptables-save output as it is
// printed (IPTables), so that a table of any size is read in the memory of
// its largest chain rather than of its whole text.
type streamSaver interface {
	SaveTo(ctx context.Context, table string, read func(io.Reader) error) error
}

// scanSave reads one table of nf's iptables-save output: decl is called for
// each chain declared, in the order printed, and rules for each chain with
// its rules, once, in the order printed; then for each chain declared
// without rules, with none. rules' argument is valid only during the call.
// Rules of one chain are contiguous in iptables-save output; scanSave fails
// when they are not.
func scanSave(ctx context.Context, nf Netfilter, table string, decl func(chain string), rules func(chain string, r *savedRules) error) error {
	sc := &saveScan{decl: decl, rules: rules, seen: map[string]bool{}}
	read := func(r io.Reader) error { return sc.read(r) }
	if ss, ok := nf.(streamSaver); ok {
		if err := ss.SaveTo(ctx, table, read); err != nil {
			return err
		}
	} else {
		text, err := nf.Save(ctx, table)
		if err != nil {
			return err
		}
		if err := read(bytes.NewReader(text)); err != nil {
			return err
		}
	}
	return sc.finish()
}

// savedRules are the rules of one chain as iptables-save printed them.
type savedRules struct {
	text  []byte   // every rule followed by "\n", back to back
	ends  []int    // the end in text of each rule, before its "\n"
	views []string // see strings
}

// hash is the chain's hash as hashRules computes it of its rules.
func (r *savedRules) hash() [32]byte { return sha256.Sum256(r.text) }

// strings returns the rules as strings that share r's memory: valid only
// until the scan moves on, so they must not be kept.
func (r *savedRules) strings() []string {
	r.views = r.views[:0]
	start := 0
	for _, end := range r.ends {
		r.views = append(r.views, unsafe.String(unsafe.SliceData(r.text[start:]), end-start))
		start = end + 1
	}
	return r.views
}

// copies returns the rules as strings of their own, to keep.
func (r *savedRules) copies() []string {
	out := make([]string, 0, len(r.ends))
	for _, v := range r.strings() {
		out = append(out, strings.Clone(v))
	}
	return out
}

// saveScan is the state of one scanSave.
type saveScan struct {
	decl     func(string)
	rules    func(string, *savedRules) error
	declared []string
	seen     map[string]bool // chains whose rules were handed out
	cur      string
	buf      savedRules
	done     bool // COMMIT read: the rest is another table
}

// read reads lines until the end of the first table.
func (sc *saveScan) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for !sc.done {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			continue
		}
		if len(long) > 0 {
			line, long = append(long, line...), long[:0]
		}
		if len(line) > 0 {
			if lerr := sc.line(bytes.TrimSuffix(line, []byte("\n"))); lerr != nil {
				return lerr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading iptables-save output: %w", err)
		}
	}
	_, err := io.Copy(io.Discard, br) // let the command finish writing
	return err
}

// line takes one line of output.
func (sc *saveScan) line(line []byte) error {
	switch {
	case len(line) == 0 || line[0] == '#' || line[0] == '*':
	case line[0] == ':':
		name, _, _ := bytes.Cut(line[1:], []byte(" "))
		n := string(name)
		sc.declared = append(sc.declared, n)
		sc.decl(n)
	case bytes.HasPrefix(line, []byte("-A ")):
		name, rule, _ := bytes.Cut(line[3:], []byte(" "))
		if string(name) != sc.cur {
			if err := sc.flush(); err != nil {
				return err
			}
			if sc.seen[string(name)] {
				return fmt.Errorf("reading iptables-save output: rules of chain %s not contiguous", name)
			}
			sc.cur = string(name)
		}
		sc.buf.text = append(sc.buf.text, rule...)
		sc.buf.ends = append(sc.buf.ends, len(sc.buf.text))
		sc.buf.text = append(sc.buf.text, '\n')
	case bytes.Equal(line, []byte("COMMIT")):
		sc.done = true
		return sc.flush()
	}
	return nil
}

// flush hands out the rules of the current chain.
func (sc *saveScan) flush() error {
	if sc.cur == "" {
		return nil
	}
	name := sc.cur
	sc.seen[name], sc.cur = true, ""
	err := sc.rules(name, &sc.buf)
	sc.buf.text, sc.buf.ends = sc.buf.text[:0], sc.buf.ends[:0]
	return err
}

// finish hands out the chains declared without rules.
func (sc *saveScan) finish() error {
	if err := sc.flush(); err != nil {
		return err
	}
	for _, c := range sc.declared {
		if !sc.seen[c] {
			sc.seen[c] = true
			if err := sc.rules(c, &sc.buf); err != nil {
				return err
			}
		}
	}
	return nil
}
