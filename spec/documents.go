package spec

// The document structs mirror the YAML a user writes, field for field, with the
// json tags that sigs.k8s.io/yaml decodes by. They hold raw values (addresses
// and durations as strings, ports as int64) so that an out-of-range or
// malformed value reaches validation, which reports it with its line, instead
// of failing inside the decoder with no position. Ports, weights and
// thresholds are int64 because that is the widest integer YAML scalars decode
// to; range checks happen in validate.go and validate_health.go.

// hostDoc is a `kind: Host` document.
type hostDoc struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   metadataDoc `json:"metadata"`
	Spec       hostSpecDoc `json:"spec"`
}

// balancerDoc is a `kind: Balancer` document.
type balancerDoc struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   metadataDoc     `json:"metadata"`
	Spec       balancerSpecDoc `json:"spec"`
}

type metadataDoc struct {
	Name string `json:"name"`
}

type hostSpecDoc struct {
	Address string     `json:"address"`
	Guests  []guestDoc `json:"guests"`
}

type guestDoc struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Addresses replaces Address for a guest with an IPv4 and an IPv6
	// address (at most one of each).
	Addresses []string `json:"addresses"`
	Services  []string `json:"services"`
}

type balancerSpecDoc struct {
	Source     string           `json:"source"`
	Target     string           `json:"target"`
	Frontend   frontendDoc      `json:"frontend"`
	TargetPort int64            `json:"targetPort"`
	Strategy   string           `json:"strategy"`
	Weights    map[string]int64 `json:"weights"`
	// HealthCheck is a value, not a pointer (the walk knows no pointers):
	// whether it was given is read from the document's lines.
	HealthCheck healthCheckDoc `json:"healthCheck"`
}

// healthCheckDoc is spec.healthCheck. Durations are strings such as "2s" or
// "500ms", parsed in validate_health.go so a bad one is reported at its line.
type healthCheckDoc struct {
	Protocol           string `json:"protocol"`
	Port               int64  `json:"port"`
	Path               string `json:"path"`
	Interval           string `json:"interval"`
	Timeout            string `json:"timeout"`
	HealthyThreshold   int64  `json:"healthyThreshold"`
	UnhealthyThreshold int64  `json:"unhealthyThreshold"`
}

type frontendDoc struct {
	Address  string `json:"address"`
	Port     int64  `json:"port"`
	Protocol string `json:"protocol"`
}
