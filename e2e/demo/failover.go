package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"weir/agent"
	"weir/e2e/lab"
	"weir/internal/testsupport"
	"weir/reconcile/plan"
)

// The failover part of the demo: a health check is committed, one target's
// server stops while its agent keeps running, the setting host leaves it
// out, and takes it back once it starts again.

// addHealthCheck pushes a health check for frontend-orders and waits until
// every agent converged on it.
func (d *demo) addHealthCheck(ctx context.Context) error {
	changed, err := withHealthCheck(d.files)
	if err != nil {
		return err
	}
	if d.commit, err = d.lab.Git.PushFiles(ctx, "frontend-orders: tcp health check every second", changed); err != nil {
		return err
	}
	d.files = changed
	if _, _, err := d.weir.API(ctx, d.lab.Hosts[1], http.MethodPost, "/refresh"); err != nil {
		fmt.Fprintf(d.out, "(POST /refresh failed, waiting for the poll: %v)\n", err)
	}
	d.step("git push: frontend-orders gets a health check (commit %.12s): each target's own host connects to it on 8080 every second\n%s", d.commit, strings.TrimRight(healthCheck, "\n"))
	if _, err := d.weir.WaitConverged(ctx, 40*time.Second, d.lab.Hosts, d.commit, lab.Names(d.lab.Hosts)); err != nil {
		return fmt.Errorf("agents did not converge on the health check: %w", err)
	}
	return nil
}

// failover stops orders-2's server (not its host's agent), waits until
// host-a's agent reports it unhealthy, and shows the split and the
// balancer's view.
func (d *demo) failover(ctx context.Context) error {
	d.step("orders-2's server stops (the agent on host-c keeps running and its check fails)")
	if err := d.servers["orders-2"].Kill(); err != nil {
		return err
	}
	stopped := time.Now()
	if err := d.waitState(ctx, "orders-2", plan.Unhealthy); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "host-a left orders-2 out %v after its server stopped (2 failed checks, then gossip)\n", time.Since(stopped).Round(100*time.Millisecond))
	d.step("100 connections: all of them to orders-1, none failing")
	if err := chart(ctx, d.out, d.lab, d.web); err != nil {
		return err
	}
	d.step("weir status --balancer frontend-orders (on host-a)")
	table, _, err := d.weir.Run(ctx, d.lab.Hosts[0], "status", "--api", lab.APIAddr, "--balancer", "frontend-orders")
	if err != nil {
		return err
	}
	fmt.Fprint(d.out, table)
	return nil
}

// recover starts orders-2's server again and shows traffic coming back.
func (d *demo) recover(ctx context.Context) error {
	d.step("orders-2's server starts again")
	if err := d.servers["orders-2"].Restart(); err != nil {
		return err
	}
	started := time.Now()
	if err := d.waitState(ctx, "orders-2", plan.Healthy); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "orders-2 back in host-a's rules %v after its server started (2 passed checks)\n", time.Since(started).Round(100*time.Millisecond))
	d.step("100 connections: orders-1 about 25, orders-2 about 75 again")
	return chart(ctx, d.out, d.lab, d.web)
}

// waitState waits until host-a's agent reports guest in state in
// frontend-orders.
func (d *demo) waitState(ctx context.Context, guest string, state plan.TargetState) error {
	return testsupport.Eventually(ctx, 30*time.Second, 100*time.Millisecond, func() error {
		code, body, err := d.weir.API(ctx, d.lab.Hosts[0], http.MethodGet, "/balancers/frontend-orders")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /balancers/frontend-orders = %d %s, %v", code, body, err)
		}
		var st agent.BalancerStatus
		if err := json.Unmarshal(body, &st); err != nil {
			return err
		}
		for _, t := range st.Targets {
			if t.Guest == guest && t.State == state {
				return nil
			}
		}
		return fmt.Errorf("%s is not %s on host-a", guest, state)
	})
}
