package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) advance(d time.Duration) time.Time {
	c.t = c.t.Add(d)
	return c.t
}

var errProbe = errors.New("connection refused")

// TestMachine feeds result sequences ("+" pass, "-" failure) to a machine
// with the given thresholds, one result per second, and checks the state
// after each and every transition.
func TestMachine(t *testing.T) {
	tests := []struct {
		name               string
		healthy, unhealthy int
		results            string
		states             string // state after each result: u(nknown), h(ealthy), x (unhealthy)
		transitions        string // "from>to@second" for each change
	}{
		{"unknown until the threshold", 2, 2, "+", "u", ""},
		{"healthy after two passes", 2, 2, "++++", "uhhh", "unknown>healthy@2"},
		{"unhealthy after two failures", 2, 2, "--", "ux", "unknown>unhealthy@2"},
		{"a failure breaks a run of passes", 2, 2, "+-+-+-", "uuuuuu", ""},
		{"flapping never leaves healthy", 2, 2, "++-+-+-+", "uhhhhhhh", "unknown>healthy@2"},
		{"flapping never leaves unhealthy", 2, 2, "--+-+-+-", "uxxxxxxx", "unknown>unhealthy@2"},
		{"recovery takes the healthy threshold", 2, 3, "++---+++", "uhhhxxhh", "unknown>healthy@2 healthy>unhealthy@5 unhealthy>healthy@7"},
		{"thresholds of one follow every result", 1, 1, "+-+-", "hxhx", "unknown>healthy@1 healthy>unhealthy@2 unhealthy>healthy@3 healthy>unhealthy@4"},
		{"long runs do not overflow or re-emit", 3, 3, strings.Repeat("+", 50) + "---", strings.Repeat("u", 2) + strings.Repeat("h", 50) + "x",
			"unknown>healthy@3 healthy>unhealthy@53"},
		{"thresholds below one count as one", 0, -1, "-", "x", "unknown>unhealthy@1"},
	}
	letter := map[State]byte{Unknown: 'u', Healthy: 'h', Unhealthy: 'x'}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(0, 0)}
			m := newMachine(tt.healthy, tt.unhealthy)
			var states []byte
			var transitions []string
			for _, r := range tt.results {
				now := clock.advance(time.Second)
				var err error
				if r == '-' {
					err = errProbe
				}
				from, changed := m.observe(err, now)
				if changed {
					transitions = append(transitions, from.String()+">"+m.state.String()+"@"+now.Format("5"))
					if !m.since.Equal(now) {
						t.Errorf("since = %v; want %v", m.since, now)
					}
				}
				states = append(states, letter[m.state])
			}
			if got := string(states); got != tt.states {
				t.Errorf("states = %s; want %s", got, tt.states)
			}
			if got := strings.Join(transitions, " "); got != tt.transitions {
				t.Errorf("transitions = %q; want %q", got, tt.transitions)
			}
		})
	}
}

func TestMachineKeepsLastError(t *testing.T) {
	m := newMachine(1, 2)
	m.observe(errors.New("first"), time.Unix(1, 0))
	m.observe(errors.New("second"), time.Unix(2, 0))
	if m.state != Unhealthy || m.lastErr != "second" {
		t.Errorf("state %v, lastErr %q; want unhealthy, second", m.state, m.lastErr)
	}
}

func TestStateText(t *testing.T) {
	for s, want := range map[State]string{Unknown: "unknown", Healthy: "healthy", Unhealthy: "unhealthy", State(7): "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q; want %q", s, got, want)
		}
	}
	if b, err := Unhealthy.MarshalText(); err != nil || string(b) != "unhealthy" {
		t.Errorf("MarshalText = %s, %v", b, err)
	}
	if _, err := State(7).MarshalText(); err == nil {
		t.Errorf("State(7).MarshalText succeeded")
	}
}
