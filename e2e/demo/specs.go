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
	existing := regexp.MustCompile(`(?m)^([ \t]+)` + regexp.QuoteMeta(guest) + `:[ \t]*\d+[ \t]*$`)
	return editBalancer(files, func(doc string) string {
		switch {
		case existing.MatchString(doc):
			return existing.ReplaceAllString(doc, fmt.Sprintf("${1}%s: %d", guest, w))
		case strings.Contains(doc, "\n  weights:"):
			return strings.Replace(doc, "\n  weights:", fmt.Sprintf("\n  weights:\n    %s: %d", guest, w), 1)
		}
		return strings.TrimRight(doc, "\n") + fmt.Sprintf("\n  weights:\n    %s: %d\n", guest, w)
	})
}

// healthCheck is the check the demo gives frontend-orders: a TCP connect to
// port 8080 every second, so a stopped server is left out within seconds.
const healthCheck = "  healthCheck:\n    protocol: tcp\n    interval: 1s\n    timeout: 500ms\n"

// withHealthCheck returns files with healthCheck added at the end of the
// balancer frontend-orders.
func withHealthCheck(files map[string]string) (map[string]string, error) {
	return editBalancer(files, func(doc string) string {
		return strings.TrimRight(doc, "\n") + "\n" + healthCheck
	})
}

// editBalancer returns files with the document of the balancer
// frontend-orders replaced by edit(document).
func editBalancer(files map[string]string, edit func(doc string) string) (map[string]string, error) {
	out := maps.Clone(files)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		docs := strings.Split(files[name], "\n---")
		for i, doc := range docs {
			if strings.Contains(doc, "kind: Balancer") && strings.Contains(doc, "name: frontend-orders") {
				docs[i] = edit(doc)
				out[name] = strings.Join(docs, "\n---")
				return out, nil
			}
		}
	}
	return nil, errors.New("no Balancer frontend-orders in the specs")
}
