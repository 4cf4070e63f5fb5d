package spec

import (
	"cmp"
	"slices"
	"strings"
)

// Error is one problem found in a spec tree, at the line of the key or value
// it is about. Problems that concern a whole file (too large, unreadable, a
// symlink leaving the tree, one file too many) are positioned at line 1 of
// that file, so that editors and `FILE:LINE` tooling still jump to it.
type Error struct {
	Pos
	Msg string
}

// Error renders the problem as FILE:LINE: message.
func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem found while loading a spec tree, sorted by file
// and then line. Load returns it as its error whenever the tree is invalid;
// callers that need the individual problems use errors.As.
type ErrorList []Error

// Error renders one FILE:LINE: message line per problem.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sort orders the list by file, then line; problems on the same line keep
// the order in which they were found, which is itself deterministic.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b Error) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
}
