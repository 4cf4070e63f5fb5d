package spec

import (
	"regexp"
	"strconv"
	"time"
)

// durationRE is the duration syntax specs accept: one or more numbers, each
// with a unit of h, m, s or ms ("2s", "500ms", "1m30s", "1.5s"). It is a
// subset of what time.ParseDuration reads, without signs, bare zeros or
// units too small for a health check, and the JSON Schema uses the same
// pattern.
var durationRE = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$`)

// checkPathRE is the path syntax: "/" and then printable ASCII without
// spaces, with "%" only in percent-escapes, so the path goes into the
// request line as written (query included) and always parses as a URL.
var checkPathRE = regexp.MustCompile(`^/([!-$&-~]|%[0-9A-Fa-f]{2})*$`)

// healthCheck checks spec.healthCheck and fills in its defaults; nil when
// the balancer has none.
func (d *docCtx) healthCheck(h healthCheckDoc, targetPort uint16) *HealthCheck {
	const p = "spec.healthCheck"
	if !d.present(p) {
		return nil
	}
	hc := &HealthCheck{Port: targetPort}
	protoOK := true
	hc.Protocol, protoOK = d.checkProtocol(h.Protocol)
	if d.present(p + ".port") {
		hc.Port = d.port(p+".port", h.Port)
	}
	hc.Path = d.checkPath(h.Path, hc.Protocol, protoOK)
	var intervalOK bool
	hc.Interval, intervalOK = d.duration(p+".interval", h.Interval, DefaultCheckInterval)
	if intervalOK && (hc.Interval < MinCheckInterval || hc.Interval > MaxCheckInterval) {
		d.errorf(p+".interval", "%s.interval: %s is out of range %s-%s", p, h.Interval, durText(MinCheckInterval), durText(MaxCheckInterval))
		intervalOK = false
	}
	hc.Timeout = d.checkTimeout(h.Timeout, hc.Interval, intervalOK)
	hc.HealthyThreshold = d.threshold(p+".healthyThreshold", h.HealthyThreshold)
	hc.UnhealthyThreshold = d.threshold(p+".unhealthyThreshold", h.UnhealthyThreshold)
	return hc
}

// checkProtocol checks spec.healthCheck.protocol, tcp by default; ok is
// false when it was given wrong.
func (d *docCtx) checkProtocol(v string) (CheckProtocol, bool) {
	const p = "spec.healthCheck.protocol"
	if !d.present(p) {
		return CheckTCP, !d.bad[p]
	}
	switch proto := CheckProtocol(v); proto {
	case CheckTCP, CheckHTTP:
		return proto, true
	}
	d.errorf(p, "%s: unknown protocol %q (want tcp or http)", p, v)
	return CheckTCP, false
}

// checkPath checks spec.healthCheck.path, which only an http check has ("/"
// by default). protoOK is false when the protocol was given wrong, and then
// a path is not held against it.
func (d *docCtx) checkPath(v string, proto CheckProtocol, protoOK bool) string {
	const p = "spec.healthCheck.path"
	if !d.present(p) {
		if proto == CheckHTTP {
			return DefaultCheckPath
		}
		return ""
	}
	switch {
	case proto != CheckHTTP:
		if protoOK {
			d.errorf(p, "%s: a path is only for protocol http (this check is %s)", p, proto)
		}
		return ""
	case len(v) > MaxCheckPathLength:
		d.errorf(p, "%s: path is %d bytes long, over the limit of %d", p, len(v), MaxCheckPathLength)
	case len(v) == 0 || v[0] != '/':
		d.errorf(p, "%s: path %q must start with \"/\"", p, v)
	case !checkPathRE.MatchString(v):
		d.errorf(p, "%s: path %q must be printable ASCII without spaces, with %% only in escapes such as %%20", p, v)
	default:
		return v
	}
	return DefaultCheckPath
}

// duration parses the duration at path, def when it is absent; ok is false
// when it was given wrong (and reported).
func (d *docCtx) duration(path, v string, def time.Duration) (time.Duration, bool) {
	if !d.present(path) {
		return def, !d.bad[path]
	}
	if !durationRE.MatchString(v) {
		d.errorf(path, "%s: %q is not a duration: write numbers with units h, m, s or ms, as in 2s, 500ms or 1m30s", path, v)
		return def, false
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		// Only an overflow gets here: the syntax is time.ParseDuration's.
		d.errorf(path, "%s: duration %s is too long", path, v)
		return def, false
	}
	return dur, true
}

// checkTimeout checks spec.healthCheck.timeout: at least MinCheckTimeout and
// less than the interval (when that is valid). Its default is
// DefaultCheckTimeout, or half the interval when that is shorter, so that
// `interval: 1s` alone is a valid check.
func (d *docCtx) checkTimeout(v string, interval time.Duration, intervalOK bool) time.Duration {
	const p = "spec.healthCheck.timeout"
	def := min(DefaultCheckTimeout, interval/2)
	timeout, ok := d.duration(p, v, def)
	switch {
	case !ok || !d.present(p):
	case timeout < MinCheckTimeout:
		d.errorf(p, "%s: %s is below the minimum of %s", p, v, durText(MinCheckTimeout))
	case intervalOK && timeout >= interval:
		d.errorf(p, "%s: %s must be less than the interval (%s)", p, v, durText(interval))
	default:
		return timeout
	}
	return def
}

// threshold checks a threshold at path, DefaultCheckThreshold when absent.
func (d *docCtx) threshold(path string, v int64) int {
	if !d.present(path) {
		return DefaultCheckThreshold
	}
	if v < MinCheckThreshold || v > MaxCheckThreshold {
		d.errorf(path, "%s: %d is out of range %d-%d", path, v, MinCheckThreshold, MaxCheckThreshold)
		return DefaultCheckThreshold
	}
	return int(v)
}

// durText writes a duration the way specs do: "5m" rather than "5m0s".
func durText(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}
