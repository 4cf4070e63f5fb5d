package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"

	"weir/examples"
)

// specFiles returns examples/basic as the binary embeds it, so the demo runs
// the same files the README points newcomers to, from any directory.
func specFiles() (map[string]string, string, error) {
	files := map[string]string{}
	err := fs.WalkDir(examples.FS, "basic", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(examples.FS, path)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(path, "basic/")] = string(b)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("reading the embedded examples/basic: %w", err)
	}
	return files, "examples/basic", nil
}

// withWeight returns files with the balancer frontend-orders giving guest a
// weight of w: an existing "guest: N" line under weights is rewritten, else a
// weights block is added at the end of that balancer's document.
func withWeight(files map[string]string, guest string, w int) (map[string]string, error) {
	out := maps.Clone(files)
	existing := regexp.MustCompile(`(?m)^([ \t]+)` + regexp.QuoteMeta(guest) + `:[ \t]*\d+[ \t]*$`)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		docs := strings.Split(files[name], "\n---")
		for i, doc := range docs {
			if !strings.Contains(doc, "kind: Balancer") || !strings.Contains(doc, "name: frontend-orders") {
				continue
			}
			if existing.MatchString(doc) {
				docs[i] = existing.ReplaceAllString(doc, fmt.Sprintf("${1}%s: %d", guest, w))
			} else if strings.Contains(doc, "\n  weights:") {
				docs[i] = strings.Replace(doc, "\n  weights:", fmt.Sprintf("\n  weights:\n    %s: %d", guest, w), 1)
			} else {
				docs[i] = strings.TrimRight(doc, "\n") + fmt.Sprintf("\n  weights:\n    %s: %d\n", guest, w)
			}
			out[name] = strings.Join(docs, "\n---")
			return out, nil
		}
	}
	return nil, errors.New("no Balancer frontend-orders in the specs")
}
