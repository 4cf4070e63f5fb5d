package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"weir/agent"
	"weir/cluster"
)

// keysOptions are the flags and arguments of `weir keys`.
type keysOptions struct {
	api, output, tokenFile string
	timeout                time.Duration
	op                     cluster.KeyOp
	key                    string // base64
	token                  []byte
}

// errRefused marks an operation the agent refused (HTTP 409): the answer is no.
var errRefused = errors.New("refused")

// runKeys is `weir keys list|install|use|remove`: gossip key rotation over
// the running cluster, through the local agent's API (loopback only). Exit 0
// when every member succeeded, 1 when one failed or the agent refused the
// operation, 2 for bad arguments or no answer.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := keysArgs(args, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "weir keys:", err)
		return exitUsage
	}
	rep, err := requestKeyOp(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "weir keys:", err)
		if errors.Is(err, errRefused) {
			return exitFail
		}
		return exitUsage
	}
	if err := printKeyReport(stdout, o.output, rep); err != nil {
		fmt.Fprintln(stderr, "weir keys:", err)
		return exitUsage
	}
	if n := rep.Failed(); n > 0 {
		fmt.Fprintf(stderr, "weir keys: %s of %d failed; run the operation again once they are back\n", plural(n, "member"), len(rep.Members))
		return exitFail
	}
	return exitOK
}

var errHelp = errors.New("help")

// keysArgs parses `weir keys [flags] OP [KEY] [flags]`: KEY is a base64 key
// as `weir keygen` prints it, or @FILE for a key file (its first key).
func keysArgs(args []string, stderr io.Writer) (keysOptions, error) {
	var o keysOptions
	fs := newFlagSet("keys", stderr)
	fs.StringVar(&o.api, "api", "127.0.0.1:7947", "the local agent's HTTP API address")
	fs.StringVar(&o.tokenFile, "api-token-file", "", "file holding the agent's API token (its --api-token-file)")
	fs.StringVar(&o.output, "o", "table", "output: table or json")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the agent's answer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weir keys [--api ADDR] [--api-token-file FILE] [-o table|json] list\n"+
			"       weir keys [--api ADDR] [--api-token-file FILE] install|use|remove KEY|@FILE\n\n"+
			"Rotates the gossip key over the running cluster (README.md): install a new key\n"+
			"everywhere, use it, then remove the old one. KEY is base64 as `weir keygen` prints it.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, flagErr(err)
	}
	if fs.NArg() == 0 {
		return o, errors.New("name an operation: list, install, use or remove")
	}
	o.op = cluster.KeyOp(fs.Arg(0))
	if err := fs.Parse(fs.Args()[1:]); err != nil { // flags may follow the operation
		return o, flagErr(err)
	}
	if o.output != "table" && o.output != "json" {
		return o, fmt.Errorf("-o %q: want table or json", o.output)
	}
	if o.tokenFile != "" {
		var err error
		if o.token, err = agent.ReadSecretFile("API token", o.tokenFile); err != nil {
			return o, err
		}
	}
	return o, o.setKey(fs.Args())
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	return err
}

// setKey checks the operation's arguments and reads its key.
func (o *keysOptions) setKey(rest []string) error {
	switch {
	case o.op == cluster.KeyList && len(rest) == 0:
		return nil
	case o.op == cluster.KeyList:
		return fmt.Errorf("list takes no argument, not %q", rest)
	case o.op != cluster.KeyInstall && o.op != cluster.KeyUse && o.op != cluster.KeyRemove:
		return fmt.Errorf("unknown operation %q: want list, install, use or remove", o.op)
	case len(rest) != 1:
		return fmt.Errorf("%s takes one KEY (base64, or @FILE)", o.op)
	}
	if name, ok := strings.CutPrefix(rest[0], "@"); ok {
		keys, err := cluster.ReadKeyFile(name)
		if err != nil {
			return err
		}
		o.key = base64.StdEncoding.EncodeToString(keys[0])
		return nil
	}
	keys, err := cluster.ParseKeys([]byte(rest[0]))
	if err != nil {
		return fmt.Errorf("KEY: %w", err)
	}
	o.key = base64.StdEncoding.EncodeToString(keys[0])
	return nil
}

// requestKeyOp asks the agent's API to run the operation.
func requestKeyOp(ctx context.Context, o keysOptions) (cluster.KeyReport, error) {
	var rep cluster.KeyReport
	base := strings.TrimSuffix(statusURL(o.api), "/status")
	method, url, body := http.MethodGet, base+"/keys", []byte(nil)
	if o.op != cluster.KeyList {
		method, url = http.MethodPost, base+"/keys/"+string(o.op)
		body, _ = json.Marshal(map[string]string{"key": o.key})
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return rep, fmt.Errorf("asking the agent at %s: %w", url, err)
	}
	if len(o.token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(o.token))
	}
	resp, err := (&http.Client{Timeout: o.timeout}).Do(req)
	if err != nil {
		return rep, fmt.Errorf("asking the agent (is `weir agent` running with this --api?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("agent answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusConflict {
			err = fmt.Errorf("%w: %w", errRefused, err)
		}
		return rep, err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("reading the agent's answer: %w", err)
	}
	return rep, nil
}

// printKeyReport prints the report as JSON or as a table: the keys with how
// many members hold them (list), or the outcome, then every failed member.
func printKeyReport(w io.Writer, output string, rep cluster.KeyReport) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	var b bytes.Buffer
	n, ok := len(rep.Members), len(rep.Members)-rep.Failed()
	if rep.Op == cluster.KeyList {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tHELD BY\tPRIMARY ON")
		for _, k := range rep.Keys {
			fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\n", k.Fingerprint, k.Members, ok, k.Primary, ok)
		}
		tw.Flush()
		fmt.Fprintf(&b, "%d/%d members answered\n", ok, n)
	} else {
		fmt.Fprintf(&b, "%s key %s: ok on %d/%d members\n", rep.Op, rep.Key, ok, n)
	}
	for _, m := range rep.Members {
		if !m.OK {
			fmt.Fprintf(&b, "%s: %s\n", m.Name, m.Error)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
