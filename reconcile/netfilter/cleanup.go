package netfilter

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// cleanupTables are the tables Cleanup searches for owned chains.
var cleanupTables = []string{"filter", "mangle", "nat", "raw"}

// CleanupResult lists what Cleanup removed.
type CleanupResult struct {
	Chains []string // "table/chain", sorted
	Jumps  []string // "table/CHAIN rule" of each jump deleted from a built-in chain
}

// Cleanup removes every chain whose name starts with OwnedPrefix and every rule
// in a built-in chain that jumps or goes to one, and nothing else: per table,
// one restore transaction deletes those jumps, flushes all owned chains and
// then deletes them (flushing all before deleting any, so owned chains that
// reference each other can go in any order). It works from what the
// kernel holds, not from any Syncer state, so it also removes what an earlier
// run left behind.
func Cleanup(ctx context.Context, nf Netfilter) (CleanupResult, error) {
	var res CleanupResult
	for _, table := range cleanupTables {
		live, err := readTable(ctx, nf, table)
		if err != nil {
			return res, fmt.Errorf("cleanup of table %s: %w", table, err)
		}
		x := &txn{table: table}
		for chain, rule := range live.ownedJumps(table) {
			x.unjump = append(x.unjump, chain+" "+rule)
		}
		for _, c := range live.Chains {
			if strings.HasPrefix(c, OwnedPrefix) {
				x.del = append(x.del, c)
			}
		}
		sort.Strings(x.del)
		x.declare = x.del
		if _, err := restore(ctx, nf, []*txn{x}); err != nil {
			return res, fmt.Errorf("cleanup of table %s: %w", table, err)
		}
		for _, j := range x.unjump {
			res.Jumps = append(res.Jumps, table+"/"+j)
		}
		for _, c := range x.del {
			res.Chains = append(res.Chains, table+"/"+c)
		}
	}
	return res, nil
}
