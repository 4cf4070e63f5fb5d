package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"weir/internal/testsupport"
)

func weir(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

var subcommands = []string{"validate", "plan", "agent", "status", "diff", "cleanup", "keygen", "keys", "version", "completion"}

// TestHelpAndUsageExitCodes: help exits 0 on stdout for every command; an
// unknown flag or command exits 2 with a pointer to --help; no command at
// all is a usage error too.
func TestHelpAndUsageExitCodes(t *testing.T) {
	for _, cmd := range append([]string{""}, subcommands...) {
		for _, help := range []string{"-h", "--help"} {
			args := strings.Fields(cmd + " " + help)
			code, out, errs := weir(t, args...)
			if code != exitOK || !strings.Contains(out, "Usage:") || errs != "" {
				t.Errorf("weir %s = %d, stdout %.60q, stderr %q; want 0 and the usage on stdout", strings.Join(args, " "), code, out, errs)
			}
		}
		if cmd == "" {
			continue
		}
		code, out, errs := weir(t, cmd, "--no-such-flag")
		if code != exitUsage || out != "" || !strings.Contains(errs, "unknown flag: --no-such-flag") || !strings.Contains(errs, "Run 'weir "+cmd+" --help' for usage.") {
			t.Errorf("weir %s --no-such-flag = %d, %q, %q; want 2 and a pointer to --help", cmd, code, out, errs)
		}
	}
	if code, _, errs := weir(t); code != exitUsage || !strings.Contains(errs, "Available Commands:") {
		t.Errorf("weir = %d, %q; want 2 and the usage on stderr", code, errs)
	}
	if code, _, errs := weir(t, "frobnicate"); code != exitUsage || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("weir frobnicate = %d, %q; want 2", code, errs)
	}
}

