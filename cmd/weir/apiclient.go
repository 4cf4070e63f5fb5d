package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weir/agent"
)

// errRefused marks an operation the agent refused (HTTP 409): the answer is no.
var errRefused = errors.New("refused")

// errNotFound marks an answer of HTTP 404: the agent has no such thing.
var errNotFound = errors.New("not found")

// apiClient asks the local agent's HTTP API, as status, diff and keys do.
type apiClient struct {
	api, tokenFile string
	timeout        time.Duration
	token          []byte
}

// flags declares --api, --api-token-file and --timeout on cmd; timeout
// is the default of --timeout, described by what.
func (a *apiClient) flags(cmd *cobra.Command, timeout time.Duration, what string) {
	fs := cmd.Flags()
	fs.StringVar(&a.api, "api", "127.0.0.1:7947", "the local agent's HTTP API address (host:port or URL)")
	fs.StringVar(&a.tokenFile, "api-token-file", "", "file holding the agent's API token (its --api-token-file)")
	fs.DurationVar(&a.timeout, "timeout", timeout, what)
	_ = cmd.MarkFlagFilename("api-token-file")
}

// readToken reads --api-token-file, if given.
func (a *apiClient) readToken() error {
	if a.tokenFile == "" {
		return nil
	}
	var err error
	a.token, err = agent.ReadSecretFile("API token", a.tokenFile)
	return err
}

// url accepts the API as "host:port" or as a URL and appends path.
func (a *apiClient) url(path string) string {
	if strings.HasPrefix(a.api, "http://") || strings.HasPrefix(a.api, "https://") {
		return strings.TrimSuffix(a.api, "/") + path
	}
	return "http://" + a.api + path
}

// do sends one request and returns the answer's body (at most limit bytes)
// when it is 200 OK. A 409 is errRefused, a 404 errNotFound.
func (a *apiClient) do(ctx context.Context, method, path string, body []byte, limit int64) ([]byte, http.Header, error) {
	url := a.url(path)
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("asking the agent at %s: %w", url, err)
	}
	if len(a.token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(a.token))
	}
	resp, err := (&http.Client{Timeout: a.timeout}).Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("asking the agent (is `weir agent` running with this --api?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("agent at %s answered %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
		switch resp.StatusCode {
		case http.StatusConflict:
			err = fmt.Errorf("%w: %w", errRefused, err)
		case http.StatusNotFound:
			err = fmt.Errorf("%w: %w", errNotFound, err)
		}
		return nil, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer from %s: %w", url, err)
	}
	return b, resp.Header, nil
}

// getJSON GETs path and decodes the JSON answer into v.
func (a *apiClient) getJSON(ctx context.Context, path string, v any) error {
	b, _, err := a.do(ctx, http.MethodGet, path, nil, 16<<20)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading the answer from %s: %w", a.url(path), err)
	}
	return nil
}
