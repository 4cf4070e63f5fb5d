// Package reconcile turns a validated spec and the set of alive hosts into a
// deterministic plan, renders one host's part of it as iptables-restore text,
// and applies that text to the kernel atomically, owning only WEIR- chains.
package reconcile

import (
	"net/netip"

	"weir/spec"
)

// Plan is the cluster-wide assignment for one (spec revision, alive set). It is a
// pure function of its inputs: every agent computes byte-identical Plans, and
// Digest proves it over gossip.
type Plan struct {
	Alive     []string       `json:"alive"`     // sorted host names counted as alive
	Balancers []BalancerPlan `json:"balancers"` // sorted by name
}

// BalancerPlan is one balancer's assignment.
type BalancerPlan struct {
	Name         string        `json:"name"`
	Source       string        `json:"source"`
	Target       string        `json:"target"`
	Frontend     spec.Frontend `json:"frontend"`
	TargetPort   uint16        `json:"targetPort"`
	Strategy     spec.Strategy `json:"strategy"`
	SettingHosts []string      `json:"settingHosts"` // hosts whose guests run Source, sorted
	Sources      []Endpoint    `json:"sources"`      // guests running Source, sorted by (host, guest)
	Targets      []Target      `json:"targets"`      // alive targets in stable order
}

// Endpoint is a guest taking part in a balancer.
type Endpoint struct {
	Guest   string     `json:"guest"`
	Host    string     `json:"host"`
	Address netip.Addr `json:"address"`
}

// Target is one alive target guest with its weight and resulting share of new connections.
type Target struct {
	Endpoint
	Port   uint16  `json:"port"`
	Weight int     `json:"weight"`
	Share  float64 `json:"share"` // Weight / Σ weights of the alive targets
}