// TestTestOnlyFlagsHidden: --netns exists for tests but no help shows it,
// nor the man page generator.
func TestTestOnlyFlagsHidden(t *testing.T) {
	for _, cmd := range []string{"cleanup", "diff"} {
		if _, out, _ := weir(t, cmd, "--help"); strings.Contains(out, "netns") {
			t.Errorf("weir %s --help shows --netns:\n%s", cmd, out)
		}
	}
	if _, out, _ := weir(t, "--help"); strings.Contains(out, "  man ") {
		t.Errorf("weir --help lists the man page generator:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errs := weir(t, args...)
		if code != exitOK || !strings.HasPrefix(out, "weir ") || !strings.Contains(out, "\ngo:        go1.") || !strings.Contains(out, "\nnetfilter: ") {
			t.Errorf("weir %s = %d, %q, %q; want the version, Go version and backend", args[0], code, out, errs)
		}
	}
	code, out, _ := weir(t, "version", "--output", "json")
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.Version == "" || !strings.HasPrefix(v.GoVersion, "go1.") || v.Netfilter == "" || v.Netfilter6 == "" {
		t.Errorf("weir version -o json = %d, %q (%v); want every field", code, out, err)
	}
}

// TestVersionStamp: what `make build` stamps with -X wins over the build
// info, and a worktree build (no VCS stamping) still names its commit.
func TestVersionStamp(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3-4-gabcdef0-dirty", "abcdef0123456789abcdef0123456789abcdef01"
	v := buildVersion()
	if v.Version != version || v.Commit == "" || (v.Commit == commit && !v.Modified) {
		t.Errorf("buildVersion() = %+v; want version %s and a commit (modified when stamped as dirty)", v, version)
	}
	version, commit = "", ""
	if v := buildVersion(); v.Version == "" {
		t.Errorf("buildVersion() without stamps = %+v; want devel or the commit", v)
	}
}

// TestJSONModesAlwaysPrintJSON: with -o json stdout is one JSON object
// even when there is no answer, with the documented exit code.
func TestJSONModesAlwaysPrintJSON(t *testing.T) {
	closed := testsupport.FreeAddr(t)
	missing := filepath.Join(t.TempDir(), "nope")
	bad := planDir(t, map[string]string{"hosts.yaml": basicHosts(t), "balancers.yaml": strings.Replace(planBalancers, "  target: orders\n", "  target: ordrs\n", 1)})
	tests := []struct {
		args []string
		code int
		want string // in the JSON object's error
	}{
		{[]string{"status", "-o", "json", "--api", closed, "--timeout", "1s"}, exitUsage, "is `weir agent` running"},
		{[]string{"status", "--output=json", "--api", closed, "--wait", "600ms"}, exitFail, "is `weir agent` running"},
		{[]string{"keys", "-o", "json", "--api", closed, "list"}, exitUsage, "is `weir agent` running"},
		{[]string{"validate", "-o", "json", missing}, exitUsage, "no such file or directory"},
		{[]string{"plan", "-o", "json", bad, "--node", "host-a"}, exitFail, "invalid specs"},
		{[]string{"plan", "-o", "json", missing, "--node", "host-a"}, exitUsage, "no such file or directory"},
		{[]string{"status", "-o", "json", "--revision", "HEAD"}, exitUsage, `--revision "HEAD"`},
	}
	for _, tt := range tests {
		code, out, errs := weir(t, tt.args...)
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != tt.code || !strings.Contains(got["error"].(string), tt.want) {
			t.Errorf("weir %s = %d, stdout %q (%v), stderr %q; want %d and {\"error\": …%s…}", strings.Join(tt.args, " "), code, out, err, errs, tt.code, tt.want)
		}
	}
	// The environment may ask for JSON too.
	t.Setenv("WEIR_OUTPUT", "json")
	if code, out, _ := weir(t, "status", "--api", closed, "--timeout", "1s"); code != exitUsage || !strings.HasPrefix(out, "{\n  \"error\": ") {
		t.Errorf("WEIR_OUTPUT=json weir status = %d, %q; want the JSON error", code, out)
	}
}

// TestEnvironmentFallback: WEIR_<FLAG> stands for a flag, WEIR_<LETTER> for
// its short form, the long name wins over the letter and the command line
// over both; a bad value names the variable.
func TestEnvironmentFallback(t *testing.T) {
	basic := filepath.Join("..", "..", "examples", "basic")
	t.Setenv("WEIR_O", "json")
	if _, out, _ := weir(t, "validate", basic); !strings.Contains(out, `"valid": true`) {
		t.Errorf("WEIR_O=json: %q; want JSON", out)
	}
	t.Setenv("WEIR_OUTPUT", "text")
	if _, out, _ := weir(t, "validate", basic); !strings.HasPrefix(out, "ok: ") {
		t.Errorf("WEIR_OUTPUT=text beside WEIR_O=json: %q; want text", out)
	}
	if _, out, _ := weir(t, "validate", basic, "-o", "json"); !strings.Contains(out, `"valid": true`) {
		t.Errorf("-o json beside WEIR_OUTPUT=text: %q; want JSON", out)
	}
	t.Setenv("WEIR_OUTPUT", "yaml")
	if code, _, errs := weir(t, "validate", basic); code != exitUsage || !strings.Contains(errs, `invalid value "yaml" for WEIR_OUTPUT`) {
		t.Errorf("WEIR_OUTPUT=yaml = %d, %q; want 2 naming the variable", code, errs)
	}
	t.Setenv("WEIR_VERSION", "1")
	if code, _, _ := weir(t); code != exitUsage {
		t.Errorf("WEIR_VERSION=1 weir = %d; want the usage error, not the version", code)
	}
}

// TestCompletionAndManPages: completion scripts for bash, zsh and fish;
// the hidden man page generator writes a page per command.
func TestCompletionAndManPages(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_weir", "zsh": "#compdef weir", "fish": "complete -c weir"} {
		if code, out, errs := weir(t, "completion", shell); code != exitOK || !strings.Contains(out, want) {
			t.Errorf("weir completion %s = %d (%s); want a script with %q", shell, code, errs, want)
		}
	}
	if code, _, _ := weir(t, "completion", "tcsh"); code != exitUsage {
		t.Errorf("weir completion tcsh = %d; want 2", code)
	}
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if code, _, errs := weir(t, "man", dir); code != exitOK {
		t.Fatalf("weir man = %d: %s", code, errs)
	}
	for _, page := range []string{"weir.1", "weir-agent.1", "weir-diff.1", "weir-plan.1", "weir-status.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !bytes.Contains(b, []byte(`.TH "WEIR" "1" "Nov 2023"`)) {
			t.Errorf("%s: %v; want a man page dated SOURCE_DATE_EPOCH:\n%.200s", page, err, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "weir-man.1")); err == nil {
		t.Errorf("the hidden man command has a man page of its own")
	}
}
