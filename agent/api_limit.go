package agent

import (
	"errors"
	"net/http"
	"strconv"
)

// limit serves at most MaxConcurrent requests at once and answers the rest
// 503 at once, so a flood of requests costs a bounded number of goroutines
// and buffers.
func (a *Agent) limit(next http.Handler) http.Handler {
	sem := make(chan struct{}, a.cfg.API.MaxConcurrent)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
			a.metrics.apiInFlight.Inc()
			defer func() {
				a.metrics.apiInFlight.Dec()
				<-sem
			}()
			next.ServeHTTP(w, r)
		default:
			a.metrics.apiRefused.WithLabelValues("busy").Inc()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many concurrent API requests", http.StatusServiceUnavailable)
		}
	})
}

// capBody refuses a request whose declared body is over MaxBody before
// reading any of it, and cuts an undeclared (chunked) one at MaxBody.
func (a *Agent) capBody(next http.Handler) http.Handler {
	maxBody := a.cfg.API.MaxBody
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			a.metrics.apiRefused.WithLabelValues("too_large").Inc()
			w.Header().Set("Connection", "close")
			http.Error(w, "request body over "+strconv.FormatInt(maxBody, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// refuse answers a request whose body could not be read: 413 when it was
// over the cap, 400 otherwise (a read that timed out or broke off).
func (a *Agent) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		a.metrics.apiRefused.WithLabelValues("too_large").Inc()
		http.Error(w, "request body over "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
		return
	}
	a.log.Warn("reading an API request body failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
}
