package spec

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Where a YAML syntax error is, and text that YAML cannot hold at all.

// yamlLineRE finds the line in a yaml.v3 syntax error.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are yaml.v3's parser (as opposed to scanner) errors. It
// reports their line zero-based (the line where the enclosing collection
// starts, or of the unexpected token), where scanner errors are one-based.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
}

// syntaxErrorPos extracts the line and message of a yaml.v3 syntax error in
// data, using line def when the error has none.
func syntaxErrorPos(err error, def int, data []byte) (int, string) {
	// A problem found at the end of the input is on the last line.
	last := countLines(data)
	line, msg := def, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	}
	return max(1, min(line, last)), msg
}

// countLines counts the lines of data as YAML does: "\r\n", "\r", "\n",
// NEL, LS and PS each end one, and an unterminated last line counts too.
func countLines(data []byte) int {
	n := 0
	last := rune('\n')
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		i += size
		switch r {
		case '\n':
			if last != '\r' {
				n++
			}
		case '\r', 0x85, 0x2028, 0x2029:
			n++
		}
		last = r
	}
	if len(data) > 0 && last != '\n' && last != '\r' && last != 0x85 && last != 0x2028 && last != 0x2029 {
		n++
	}
	return n
}

// badRune returns the line and value of the first byte sequence that is not
// printable UTF-8 as YAML defines it, which yaml.v3 would reject without a line.
func badRune(data []byte) (line int, r rune, ok bool) {
	line = 1
	prev := rune(0)
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, rune(data[i]), false
		case r == '\n':
			if prev != '\r' {
				line++
			}
		case r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			line++
		case r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0 && r != 0x85),
			r >= 0xd800 && r <= 0xdfff, r == 0xfffe, r == 0xffff:
			return line, r, false
		}
		prev = r
		i += size
	}
	return line, 0, true
}

// lastLine is the largest line in the tree under n, not following aliases.
func lastLine(n *yaml.Node) int {
	max := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Line > max {
			max = n.Line
		}
		stack = append(stack, n.Content...)
	}
	return max
}
