package agent

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// StateDirMode is the mode of the state directory: it holds the Git clone
// and the last good revision, which only the agent reads.
const StateDirMode fs.FileMode = 0o700

// PrepareStateDir creates the state directory dir with StateDirMode before
// anything is written into it (the clone, the last good revision). An
// existing directory that group or others may enter is tightened to
// StateDirMode, with a warning: weir owns the directory, and what it keeps
// there (the remote's address, the specs) is nobody else's business.
func PrepareStateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, StateDirMode); err != nil {
		return fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking state directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, StateDirMode); err != nil {
		return fmt.Errorf("tightening state directory %s from %s to %s: %w", dir, fi.Mode().Perm(), StateDirMode, err)
	}
	log.Warn("state directory was open to other users; tightened it", "dir", dir, "was", fi.Mode().Perm().String(), "now", StateDirMode.String())
	return nil
}
