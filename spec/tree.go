package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// What belongs to a spec tree is decided here, once, for the loader and for
// everything that copies or watches a tree on its behalf (the agent's sources
// and its last-good copy), so that they can never disagree about a file. The
// rules are the ones README.md states under "Spec reference".

// maxSymlinkHops bounds symlink resolution, like the kernel's ELOOP limit.
const maxSymlinkHops = 40

// IsSpecFile reports whether name, a base name or a slash-separated path, is
// a spec file by its extension: ".yaml" or ".yml", in lower case exactly
// ("hosts.YAML" is not one). Hidden names are a separate matter: see IsHidden.
func IsSpecFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// IsHidden reports whether one path element is hidden: its name starts with
// ".". A spec tree skips hidden files and never enters hidden directories, so
// that .git, a CI configuration (.gitlab-ci.yml) and the swap, backup and lock
// files editors keep beside the file being edited (.x.yaml.swp, and emacs'
// .#x.yaml, a dangling symlink) never take part. "." and ".." are not hidden:
// they name directories, not entries.
func IsHidden(elem string) bool {
	return strings.HasPrefix(elem, ".") && elem != "." && elem != ".."
}

// IsHiddenPath reports whether any element of the slash-separated path p is
// hidden, for walks that list whole paths instead of pruning directories.
func IsHiddenPath(p string) bool {
	for e := range strings.SplitSeq(p, "/") {
		if IsHidden(e) {
			return true
		}
	}
	return false
}

// LinkReader is what ResolveInside needs of a tree. Every fs.ReadLinkFS is
// one; Lstat must not follow a final symlink.
type LinkReader interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadLink(name string) (string, error)
}

// ResolveInside follows the symlink name, and every symlink met on the way,
// component by component as the kernel does, and returns the slash-separated
// path inside fsys it finally names (a path without symlinks; name itself
// when there are none). It fails when any step leaves the root (an absolute
// target, "/" or `\`, or ".." above the root, even to come back), when a
// link is dangling, or after 40 links. Its messages name the first target,
// as a spec error about the link does.
func ResolveInside(fsys LinkReader, name string) (string, error) {
	r := resolver{fsys: fsys, todo: strings.Split(name, "/")}
	for len(r.todo) > 0 {
		c := r.todo[0]
		r.todo = r.todo[1:]
		if err := r.step(c); err != nil {
			return "", err
		}
	}
	if len(r.done) == 0 {
		return ".", nil
	}
	return path.Join(r.done...), nil
}

// resolver is the state of one ResolveInside.
type resolver struct {
	fsys  LinkReader
	done  []string // resolved components, none a symlink
	todo  []string // components still to resolve
	first string   // the target of the name itself, for messages
	hops  int
}

// step resolves the next component c.
func (r *resolver) step(c string) error {
	switch c {
	case "", ".":
		return nil
	case "..":
		if len(r.done) == 0 {
			return r.leaves()
		}
		r.done = r.done[:len(r.done)-1]
		return nil
	}
	p := path.Join(append(slices.Clone(r.done), c)...)
	info, err := r.fsys.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dangling symlink to %s: %s does not exist", r.first, p)
	}
	if err != nil {
		return fmt.Errorf("cannot resolve symlink: %s", ioText(err))
	}
	if info.Mode()&fs.ModeSymlink == 0 {
		r.done = append(r.done, c)
		return nil
	}
	return r.follow(p)
}

// follow puts the target of the symlink p in front of what is left to resolve.
func (r *resolver) follow(p string) error {
	if r.hops++; r.hops > maxSymlinkHops {
		return fmt.Errorf("symlink to %s: too many levels of symlinks", r.first)
	}
	target, err := r.fsys.ReadLink(p)
	if err != nil {
		return fmt.Errorf("cannot read symlink: %s", ioText(err))
	}
	if r.first == "" {
		r.first = target
	}
	if strings.HasPrefix(target, "/") || strings.HasPrefix(target, `\`) {
		return r.leaves()
	}
	r.todo = append(strings.Split(target, "/"), r.todo...)
	return nil
}

func (r *resolver) leaves() error {
	return fmt.Errorf("symlink to %s leaves the spec tree", r.first)
}

// ioText is the cause of an fs error without the operation and path, which
// the FILE: prefix already gives.
func ioText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
