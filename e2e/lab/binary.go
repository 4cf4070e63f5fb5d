package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// WeirBinary returns the weir binary the e2e tests, the bench and the demo
// run: $WEIR_BIN, else bin/weir under the repository root (make builds it
// first), else ./cmd/weir built from root into out.
func WeirBinary(ctx context.Context, root, out string) (string, error) {
	if p := os.Getenv("WEIR_BIN"); p != "" {
		return p, nil
	}
	if p, err := filepath.Abs(filepath.Join(root, "bin", "weir")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/weir")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building weir (run from the repository root, or make build): %w: %s", err, b)
	}
	return out, nil
}
