package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"weir/cluster"
)

// keysOptions are the flags and arguments of `weir keys`.
type keysOptions struct {
	client apiClient
	output *enum
	op     cluster.KeyOp
	key    string // base64
}

func (c *cli) newKeysCmd() *cobra.Command {
	var o keysOptions
	cmd := &cobra.Command{
		Use:   "keys (list | install KEY | use KEY | remove KEY)",
		Short: "list, install, use or remove gossip keys over the running cluster",
		Long: "Rotates the gossip key over the running cluster through the local agent's API (README.md):\n" +
			"install a new key everywhere, use it, then remove the old one. KEY is base64 as\n" +
			"`weir keygen` prints it, or @FILE for the first key of a key file. Exit 0 when every\n" +
			"member succeeded, 1 when one failed or the agent refused the operation, 2 for bad\n" +
			"arguments or no answer.",
		Example:   "  weir keys list\n  weir keys install \"$(weir keygen)\"\n  weir keys use @new.key",
		ValidArgs: []string{"list", "install", "use", "remove"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.setOp(args); err != nil {
				return err
			}
			return c.keys(o)
		},
	}
	o.client.flags(cmd, 30*time.Second, "how long to wait for the agent's answer")
	o.output = outputFlag(cmd, "table", "json")
	return cmd
}

// keys is `weir keys`: exit 0 when every member succeeded, 1 when one
// failed or the agent refused the operation, 2 for no answer.
func (c *cli) keys(o keysOptions) error {
	if err := o.client.readToken(); err != nil {
		return failed(exitUsage, err)
	}
	rep, err := requestKeyOp(c.ctx, o)
	if err != nil {
		if errors.Is(err, errRefused) {
			return failed(exitFail, err)
		}
		return failed(exitUsage, err)
	}
	if err := printKeyReport(c.stdout, o.output.value, rep); err != nil {
		return failed(exitUsage, err)
	}
	if n := rep.Failed(); n > 0 {
		fmt.Fprintf(c.stderr, "weir keys: %s of %d failed; run the operation again once they are back\n", plural(n, "member"), len(rep.Members))
		return exit(exitFail)
	}
	return nil
}

// setOp takes the operation and its KEY from the positional arguments.
func (o *keysOptions) setOp(args []string) error {
	if len(args) == 0 {
		return usageErr("name an operation: list, install, use or remove")
	}
	o.op = cluster.KeyOp(args[0])
	if err := o.setKey(args[1:]); err != nil {
		return usageErr("%w", err)
	}
	return nil
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
	method, path, body := http.MethodGet, "/keys", []byte(nil)
	if o.op != cluster.KeyList {
		method, path = http.MethodPost, "/keys/"+string(o.op)
		body, _ = json.Marshal(map[string]string{"key": o.key})
	}
	b, _, err := o.client.do(ctx, method, path, body, 1<<20)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("reading the agent's answer: %w", err)
	}
	return rep, nil
}

// printKeyReport prints the report as JSON or as a table: the keys with how
// many members hold them (list), or the outcome, then every failed member.
func printKeyReport(w io.Writer, output string, rep cluster.KeyReport) error {
	if output == "json" {
		return writeJSON(w, rep)
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
